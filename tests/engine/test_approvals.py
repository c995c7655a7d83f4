"""Human approvals on both real backends: request, list, decide once, expire; the 0002 migration.

Fixtures (``store_url``, ``sessions``, ``recorder``, ``opened``) are in tests/engine/conftest.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, event, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import ApprovalError
from engine.incident.life import IncidentStatus
from engine.record.audit import AuditLog
from engine.record.recorder import Recorder
from engine.store import open_engine, open_store
from engine.store.migrate import downgrade, upgrade
from engine.store.models import ApprovalRow, Event, Incident
from engine.store.tables import Base
from engine.types import Approval, ApprovalStatus, Proposal, Verdict, VerdictKind
from tests.fixtures.reads import incident_detail, list_approvals

T0 = 1_700_000_000.0
HOUR = 3600.0
PROPOSAL = Proposal("restart_nginx", 0.7, "CPU is high; nginx workers are busy", "gemini")
AWAIT = Verdict(
    VerdictKind.AWAIT_APPROVAL, "restart_nginx", "confidence below 0.8", "approval_required"
)


# -- helpers --------------------------------------------------------------------------


def pending(recorder: Recorder, host: str = "web1", at: float = T0) -> tuple[int, int]:
    """An incident on the host held for approval: (incident id, approval id)."""
    incident_id = recorder.incidents.open(host, "high_cpu", 97.0, "CPU high", at=at, since=at - 10)
    decision_id = recorder.decisions.record(incident_id, host, PROPOSAL, AWAIT, at + 1)
    approval_id = recorder.approvals.request(
        incident_id,
        decision_id,
        host,
        "restart_nginx",
        "CPU is high; nginx workers are busy",
        at=at + 1,
        expires_at=at + 1 + HOUR,
    )
    return incident_id, approval_id


def events(sessions: sessionmaker[Session], kind: str) -> list[Event]:
    with sessions() as session:
        return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


def status_of(sessions: sessionmaker[Session], approval_id: int) -> str:
    with sessions() as session:
        return session.get_one(ApprovalRow, approval_id).status


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine sends while the block runs."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


# -- request, list, decide ------------------------------------------------------------


def test_request_list_and_approve(
    recorder: Recorder, sessions: sessionmaker[Session], audit_path: Path
) -> None:
    incident_id, approval_id = pending(recorder)
    with sessions() as session:
        incident = session.get_one(Incident, incident_id)
        assert incident.status == IncidentStatus.AWAITING_APPROVAL
        assert f"awaits approval {approval_id}" in incident.summary
    waiting = events(sessions, "awaiting_approval")
    assert len(waiting) == 1
    assert waiting[0].incident_id == incident_id
    assert waiting[0].data["approval_id"] == approval_id
    assert waiting[0].data["expires_at"] == "2023-11-14T23:13:21Z"

    listed = list_approvals(sessions, now=T0 + 60)
    assert listed == [
        {
            "id": approval_id,
            "incident_id": incident_id,
            "host": "web1",
            "action": "restart_nginx",
            "status": "pending",
            "rationale": "CPU is high; nginx workers are busy",
            "requested_at": "2023-11-14T22:13:21Z",
            "expires_at": "2023-11-14T23:13:21Z",
            "decided_at": None,
            "decided_by": None,
            "note": None,
        }
    ]

    approved = recorder.approvals.decide(approval_id, approve=True, by="alice", at=T0 + 60)
    assert approved.status == ApprovalStatus.APPROVED
    assert (approved.decided_by, approved.decided_at, approved.note) == ("alice", T0 + 60, None)
    assert recorder.memory.approvals([approval_id]) == {approval_id: approved}

    assert list_approvals(sessions, now=T0 + 61) == []
    everything = list_approvals(sessions, status=None, now=T0 + 61)
    assert [(a["status"], a["decided_by"]) for a in everything] == [("approved", "alice")]
    assert everything[0]["decided_at"] == "2023-11-14T22:14:20Z"

    found = incident_detail(sessions, incident_id)
    assert found is not None
    assert [a["status"] for a in found["approvals"]] == ["approved"]
    timeline = [(e["kind"], e["message"]) for e in found["timeline"]]
    assert timeline[-1] == (
        "approved",
        f"alice approved restart_nginx on web1 (approval {approval_id})",
    )
    line = json.loads(audit_path.read_text(encoding="utf-8").splitlines()[-1])
    assert line["kind"] == "approved"
    assert line["data"] == {"approval_id": approval_id, "by": "alice", "note": None}
    # Deciding leaves the incident's status to the engine, which acts on its next tick.
    assert found["status"] == "awaiting_approval"


def test_reject_with_a_note(recorder: Recorder, sessions: sessionmaker[Session]) -> None:
    incident_id, approval_id = pending(recorder)
    rejected = recorder.approvals.decide(
        approval_id, approve=False, by="bob", at=T0 + 30, note="deploy in progress"
    )
    assert rejected.status == ApprovalStatus.REJECTED
    assert rejected.note == "deploy in progress"
    (row,) = events(sessions, "rejected")
    assert row.incident_id == incident_id
    assert row.message.endswith(": deploy in progress")
    assert row.data["by"] == "bob"
    listed = list_approvals(sessions, status="rejected", now=T0 + 31)
    assert [(a["id"], a["note"]) for a in listed] == [(approval_id, "deploy in progress")]


def test_deciding_twice_names_who_decided_first(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    _, approval_id = pending(recorder)
    recorder.approvals.decide(approval_id, approve=True, by="alice", at=T0 + 60)
    with pytest.raises(ApprovalError) as caught:
        recorder.approvals.decide(approval_id, approve=False, by="bob", at=T0 + 61)
    assert str(caught.value) == (
        f"approval {approval_id} was already approved by alice at 2023-11-14T22:14:20Z"
    )
    assert status_of(sessions, approval_id) == "approved"
    assert events(sessions, "rejected") == []


def test_unknown_approval(recorder: Recorder) -> None:
    with pytest.raises(ApprovalError, match="no approval with id 4242"):
        recorder.approvals.decide(4242, approve=True, by="alice", at=T0)
    with pytest.raises(ApprovalError, match="no approval with id 4242"):
        recorder.approvals.expire(4242, at=T0)
    assert recorder.memory.approvals([4242]) == {}


def test_request_that_expires_before_it_starts_is_refused(recorder: Recorder) -> None:
    incident_id = recorder.incidents.open("web1", "high_cpu", 97.0, "x", at=T0, since=T0)
    decision_id = recorder.decisions.record(incident_id, "web1", PROPOSAL, AWAIT, T0)
    with pytest.raises(ApprovalError, match="would expire before it starts"):
        recorder.approvals.request(
            incident_id, decision_id, "web1", "restart_nginx", "", at=T0, expires_at=T0
        )


# -- expiry ---------------------------------------------------------------------------


def test_deciding_too_late_expires_it(recorder: Recorder, sessions: sessionmaker[Session]) -> None:
    _, approval_id = pending(recorder)
    late = T0 + 1 + HOUR
    # Past its time but not yet marked: shown expired, not offered as pending.
    assert list_approvals(sessions, now=late) == []
    shown = list_approvals(sessions, status="expired", now=late)
    assert [(a["id"], a["status"]) for a in shown] == [(approval_id, "expired")]
    assert status_of(sessions, approval_id) == "pending"

    with pytest.raises(ApprovalError) as caught:
        recorder.approvals.decide(approval_id, approve=True, by="alice", at=late)
    assert str(caught.value) == (
        f"approval {approval_id} expired at 2023-11-14T23:13:21Z: the engine escalates the incident"
    )
    assert status_of(sessions, approval_id) == "expired"
    (expired,) = events(sessions, "approval_expired")
    assert expired.data == {"approval_id": approval_id}
    assert events(sessions, "approved") == []
    # Asking again says the same, without a second event.
    with pytest.raises(ApprovalError, match="expired at"):
        recorder.approvals.decide(approval_id, approve=False, by="bob", at=late + 1)
    assert len(events(sessions, "approval_expired")) == 1
    assert recorder.memory.approvals([approval_id])[approval_id].decided_at == late


def test_expire_approval(recorder: Recorder, sessions: sessionmaker[Session]) -> None:
    _, first = pending(recorder, "web1")
    _, second = pending(recorder, "web2")
    assert recorder.approvals.expire(first, at=T0 + 100) is True
    assert recorder.approvals.expire(first, at=T0 + 101) is False
    recorder.approvals.decide(second, approve=True, by="alice", at=T0 + 50)
    assert recorder.approvals.expire(second, at=T0 + 102) is False
    found = recorder.memory.approvals([first, second])
    assert found[first].status == ApprovalStatus.EXPIRED
    assert found[second].status == ApprovalStatus.APPROVED
    assert len(events(sessions, "approval_expired")) == 1


# -- concurrency ----------------------------------------------------------------------


def test_two_people_deciding_at_once_only_one_wins(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    _, approval_id = pending(recorder)
    engine = sessions.kw["bind"]
    # Hold both threads just before their UPDATE: both have already seen "pending".
    barrier = threading.Barrier(2, timeout=10)

    def hold(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE APPROVALS"):
            barrier.wait()

    outcomes: dict[str, Approval | ApprovalError] = {}

    def decide(who: str, approve: bool) -> None:
        try:
            outcomes[who] = recorder.approvals.decide(
                approval_id, approve=approve, by=who, at=T0 + 60
            )
        except ApprovalError as exc:
            outcomes[who] = exc

    event.listen(engine, "before_cursor_execute", hold)
    try:
        threads = [
            threading.Thread(target=decide, args=("alice", True)),
            threading.Thread(target=decide, args=("bob", False)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        event.remove(engine, "before_cursor_execute", hold)

    assert not barrier.broken
    winners = {who: o for who, o in outcomes.items() if isinstance(o, Approval)}
    losers = {who: o for who, o in outcomes.items() if isinstance(o, ApprovalError)}
    assert len(winners) == 1
    assert len(losers) == 1
    (winner, won), (loser, lost) = next(iter(winners.items())), next(iter(losers.items()))
    assert winner != loser
    assert f"already {won.status} by {winner}" in str(lost)
    assert recorder.memory.approvals([approval_id])[approval_id].decided_by == winner
    assert len(events(sessions, "approved")) + len(events(sessions, "rejected")) == 1


# -- reads the engine needs -----------------------------------------------------------


def test_approvals_by_id_is_one_query(recorder: Recorder, sessions: sessionmaker[Session]) -> None:
    ids = [pending(recorder, f"web{i}", at=T0 + i)[1] for i in range(4)]
    recorder.approvals.decide(ids[1], approve=False, by="alice", at=T0 + 30)
    engine = sessions.kw["bind"]
    with statements(engine) as sent:
        found = recorder.memory.approvals([*ids, 99_999, ids[0]])
    assert [s for s in sent if s.lstrip().upper().startswith("SELECT")] == [sent[0]]
    assert len(sent) == 1
    assert sorted(found) == sorted(ids)
    assert found[ids[1]].status == ApprovalStatus.REJECTED
    assert found[ids[2]] == Approval(
        id=ids[2],
        incident_id=found[ids[2]].incident_id,
        decision_id=found[ids[2]].decision_id,
        host="web2",
        action="restart_nginx",
        status=ApprovalStatus.PENDING,
        requested_at=T0 + 3,
        expires_at=T0 + 3 + HOUR,
        rationale="CPU is high; nginx workers are busy",
    )
    with statements(engine) as sent:
        assert recorder.memory.approvals([]) == {}
    assert sent == []


def test_pending_list_is_oldest_first(recorder: Recorder, sessions: sessionmaker[Session]) -> None:
    ids = [pending(recorder, f"web{i}", at=T0 - 10 * i)[1] for i in range(3)]
    assert [a["id"] for a in list_approvals(sessions, now=T0)] == ids[::-1]
    assert [a["id"] for a in list_approvals(sessions, now=T0, limit=2)] == ids[:0:-1]
    assert [a.id for a in recorder.memory.pending_approvals()] == ids[::-1]
    assert [a["id"] for a in list_approvals(sessions, status=None, now=T0)] == sorted(
        ids, reverse=True
    )


def test_awaiting_approval_survives_a_restart(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    incident_id, approval_id = pending(recorder)
    assert [(a.id, a.host, a.status, a.tried) for a in recorder.memory.active_incidents()] == [
        (incident_id, "web1", "awaiting_approval", [])
    ]
    assert recorder.runs.recover_interrupted(T0 + 100) == []
    with sessions() as session:
        assert session.get_one(Incident, incident_id).status == "awaiting_approval"
        assert session.get_one(ApprovalRow, approval_id).status == "pending"
    assert [(a.id, a.host, a.status, a.tried) for a in recorder.memory.active_incidents()] == [
        (incident_id, "web1", "awaiting_approval", [])
    ]
    assert [a.id for a in recorder.memory.pending_approvals()] == [approval_id]


# -- the migration --------------------------------------------------------------------


def _decision_columns(engine: Engine) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns("decisions")}


def test_migration_0002_keeps_existing_rows(
    empty_store_url: str, opened: list[sessionmaker[Session]], tmp_path: Path
) -> None:
    store_url = empty_store_url
    engine = open_engine(store_url)
    try:
        upgrade(engine, "0001")
        assert "approvals" not in inspect(engine).get_table_names()
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO incidents (id, host, kind, status, attempts, opened_at,"
                    " updated_at, summary) VALUES (1, 'web1', 'high_cpu', 'open', 0, :t, :t, 'x')"
                ),
                {"t": "2023-11-14 22:13:20+00:00"},
            )
            conn.execute(
                text(
                    "INSERT INTO decisions (id, incident_id, host, created_at, planner, action,"
                    " confidence, rationale, verdict, rule, reason, overridden) VALUES"
                    " (1, 1, 'web1', :t, 'rules', 'restart_nginx', 0.9, 'r', 'execute',"
                    " 'ladder', 'first rung', :f)"
                ),
                {"t": "2023-11-14 22:13:21+00:00", "f": False},
            )
            conn.execute(
                text(
                    "INSERT INTO events (at, kind, host, incident_id, message, data)"
                    " VALUES (:t, 'detected', 'web1', 1, 'CPU high', '{}')"
                ),
                {"t": "2023-11-14 22:13:20+00:00"},
            )
        upgrade(engine)
        assert {"provider", "cached", "fallback", "latency_ms"} <= _decision_columns(engine)
        (status,) = [c for c in inspect(engine).get_columns("incidents") if c["name"] == "status"]
        assert status["type"].length == 32
        if engine.dialect.name == "sqlite":
            # Migrating switched key checks off for the table rebuild, and back on.
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()

    sessions = open_store(store_url)
    opened.append(sessions)
    found = incident_detail(sessions, 1)
    assert found is not None
    (old,) = found["decisions"]
    assert old["cached"] is False
    assert old["provider"] is None
    assert old["fallback"] is None
    assert old["rationale"] == "r"
    # The new table works against rows written before it existed.
    recorder = Recorder(sessions, AuditLog(tmp_path / "audit.jsonl"))
    approval_id = recorder.approvals.request(
        1, 1, "web1", "restart_nginx", "r", at=T0, expires_at=T0 + HOUR
    )
    assert recorder.memory.approvals([approval_id])[approval_id].status == ApprovalStatus.PENDING
    assert [(a.id, a.host, a.status, a.tried) for a in recorder.memory.active_incidents()] == [
        (1, "web1", "awaiting_approval", [])
    ]
    sessions.kw["bind"].dispose()

    # And back: 0001's schema again, the old rows still there, the waiting incident open.
    engine = open_engine(store_url)
    try:
        downgrade(engine, "0001")
        assert "approvals" not in inspect(engine).get_table_names()
        assert "cached" not in _decision_columns(engine)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM decisions")) == 1
            assert conn.scalar(text("SELECT count(*) FROM events")) == 2
            assert conn.scalar(text("SELECT status FROM incidents")) == "open"
        upgrade(engine)
        assert "approvals" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_models_match_the_migrations(sessions: sessionmaker[Session]) -> None:
    engine: Engine = sessions.kw["bind"]
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, Base.metadata) == []
