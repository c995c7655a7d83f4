"""No dead ends: approvals, runs and incidents link to each other; Reject and Disable take a
second step; a disabled user can be enabled again; the dashboard's open incidents lead to all.

The records are made with the engine's own recorder, as the engine makes them: an incident
held for approval, approved, then run as the "human" decision (engine/incident/decide.py).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from autosre.commands.admin import cmd_users_enable
from engine.accounts.users import authenticate, disable_user
from engine.record.audit import AuditLog
from engine.record.recorder import Recorder
from engine.settings import Settings
from engine.store.models import ApprovalRow
from engine.types import Verdict, VerdictKind
from tests.fixtures.reads import list_users
from tests.webui.conftest import PASSWORD, Login, MakeUser
from tests.webui.seed import ApprovalStory as Story
from tests.webui.seed import approval_story

Token = Callable[[FlaskClient], str]
HOUR = 3600.0
ASK = Verdict(VerdictKind.AWAIT_APPROVAL, "restart_nginx", "confidence below 0.8", "approval")
EXECUTE = Verdict(VerdictKind.EXECUTE, "restart_nginx", "approved", "approval")
# The link queries join approvals, decisions and runs: on both stores.
BOTH_BACKENDS = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def recorder(sessions: sessionmaker[Session], settings: Settings) -> Recorder:
    return Recorder(sessions, AuditLog(settings.audit_log))


@pytest.fixture
def story(recorder: Recorder) -> Story:
    return approval_story(recorder, pending_for=42 * 60)


def row(sessions: sessionmaker[Session], approval_id: int) -> ApprovalRow:
    with sessions() as session:
        return session.get_one(ApprovalRow, approval_id)


def audit_lines(settings: Settings) -> list[dict[str, object]]:
    return [json.loads(line) for line in settings.audit_log.read_text().splitlines()]


@BOTH_BACKENDS
def test_approvals_link_to_their_incident_and_run_with_confidence_and_time_left(
    viewer_client: FlaskClient, story: Story
) -> None:
    page = viewer_client.get("/approvals").text
    waiting = page[page.index(f'id="approval-{story.waiting_approval}"') :]
    waiting = waiting[: waiting.index("</tr>")]
    assert f'href="/incidents/{story.waiting_incident}"' in waiting
    assert "62%" in waiting and "gemini" in waiting  # the planner's confidence
    assert re.search(r"4[12] min left", waiting), waiting
    decided = page[page.index(f'id="approval-{story.approval}"') :]
    decided = decided[: decided.index("</tr>")]
    assert f'href="/incidents/{story.incident}"' in decided
    assert f'href="/playbooks/runs/{story.ident}"' in decided  # what the approval led to


@BOTH_BACKENDS
def test_a_run_and_its_incident_and_approval_link_both_ways(
    viewer_client: FlaskClient, story: Story
) -> None:
    page = viewer_client.get(f"/playbooks/runs/{story.ident}")
    assert page.status_code == 200
    assert f'href="/incidents/{story.incident}#run-{story.run}"' in page.text
    assert f'href="/approvals#approval-{story.approval}"' in page.text
    # ...and the incident's page holds that run's anchor and its approval.
    incident = viewer_client.get(f"/incidents/{story.incident}").text
    assert f'id="run-{story.run}"' in incident and "r-approved" in incident
    assert f'href="/playbooks/runs/{story.ident}"' in incident  # and back to the run page
    assert f'href="/approvals#approval-{story.approval}"' in incident


def test_reject_needs_the_confirmation(
    operator_client: FlaskClient, csrf_token: Token, story: Story, sessions: sessionmaker[Session]
) -> None:
    url = f"/approvals/{story.waiting_approval}/reject"
    token = csrf_token(operator_client)
    page = operator_client.get("/approvals").text
    assert f'formaction="{url}" data-confirm="Reject restart_nginx on web2' in page
    assert "confirm.js" in page

    once = operator_client.post(url, data={"csrf_token": token, "note": "not now"})
    assert once.status_code == 200
    assert "Nothing has been rejected yet" in once.text
    assert 'name="confirm" value="yes"' in once.text and 'value="not now"' in once.text
    assert f'href="/incidents/{story.waiting_incident}"' in once.text
    assert row(sessions, story.waiting_approval).status == "pending"

    data = {"csrf_token": token, "note": "not now", "confirm": "yes", "next": "//evil.example/"}
    done = operator_client.post(url, data=data)
    assert done.status_code == 302 and done.headers["Location"] == "/approvals"
    stored = row(sessions, story.waiting_approval)
    assert (stored.status, stored.decided_by, stored.note) == ("rejected", "operator", "not now")


def test_approve_stays_one_step_and_returns_to_a_safe_next(
    operator_client: FlaskClient, csrf_token: Token, story: Story, sessions: sessionmaker[Session]
) -> None:
    back = f"/incidents/{story.waiting_incident}"
    data = {"csrf_token": csrf_token(operator_client), "next": back}
    done = operator_client.post(f"/approvals/{story.waiting_approval}/approve", data=data)
    assert done.status_code == 302 and done.headers["Location"] == back
    assert row(sessions, story.waiting_approval).status == "approved"


def test_disable_needs_the_confirmation_and_enable_undoes_it(
    admin_client: FlaskClient,
    csrf_token: Token,
    make_user: MakeUser,
    login: Login,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    make_user("operator", "otto")
    otto = admin_client.application.test_client()
    assert login(otto, "otto").status_code == 302
    token = csrf_token(admin_client)
    page = admin_client.get("/users").text
    assert 'data-confirm="Disable otto?' in page

    once = admin_client.post("/users/otto/disable", data={"csrf_token": token})
    assert once.status_code == 200 and "Nothing has been disabled yet" in once.text
    assert 'name="confirm" value="yes"' in once.text
    assert authenticate(sessions, "otto", PASSWORD) is not None

    data = {"csrf_token": token, "confirm": "yes"}
    assert admin_client.post("/users/otto/disable", data=data).status_code == 302
    assert authenticate(sessions, "otto", PASSWORD) is None
    assert otto.get("/account").status_code == 302  # signed out
    assert "/users/otto/enable" in admin_client.get("/users").text

    enabled = admin_client.post("/users/otto/enable", data={"csrf_token": token})
    assert enabled.status_code == 302
    assert authenticate(sessions, "otto", PASSWORD) is not None
    assert otto.get("/account").status_code == 302  # the ended session stays ended
    assert login(otto, "otto").status_code == 302  # a new one works
    lines = [a for a in audit_lines(settings) if str(a["kind"]).startswith("user_")]
    assert [(a["kind"], a["data"]) for a in lines] == [
        ("user_disabled", {"user": "otto", "by": "admin"}),
        ("user_enabled", {"user": "otto", "by": "admin"}),
    ]
    assert admin_client.post("/users/nobody/enable", data={"csrf_token": token}).status_code == 404


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_enable(
    signed_in: Callable[..., FlaskClient],
    csrf_token: Token,
    make_user: MakeUser,
    sessions: sessionmaker[Session],
    role: str,
) -> None:
    make_user("viewer", "vera")
    disable_user(sessions, "vera")
    client = signed_in(role)
    response = client.post("/users/vera/enable", data={"csrf_token": csrf_token(client)})
    assert response.status_code == 403
    assert authenticate(sessions, "vera", PASSWORD) is None


def test_the_cli_enables_and_audits(
    make_user: MakeUser, sessions: sessionmaker[Session], settings: Settings
) -> None:
    make_user("viewer", "vera")
    disable_user(sessions, "vera")
    assert cmd_users_enable(argparse.Namespace(name="vera"), settings) == 0
    assert authenticate(sessions, "vera", PASSWORD) is not None
    assert any(a["kind"] == "user_enabled" for a in audit_lines(settings))
    assert {u["name"]: u["disabled"] for u in list_users(sessions)}["vera"] is False


def test_open_incidents_past_twenty_link_to_all(
    viewer_client: FlaskClient, recorder: Recorder, tmp_path: Path
) -> None:
    now = time.time()
    for n in range(23):
        recorder.incidents.open(f"h{n}", "high_cpu", 95.0, "hot", at=now - n, since=now)
    page = viewer_client.get("/dashboard/summary").text
    assert "The newest 20 of 23 open" in page
    assert 'href="/incidents?status=open">open (23)</a>' in page
    listed = viewer_client.get("/incidents?status=open").text
    assert all(f">h{n}</a>" in listed for n in range(23))
