"""A run by hand from the web form says why: a reason (required) and a ticket (optional),
checked before anything runs, shown inert on the confirmation, the run page and the runs
list, and written in the audit line of the run's start. One real ansible-runner run.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.settings import Settings
from engine.store.models import PlaybookRun
from tests.fixtures.one_action import one_action_settings
from tests.webui.seed import seed

URL = "/playbooks/say_hello/run"
RUN_URL = re.compile(r"/playbooks/runs/([A-Za-z0-9._-]+)$")
REASON = "{{ 7*7 }} nginx stuck <script>alert(1)</script>"
SHOWN = "{{ 7*7 }} nginx stuck &lt;script&gt;alert(1)&lt;/script&gt;"
Token = Callable[[FlaskClient], str]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The conftest's settings, with a one-action policy and a local inventory."""
    return one_action_settings(tmp_path, database_url)


def run_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count(PlaybookRun.id))) or 0


def test_the_reason_and_ticket_are_recorded_shown_inert_and_audited(
    operator_client: FlaskClient,
    csrf_token: Token,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    fields = {
        "csrf_token": csrf_token(operator_client),
        "hosts": ["localhost"],
        "check": "1",
        "reason": REASON,
        "ticket": "INC-1234",
    }
    form = operator_client.get(URL)
    assert 'name="reason"' in form.text and 'name="ticket"' in form.text
    confirm = operator_client.post(URL, data=fields)
    assert confirm.status_code == 200 and "Confirm the run" in confirm.text
    assert SHOWN in confirm.text and "<script>alert" not in confirm.text
    assert 'name="ticket" value="INC-1234"' in confirm.text  # carried to the real start
    assert run_count(sessions) == 0

    started = operator_client.post(URL, data={**fields, "confirm": "yes"})
    assert started.status_code == 302, started.text
    found = RUN_URL.search(started.headers["Location"])
    assert found, started.headers["Location"]
    ident = found.group(1)
    deadline = time.monotonic() + 60
    while "data-run-done" not in operator_client.get(f"/playbooks/runs/{ident}/progress").text:
        assert time.monotonic() < deadline, "the run did not end in 60 s"
        time.sleep(0.2)

    with sessions() as session:
        run = session.scalars(select(PlaybookRun)).one()
    assert (run.ident, run.reason, run.ticket, run.status) == (
        ident,
        REASON,
        "INC-1234",
        "successful",
    )
    page = operator_client.get(f"/playbooks/runs/{ident}").text
    for shown in (page, operator_client.get("/playbooks").text):
        assert SHOWN in shown and "INC-1234" in shown
        assert "<script>alert" not in shown and "49 nginx" not in shown  # never evaluated
    assert "<dt>Reason</dt>" in page and "<dt>Ticket</dt>" in page

    lines = [json.loads(line) for line in settings.audit_log.read_text().splitlines()]
    start = [line for line in lines if line["kind"] == "run_started"]
    assert len(start) == 1 and start[0]["run_id"] == run.id
    assert start[0]["data"]["reason"] == REASON and start[0]["data"]["ticket"] == "INC-1234"
    assert start[0]["data"]["requested_by"] == "operator"


@pytest.mark.parametrize(
    ("why", "problem"),
    [
        ({}, "reason: is required"),
        ({"reason": "   "}, "reason: is required"),
        ({"reason": "red \x1b[31malert"}, "reason: must be printable"),
        ({"reason": "nul \x00"}, "reason: must be printable"),
        ({"reason": "x" * 201}, "reason: is too long"),
        ({"reason": "ok", "ticket": "INC 12; rm -rf /"}, "ticket: must be"),
    ],
)
@pytest.mark.parametrize("confirm", [False, True])
def test_a_missing_or_bad_reason_is_400_and_nothing_runs(
    operator_client: FlaskClient,
    csrf_token: Token,
    sessions: sessionmaker[Session],
    why: dict[str, str],
    problem: str,
    confirm: bool,
) -> None:
    data = {"csrf_token": csrf_token(operator_client), "hosts": ["localhost"], "check": "1", **why}
    if confirm:
        data["confirm"] = "yes"
    response = operator_client.post(URL, data=data)
    assert response.status_code == 400
    assert problem in response.text
    assert 'name="reason"' in response.text  # the form again, to fix it
    assert "\x1b" not in response.text and "\x00" not in response.text
    assert run_count(sessions) == 0


def test_an_engine_run_shows_no_reason(
    viewer_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    seed(sessions)
    with sessions() as session:
        run = session.scalars(select(PlaybookRun)).first()
        assert run is not None and run.trigger == "engine" and run.reason is None
    page = viewer_client.get(f"/playbooks/runs/{run.ident}").text
    assert "<dt>Reason</dt>" in page and "none: the engine's run" in page
