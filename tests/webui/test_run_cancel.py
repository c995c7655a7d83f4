"""Cancelling a run from its page and from the JSON API, on a real store: an operator's
request lands in the store (where the process running the run reads it) and the audit; a
viewer, a form without its CSRF token, a finished run and ids that are not ids are refused,
and nothing changes. The run's stop itself: tests/engine and tests/browser test_run_cancel.py.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts.users import create_token
from engine.components import Components
from engine.read.runs import cancel_state
from engine.record.recorder import Recorder
from engine.settings import Settings
from engine.types import RunRequest, RunResult
from webui.db import COMPONENTS_KEY

Token = Callable[[FlaskClient], str]


@pytest.fixture
def recorder(app: Flask) -> Recorder:
    """The app's own recorder: the same store and audit log the pages write to."""
    components: Components = app.extensions[COMPONENTS_KEY]
    return components.recorder


def a_run(recorder: Recorder, ident: str = "run-1", *, ended: str | None = None) -> int:
    """A run recorded as running (or, with ``ended``, as ended so); its id."""
    request = RunRequest(action="say_hello", playbook="/x/hello.yml", hosts=("localhost",))
    run_id = recorder.runs.begin(
        request, ident=ident, artifact_dir="", trigger="manual", requested_by="op", at=time.time()
    )
    if ended is not None:
        recorder.runs.end(run_id, RunResult(ident, ended, 0, "", time.time(), time.time(), {}))
    return run_id


def asked_by(sessions: sessionmaker[Session], run_id: int) -> str | None:
    state = cancel_state(sessions, run_id)
    assert state is not None
    return state.cancel_requested_by


def cancel_lines(settings: Settings) -> list[dict[str, Any]]:
    if not settings.audit_log.exists():
        return []
    lines = [json.loads(line) for line in settings.audit_log.read_text().splitlines()]
    return [line for line in lines if line["kind"] == "run_cancel_requested"]


def bearer(sessions: sessionmaker[Session], name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(sessions, name, 'test')}"}


# -- the page ------------------------------------------------------------------------


