"""Handling an incident from its page and from the JSON API, on a real store: acknowledge,
assign, resolve with a note, decide its approval inline. Each lands in the timeline with
who did it and in the JSONL audit; viewers are refused, a form without its CSRF token is
refused, bad notes are 400s that name the field, and a note is shown as typed, inert.
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
from engine.incident.life import IncidentStatus
from engine.record.recorder import Recorder
from engine.settings import Settings
from engine.types import Proposal, Verdict, VerdictKind
from tests.fixtures.reads import incident_detail
from webui.db import COMPONENTS_KEY

NOW = time.time()
ATTACK = '{{ 7*7 }} <script>alert(1)</script> "><img src=x onerror=alert(1)>'


@pytest.fixture
def recorder(app: Flask) -> Recorder:
    """The app's own recorder: the same audit log the pages write to."""
    components: Components = app.extensions[COMPONENTS_KEY]
    return components.recorder


def opened(recorder: Recorder, host: str = "web1") -> int:
    return recorder.incidents.open(host, "high_cpu", 97.0, "cpu 97% > 80%", at=NOW, since=NOW)


def awaiting(recorder: Recorder, incident_id: int) -> int:
    """A pending approval of fix on the incident; its id."""
    proposal = Proposal("fix", 0.6, "hot", planner="rules")
    verdict = Verdict(VerdictKind.AWAIT_APPROVAL, "fix", "ask a human", "confidence")
    decision_id = recorder.decisions.record(incident_id, "web1", proposal, verdict, NOW)
    return recorder.approvals.request(
        incident_id, decision_id, "web1", "fix", "hot", at=time.time(), expires_at=NOW + 900
    )


def timeline(sessions: sessionmaker[Session], incident_id: int) -> list[tuple[str, str]]:
    detail = incident_detail(sessions, incident_id)
    assert detail is not None
    return [(e["kind"], e["message"]) for e in detail["timeline"]]


def audit(settings: Settings) -> list[dict[str, Any]]:
    return [json.loads(line) for line in settings.audit_log.read_text().splitlines()]


Post = Callable[..., Any]


@pytest.fixture
def post(csrf_token: Callable[[FlaskClient], str]) -> Post:
    """POST a form with the client's CSRF token (unless told not to)."""

    def send(client: FlaskClient, url: str, csrf: bool = True, **form: str) -> Any:
        if csrf:
            form["csrf_token"] = csrf_token(client)
        return client.post(url, data=form)

    return send


def test_acknowledge_assign_and_resolve_from_the_page(
    operator_client: FlaskClient,
    viewer_client: FlaskClient,
    recorder: Recorder,
    sessions: sessionmaker[Session],
    settings: Settings,
    post: Post,
) -> None:
    incident_id = opened(recorder)
    page = operator_client.get(f"/incidents/{incident_id}").text
    assert "Not acknowledged." in page and "I am on it" in page and "Resolve by hand" in page
    assert '<option value="viewer">viewer</option>' in page  # the users one may assign to
    assert '<option value="operator" selected>operator</option>' in page  # "me" by default

    base = f"/incidents/{incident_id}"
    done = post(operator_client, f"{base}/acknowledge", note="looking at it")
    assert (done.status_code, done.location) == (302, base)
    assert post(operator_client, f"{base}/assign", assignee="viewer").status_code == 302
    assert post(operator_client, f"{base}/resolve", note="load test").status_code == 302

    assert timeline(sessions, incident_id)[1:] == [
        ("acknowledged", "operator acknowledged the incident: looking at it"),
        ("assigned", "operator assigned the incident to viewer"),
        ("resolved_by_person", "resolved by operator: load test"),
    ]
    lines = audit(settings)
    assert [(line["kind"], line["data"]["by"]) for line in lines[1:]] == [
        ("acknowledged", "operator"),
        ("assigned", "operator"),
        ("resolved_by_person", "operator"),
    ]
    page = viewer_client.get(base).text  # viewers see who handles it
    assert "Acknowledged by <strong>operator</strong>" in page
    assert "Assigned to <strong>viewer</strong>" in page
    assert "Resolved by <strong>operator</strong>" in page
    assert "I am on it" not in page and "Resolve by hand" not in page
    # Closed: further actions are 409s that say why.
    again = post(operator_client, f"{base}/acknowledge")
    assert again.status_code == 409
    assert "is closed (resolved by operator)" in again.text


