"""The approvals page: pending, expired and decided approvals; approve and reject."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.record.audit import AuditLog
from engine.record.recorder import Recorder
from engine.settings import Settings
from engine.store.models import ApprovalRow
from engine.types import Proposal, Verdict, VerdictKind

HOUR = 3600.0
RATIONALE = "CPU is high; nginx <workers> are busy"
PROPOSAL = Proposal("restart_nginx", 0.7, RATIONALE, "gemini")
AWAIT = Verdict(
    VerdictKind.AWAIT_APPROVAL, "restart_nginx", "confidence below 0.8", "approval_required"
)
Token = Callable[[FlaskClient], str]
Pending = Callable[..., int]


@pytest.fixture
def recorder(sessions: sessionmaker[Session], settings: Settings) -> Recorder:
    return Recorder(sessions, AuditLog(settings.audit_log))


@pytest.fixture
def pending(recorder: Recorder) -> Pending:
    """An incident held for approval: ``pending("web1", expires_in=HOUR)`` -> approval id."""

    def make(host: str = "web1", expires_in: float = HOUR) -> int:
        now = time.time()
        since = now - 120 if expires_in > 0 else now - 2 * HOUR
        incident_id = recorder.incidents.open(
            host, "high_cpu", 97.0, "CPU high", at=since, since=since
        )
        decision_id = recorder.decisions.record(incident_id, host, PROPOSAL, AWAIT, since + 1)
        return recorder.approvals.request(
            incident_id,
            decision_id,
            host,
            "restart_nginx",
            RATIONALE,
            at=since + 1,
            expires_at=now + expires_in,
        )

    return make


def row(sessions: sessionmaker[Session], approval_id: int) -> ApprovalRow:
    with sessions() as session:
        return session.get_one(ApprovalRow, approval_id)


def test_pending_shown_with_rationale_escaped(viewer_client: FlaskClient, pending: Pending) -> None:
    approval_id = pending("web1")
    page = viewer_client.get("/approvals")
    assert page.status_code == 200
    assert f'id="approval-{approval_id}"' in page.text
    assert "web1" in page.text and "restart_nginx" in page.text
    assert "nginx &lt;workers&gt; are busy" in page.text
    assert "/approve" not in page.text  # viewers see no buttons


def test_operator_approves_with_a_note(
    operator_client: FlaskClient,
    csrf_token: Token,
    pending: Pending,
    sessions: sessionmaker[Session],
) -> None:
    approval_id = pending()
    page = operator_client.get("/approvals")
    assert f"/approvals/{approval_id}/approve" in page.text
    response = operator_client.post(
        f"/approvals/{approval_id}/approve",
        data={"csrf_token": csrf_token(operator_client), "note": "go ahead"},
    )
    assert response.status_code == 302
    stored = row(sessions, approval_id)
    assert (stored.status, stored.decided_by, stored.note) == ("approved", "operator", "go ahead")
    page = operator_client.get("/approvals")
    assert "Recent decisions" in page.text
    assert "go ahead" in page.text and "approved" in page.text


def test_operator_rejects(
    operator_client: FlaskClient,
    csrf_token: Token,
    pending: Pending,
    sessions: sessionmaker[Session],
) -> None:
    approval_id = pending()
    response = operator_client.post(
        f"/approvals/{approval_id}/reject",
        data={"csrf_token": csrf_token(operator_client), "confirm": "yes"},
    )
    assert response.status_code == 302
    stored = row(sessions, approval_id)
    assert (stored.status, stored.decided_by, stored.note) == ("rejected", "operator", None)


def test_deciding_twice_is_409(
    operator_client: FlaskClient, csrf_token: Token, pending: Pending
) -> None:
    approval_id = pending()
    data = {"csrf_token": csrf_token(operator_client)}
    assert operator_client.post(f"/approvals/{approval_id}/approve", data=data).status_code == 302
    again = operator_client.post(f"/approvals/{approval_id}/reject", data=data)
    assert again.status_code == 409
    assert "operator" in again.text  # who decided first


def test_expired_is_shown_and_cannot_be_approved(
    operator_client: FlaskClient,
    csrf_token: Token,
    pending: Pending,
    sessions: sessionmaker[Session],
) -> None:
    approval_id = pending("web2", expires_in=0.5)
    time.sleep(0.6)
    page = operator_client.get("/approvals")
    assert "Expired" in page.text
    assert f"/approvals/{approval_id}/approve" not in page.text
    assert 'class="status-expired">expired' in page.text
    response = operator_client.post(
        f"/approvals/{approval_id}/approve", data={"csrf_token": csrf_token(operator_client)}
    )
    assert response.status_code == 409
    assert row(sessions, approval_id).status == "expired"


def test_viewer_cannot_decide(
    viewer_client: FlaskClient,
    csrf_token: Token,
    pending: Pending,
    sessions: sessionmaker[Session],
) -> None:
    approval_id = pending()
    data = {"csrf_token": csrf_token(viewer_client)}
    assert viewer_client.post(f"/approvals/{approval_id}/approve", data=data).status_code == 403
    assert row(sessions, approval_id).status == "pending"


def test_missing_csrf_is_400(
    operator_client: FlaskClient, pending: Pending, sessions: sessionmaker[Session]
) -> None:
    approval_id = pending()
    assert operator_client.post(f"/approvals/{approval_id}/approve").status_code == 400
    assert row(sessions, approval_id).status == "pending"


def test_unknown_id_is_404(operator_client: FlaskClient, csrf_token: Token) -> None:
    data = {"csrf_token": csrf_token(operator_client)}
    assert operator_client.post("/approvals/999/approve", data=data).status_code == 404
    assert operator_client.post("/approvals/abc/approve", data=data).status_code == 404