def test_an_operator_confirms_then_the_cancel_is_recorded_and_shown(
    operator_client: FlaskClient,
    csrf_token: Token,
    recorder: Recorder,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    run_id = a_run(recorder)
    page = operator_client.get("/playbooks/runs/run-1")
    assert "data-cancel-form" in page.text and "data-confirm=" in page.text
    token = csrf_token(operator_client)

    asked = operator_client.post(f"/runs/{run_id}/cancel", data={"csrf_token": token})
    assert asked.status_code == 200
    assert "Nothing has been canceled yet" in asked.text
    assert asked_by(sessions, run_id) is None  # one click never cancels

    done = operator_client.post(
        f"/runs/{run_id}/cancel", data={"csrf_token": token, "confirm": "yes"}
    )
    assert done.status_code == 302
    assert done.headers["Location"].endswith("/playbooks/runs/run-1")
    assert asked_by(sessions, run_id) == "operator"
    page = operator_client.get("/playbooks/runs/run-1")
    assert "Cancel requested by operator" in page.text
    assert "data-cancel-form" not in page.text  # asked once; the page says so until it ends
    (line,) = cancel_lines(settings)
    assert line["run_id"] == run_id and line["data"] == {"by": "operator"}


def test_a_viewer_sees_no_button_and_cannot_cancel(
    viewer_client: FlaskClient,
    csrf_token: Token,
    recorder: Recorder,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    run_id = a_run(recorder)
    assert "data-cancel-form" not in viewer_client.get("/playbooks/runs/run-1").text

    refused = viewer_client.post(
        f"/runs/{run_id}/cancel",
        data={"csrf_token": csrf_token(viewer_client), "confirm": "yes"},
    )

    assert refused.status_code == 403
    assert asked_by(sessions, run_id) is None
    assert cancel_lines(settings) == []


def test_a_form_without_its_csrf_token_cancels_nothing(
    operator_client: FlaskClient, recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    run_id = a_run(recorder)

    for data in ({"confirm": "yes"}, {"confirm": "yes", "csrf_token": "forged"}):
        refused = operator_client.post(f"/runs/{run_id}/cancel", data=data)
        assert refused.status_code == 400
        assert "security token" in refused.text

    assert asked_by(sessions, run_id) is None


def test_a_finished_run_is_refused_with_how_it_ended(
    operator_client: FlaskClient,
    csrf_token: Token,
    recorder: Recorder,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    run_id = a_run(recorder, ended="successful")
    assert "data-cancel-form" not in operator_client.get("/playbooks/runs/run-1").text
    token = csrf_token(operator_client)

    for data in ({"csrf_token": token}, {"csrf_token": token, "confirm": "yes"}):
        refused = operator_client.post(f"/runs/{run_id}/cancel", data=data)
        assert refused.status_code == 409
        assert "has already ended: successful" in refused.text

    assert asked_by(sessions, run_id) is None
    assert cancel_lines(settings) == []


@pytest.mark.parametrize("run_id", ["abc", "0", "-1", "1.5", "01", "99999", "2147483648", "\u0661"])
def test_a_run_id_that_is_not_a_run_is_404(
    operator_client: FlaskClient, csrf_token: Token, recorder: Recorder, run_id: str
) -> None:
    a_run(recorder)
    data = {"csrf_token": csrf_token(operator_client), "confirm": "yes"}
    assert operator_client.post(f"/runs/{run_id}/cancel", data=data).status_code == 404


# -- the API -------------------------------------------------------------------------


def test_the_api_cancels_for_an_operator_once_and_refuses_the_rest(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., Any],
    recorder: Recorder,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    make_user("viewer", "vic")
    make_user("operator", "otto")
    make_user("operator", "olga")
    running = a_run(recorder)
    ended = a_run(recorder, "run-2", ended="failed")
    path = f"/api/v1/runs/{running}/cancel"

    assert client.post(path).status_code == 401
    viewer = client.post(path, headers=bearer(sessions, "vic"))
    assert viewer.status_code == 403 and viewer.json == {
        "error": "this needs the operator role; the token's user is viewer",
        "status": 403,
    }
    assert asked_by(sessions, running) is None

    asked = client.post(path, headers=bearer(sessions, "otto"))
    assert asked.status_code == 200, asked.json
    assert asked.json is not None
    assert asked.json["cancel_requested_by"] == "otto" and asked.json["status"] == "running"
    again = client.post(path, headers=bearer(sessions, "olga"))  # idempotent: otto's stays
    assert again.status_code == 200 and again.json is not None
    assert again.json["cancel_requested_by"] == "otto"
    assert len(cancel_lines(settings)) == 1

    finished = client.post(f"/api/v1/runs/{ended}/cancel", headers=bearer(sessions, "otto"))
    assert finished.status_code == 409 and finished.json is not None
    assert "has already ended: failed" in finished.json["error"]
    assert asked_by(sessions, ended) is None
    for bad in ("abc", "0", "99999"):
        missing = client.post(f"/api/v1/runs/{bad}/cancel", headers=bearer(sessions, "otto"))
        assert missing.status_code == 404 and missing.json is not None
    document = client.get("/api/v1/openapi.json").json
    assert document is not None
    operation = document["paths"]["/api/v1/runs/{run_id}/cancel"]["post"]
    assert {"403", "404", "409"} <= set(operation["responses"])


def test_a_signed_in_session_is_no_api_credential(
    operator_client: FlaskClient, recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    """A page another site makes the browser post rides on cookies: the API takes none."""
    run_id = a_run(recorder)

    refused = operator_client.post(f"/api/v1/runs/{run_id}/cancel")

    assert refused.status_code == 401
    assert asked_by(sessions, run_id) is None