def test_viewers_and_forms_without_the_csrf_token_are_refused(
    viewer_client: FlaskClient,
    operator_client: FlaskClient,
    recorder: Recorder,
    sessions: sessionmaker[Session],
    post: Post,
) -> None:
    incident_id = opened(recorder)
    base = f"/incidents/{incident_id}"
    assert "need the operator role" in viewer_client.get(base).text
    for action, form in (
        ("acknowledge", {}),
        ("assign", {"assignee": "viewer"}),
        ("resolve", {"note": "x"}),
    ):
        refused = post(viewer_client, f"{base}/{action}", **form)
        assert refused.status_code == 403, action
        assert "needs the operator role" in refused.text
        forged = post(operator_client, f"{base}/{action}", csrf=False, **form)
        assert forged.status_code == 400, action
        assert "security token" in forged.text
    assert len(timeline(sessions, incident_id)) == 1  # nothing recorded


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_bad_input_is_a_400_naming_the_field_and_a_run_in_flight_a_409(
    operator_client: FlaskClient,
    recorder: Recorder,
    sessions: sessionmaker[Session],
    post: Post,
) -> None:
    incident_id = opened(recorder)
    base = f"/incidents/{incident_id}"
    for form, problem in (
        ({}, "Note is required"),
        ({"note": "  "}, "Note is required"),
        ({"note": "x" * 501}, "Note is too long (at most 500 characters)"),
        ({"note": "\x1b[31mred\x1b[0m"}, "Note must not contain control characters"),
        ({"note": "nul\x00"}, "Note must not contain control characters"),
    ):
        refused = post(operator_client, f"{base}/resolve", **form)
        assert refused.status_code == 400, form
        assert problem in refused.text, form
    unknown = post(operator_client, f"{base}/assign", assignee="mallory")
    assert unknown.status_code == 400
    assert "Assignee: there is no enabled user named &#39;mallory&#39;" in unknown.text
    assert post(operator_client, "/incidents/999/acknowledge").status_code == 404

    recorder.incidents.set_status(incident_id, IncidentStatus.REMEDIATING, NOW, "run", "fix")
    busy = post(operator_client, f"{base}/resolve", note="done")
    assert busy.status_code == 409
    assert "a playbook run is in flight" in busy.text
    page = operator_client.get(base).text
    assert "can be resolved by hand once it ends" in page and "Resolve by hand" not in page
    assert len(timeline(sessions, incident_id)) == 2  # detection and the run: nothing else


def test_a_hostile_note_is_shown_as_typed_and_inert(
    operator_client: FlaskClient, recorder: Recorder, post: Post
) -> None:
    incident_id = opened(recorder)
    base = f"/incidents/{incident_id}"
    assert post(operator_client, f"{base}/acknowledge", note=ATTACK).status_code == 302
    assert post(operator_client, f"{base}/resolve", note=ATTACK).status_code == 302
    page = operator_client.get(base).text
    assert "<script>alert(1)</script>" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # Shown as typed, never templated (a "49" could be in any timestamp: look at the note).
    assert "acknowledged the incident: {{ 7*7 }} &lt;script&gt;" in page
    assert "the incident: 49" not in page


def test_approve_and_reject_inline_on_the_incident_page(
    operator_client: FlaskClient,
    viewer_client: FlaskClient,
    recorder: Recorder,
    sessions: sessionmaker[Session],
    post: Post,
) -> None:
    first = opened(recorder, "web1")
    approval = awaiting(recorder, first)
    base = f"/incidents/{first}"
    page = operator_client.get(base).text
    assert f'id="approval-{approval}"' in page
    assert "Reject…</summary>" in page  # rejecting asks for confirmation first
    assert f'id="approval-{approval}"' not in viewer_client.get(base).text
    assert post(viewer_client, f"{base}/approvals/{approval}/approve").status_code == 403

    other = opened(recorder, "web2")
    wrong = post(operator_client, f"/incidents/{other}/approvals/{approval}/approve")
    assert wrong.status_code == 404  # an approval is decided on its own incident's page

    done = post(operator_client, f"{base}/approvals/{approval}/approve", note="go")
    assert (done.status_code, done.location) == (302, base)
    assert timeline(sessions, first)[-1] == (
        "approved",
        f"operator approved fix on web1 (approval {approval}): go",
    )
    twice = post(operator_client, f"{base}/approvals/{approval}/reject")
    assert twice.status_code == 409
    assert "already approved by operator" in twice.text

    second = awaiting(recorder, other)
    url = f"/incidents/{other}/approvals/{second}/reject"
    assert post(operator_client, url, note="not now").status_code == 302
    assert timeline(sessions, other)[-1][0] == "rejected"


# -- the JSON API: the same actions with a bearer token --------------------------------------


def test_the_api_acknowledges_assigns_and_resolves(
    client: FlaskClient,
    app: Flask,
    make_user: Callable[..., Any],
    recorder: Recorder,
    sessions: sessionmaker[Session],
) -> None:
    operator = make_user("operator", "otto")
    make_user("viewer", "vera")
    token = {"Authorization": f"Bearer {create_token(sessions, operator.name, 't')}"}
    viewer = {"Authorization": f"Bearer {create_token(sessions, 'vera', 't')}"}
    incident_id = opened(recorder)
    url = f"/api/v1/incidents/{incident_id}"

    assert client.post(f"{url}/acknowledge").status_code == 401
    assert client.post(f"{url}/acknowledge", headers=viewer).status_code == 403
    acked = client.post(f"{url}/acknowledge", headers=token)  # no body: no note
    assert acked.status_code == 200, acked.text
    assert acked.json is not None and acked.json["acknowledged_by"] == "otto"
    assigned = client.post(f"{url}/assign", headers=token, json={"assignee": "vera"})
    assert assigned.json is not None and assigned.json["assigned_to"] == "vera"

    for body, status, problem in (
        (None, 400, "assignee"),
        ({"assignee": "nobody"}, 400, "assignee: there is no enabled user"),
        ({"assignee": "vera", "extra": 1}, 400, "unknown field in the body 'extra'"),
        ([1], 400, "the body must be a JSON object"),
    ):
        refused = client.post(f"{url}/assign", headers=token, json=body)
        assert refused.status_code == status, body
        assert refused.json is not None and problem in refused.json["error"], refused.json
    for body, problem in (
        (None, "note"),
        ({"note": ""}, "note is required"),
        ({"note": "x" * 501}, "note"),
        ({"note": "\x1b[31m"}, "note must not contain control characters"),
    ):
        refused = client.post(f"{url}/resolve", headers=token, json=body)
        assert refused.status_code == 400, body
        assert refused.json is not None and problem in refused.json["error"], refused.json

    resolved = client.post(f"{url}/resolve", headers=token, json={"note": ATTACK})
    assert resolved.status_code == 200, resolved.text
    assert resolved.json is not None
    assert (resolved.json["status"], resolved.json["resolved_by"]) == ("resolved", "otto")
    assert timeline(sessions, incident_id)[-1] == (
        "resolved_by_person",
        f"resolved by otto: {ATTACK}",
    )
    closed = client.post(f"{url}/resolve", headers=token, json={"note": "again"})
    assert closed.status_code == 409
    missing = client.post("/api/v1/incidents/999/acknowledge", headers=token)
    assert missing.status_code == 404

    busy = opened(recorder, "web2")
    recorder.incidents.set_status(busy, IncidentStatus.REMEDIATING, NOW, "run", "fix")
    refused = client.post(f"/api/v1/incidents/{busy}/resolve", headers=token, json={"note": "x"})
    assert refused.status_code == 409
    assert refused.json is not None and "in flight" in refused.json["error"]
    # The OpenAPI document describes the new routes like the others.
    paths = client.get("/api/v1/openapi.json").json["paths"]  # type: ignore[index]
    for action in ("acknowledge", "assign", "resolve"):
        assert "post" in paths[f"/api/v1/incidents/{{incident_id}}/{action}"]
