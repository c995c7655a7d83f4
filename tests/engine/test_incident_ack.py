"""People handling incidents (engine/record/handling.py) on both real stores: acknowledge
and assign are markers with who and when; resolve closes along the life's tables, never
while a run is in flight, and withdraws a pending approval; each is one timeline event
and one audit line. Migration 0010 upgrades a 0009 store on SQLite and PostgreSQL, and a
real engine lets go of an incident a person resolved under it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session, sessionmaker

from autosre.cli import main
from engine.accounts.users import create_user, disable_user
from engine.components import Components
from engine.incident.life import IncidentStatus
from engine.loop import Engine
from engine.plan.rules import RulesPlanner
from engine.record.audit import AuditLog
from engine.record.handling import MAX_NOTE, HandlingError, handling
from engine.record.recorder import Recorder
from engine.store import open_engine, open_store
from engine.store.migrate import downgrade, upgrade
from engine.store.models import ApprovalRow
from engine.types import Proposal, Verdict, VerdictKind
from tests.fixtures.engine_rig import rig_components
from tests.fixtures.reads import incident_detail, list_incidents, list_runs
from tests.fixtures.scripted import ScriptedSource, SkewClock
from tests.fixtures.store import migrated_sqlite

ROOT = Path(__file__).resolve().parents[2]
NOW = time.time()
PASSWORD = "correct horse battery staple"


def opened(recorder: Recorder, host: str = "web1") -> int:
    return recorder.incidents.open(host, "high_cpu", 97.0, "cpu 97% > 80%", at=NOW, since=NOW)


def audit(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def timeline(sessions: sessionmaker[Session], incident_id: int) -> list[dict[str, Any]]:
    detail = incident_detail(sessions, incident_id)
    assert detail is not None
    return list(detail["timeline"])


def test_acknowledge_and_assign_record_who_and_when(
    recorder: Recorder, sessions: sessionmaker[Session], audit_path: Path
) -> None:
    incident_id = opened(recorder)
    create_user(sessions, "alice", PASSWORD, "operator")
    create_user(sessions, "gone", PASSWORD, "viewer")
    disable_user(sessions, "gone")

    marks = recorder.handling.acknowledge(incident_id, by="bob", at=NOW + 5, note="looking")
    assert (marks.acknowledged_by, marks.status) == ("bob", "open")
    assert marks.acknowledged_at is not None
    assert marks.acknowledged_at.timestamp() == pytest.approx(NOW + 5, abs=1e-3)
    marks = recorder.handling.assign(incident_id, to=" Alice ", by="bob", at=NOW + 6)
    assert marks.assigned_to == "alice"
    for name in ("nobody", "gone", ""):
        with pytest.raises(HandlingError, match="assignee: there is no enabled user") as caught:
            recorder.handling.assign(incident_id, to=name, by="bob", at=NOW + 7)
        assert caught.value.status == 400

    events = timeline(sessions, incident_id)
    assert [(e["kind"], e["message"]) for e in events[1:]] == [
        ("acknowledged", "bob acknowledged the incident: looking"),
        ("assigned", "bob assigned the incident to alice"),
    ]
    lines = audit(audit_path)
    assert [(line["kind"], line["data"].get("by")) for line in lines[1:]] == [
        ("acknowledged", "bob"),
        ("assigned", "bob"),
    ]
    # A marker only: the status the engine works from is unchanged.
    assert handling(sessions, incident_id) == marks
    assert marks.closed_at is None and marks.resolved_by is None


def test_resolve_closes_the_incident_and_withdraws_its_approval(
    recorder: Recorder, sessions: sessionmaker[Session], audit_path: Path
) -> None:
    incident_id = opened(recorder)
    proposal = Proposal("restart_nginx", 0.6, "hot", planner="rules")
    verdict = Verdict(VerdictKind.AWAIT_APPROVAL, "restart_nginx", "ask a human", "confidence")
    decision_id = recorder.decisions.record(incident_id, "web1", proposal, verdict, NOW)
    approval_id = recorder.approvals.request(
        incident_id, decision_id, "web1", "restart_nginx", "hot", at=NOW, expires_at=NOW + 600
    )
    note = "false alarm: {{ 7*7 }} <script>alert(1)</script>"
    marks = recorder.handling.resolve(incident_id, by="carol", at=NOW + 10, note=note)
    assert (marks.status, marks.resolved_by) == ("resolved", "carol")
    assert marks.closed_at is not None

    detail = incident_detail(sessions, incident_id)
    assert detail is not None
    assert detail["summary"] == f"resolved by carol: {note}"  # stored as typed, never evaluated
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds[-2:] == ["resolved_by_person", "approval_expired"]
    assert "carol resolved the incident" in detail["timeline"][-1]["message"]
    with sessions() as session:
        assert session.get_one(ApprovalRow, approval_id).status == "expired"
    lines = audit(audit_path)
    assert lines[-2]["kind"] == "resolved_by_person"
    assert lines[-2]["data"] == {"by": "carol", "note": note, "status": "resolved"}

    # Closed: nothing more to do on it, by anyone; approving later is refused.
    for act in (
        lambda: recorder.handling.resolve(incident_id, by="dan", at=NOW + 11, note="again"),
        lambda: recorder.handling.acknowledge(incident_id, by="dan", at=NOW + 11),
    ):
        with pytest.raises(HandlingError, match="is closed \\(resolved by carol\\)") as caught:
            act()
        assert caught.value.status == 409
    with pytest.raises(Exception, match="expired"):
        recorder.approvals.decide(approval_id, approve=True, by="dan", at=NOW + 12)


def test_resolve_is_refused_while_a_run_is_in_flight_and_keeps_escalations(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    busy = opened(recorder, "web1")
    recorder.incidents.set_status(busy, IncidentStatus.REMEDIATING, NOW, "run", "restart")
    with pytest.raises(HandlingError, match="being remediated: a playbook run is in flight") as c:
        recorder.handling.resolve(busy, by="carol", at=NOW + 1, note="done")
    assert c.value.status == 409
    still = handling(sessions, busy)
    assert still is not None and (still.status, still.closed_at) == ("remediating", None)

    escalated = opened(recorder, "web2")
    recorder.incidents.set_status(escalated, IncidentStatus.ESCALATED, NOW, "escalated", "help")
    marks = recorder.handling.resolve(escalated, by="carol", at=NOW + 2, note="rebooted it")
    # The record keeps saying a human had to act; it is closed all the same.
    assert (marks.status, marks.resolved_by) == ("escalated", "carol")
    assert marks.closed_at is not None
    assert recorder.memory.closed_among([busy, escalated, 999]) == {escalated}
    assert recorder.memory.closed_among([]) == set()


@pytest.mark.parametrize(
    ("note", "problem"),
    [
        ("", "note is required"),
        ("   ", "note is required"),
        ("x" * (MAX_NOTE + 1), "note is too long"),
        ("\x1b[31mred\x1b[0m", "note must not contain control characters"),
        ("nul\x00", "note must not contain control characters"),
        ("\ud800", "note must not contain unpaired surrogates"),
    ],
)
def test_a_bad_note_is_refused_before_anything_is_written(
    recorder: Recorder, sessions: sessionmaker[Session], note: str, problem: str
) -> None:
    incident_id = opened(recorder)
    with pytest.raises(HandlingError, match=problem) as caught:
        recorder.handling.resolve(incident_id, by="carol", at=NOW, note=note)
    assert caught.value.status == 400
    assert len(timeline(sessions, incident_id)) == 1


def test_unknown_incidents_are_404(recorder: Recorder) -> None:
    with pytest.raises(HandlingError, match="no incident with id 42") as caught:
        recorder.handling.acknowledge(42, by="bob", at=NOW)
    assert caught.value.status == 404


# -- migration 0010: from 0009 to head with `autosre db upgrade`, on both backends ------------


def test_db_upgrade_takes_a_0009_store_to_head_and_back(
    empty_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = open_engine(empty_store_url)
    try:
        upgrade(engine, "0009")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO incidents (host, kind, status, attempts, opened_at, updated_at,"
                    " summary) VALUES ('web1', 'high_cpu', 'open', 0, :at, :at, 'old')"
                ),
                {"at": "2026-11-30 10:00:00+00:00"},
            )
    finally:
        engine.dispose()
    monkeypatch.setenv("AUTOSRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUTOSRE_DATABASE_URL", empty_store_url)
    monkeypatch.setenv("AUTOSRE_POLICY", str(ROOT / "policies" / "lab.yaml"))
    monkeypatch.setenv("AUTOSRE_INVENTORY", str(ROOT / "inventory" / "lab.yml"))
    assert main(["db", "upgrade"]) == 0

    sessions = open_store(empty_store_url)  # refuses anything but the newest schema
    try:
        recorder = Recorder(sessions, AuditLog(tmp_path / "audit.jsonl"))
        old = handling(sessions, 1)
        assert old is not None and (old.acknowledged_by, old.assigned_to) == (None, None)
        marks = recorder.handling.acknowledge(1, by="bob", at=NOW)
        assert marks.acknowledged_by == "bob"
        columns = {c["name"] for c in inspect(sessions.kw["bind"]).get_columns("incidents")}
        assert {"acknowledged_at", "acknowledged_by", "assigned_to", "resolved_by"} <= columns
    finally:
        sessions.kw["bind"].dispose()

    engine = open_engine(empty_store_url)
    try:
        downgrade(engine, "0009")
        columns = {c["name"] for c in inspect(engine).get_columns("incidents")}
        assert "acknowledged_by" not in columns
        with engine.connect() as connection:
            assert connection.scalar(text("SELECT summary FROM incidents")) == "old"
        upgrade(engine)
    finally:
        engine.dispose()


# -- a real engine: a person's resolve is final ------------------------------------------------

POLICY = """
version: 2
signals:
  high_cpu: {trigger: 80, clear: 50, window: 1s, sustain: 0s, step: 1s, stale_after: 3s,
             ladder: [fix]}
actions:
  fix: {playbook: ok.yml, description: the fix, timeout: 60s}
trust: {actions: {fix: auto}}
remediation:
  cooldown: 0s
  stage_runs: false
"""
OK_PLAYBOOK = (
    "- name: Succeed\n  hosts: all\n  gather_facts: false\n  tasks:\n"
    "    - name: Say ok\n      ansible.builtin.debug:\n        msg: ok\n"
)
INVENTORY = (
    "all:\n  hosts:\n    web1: {ansible_connection: local, "
    'ansible_python_interpreter: "{{ ansible_playbook_python }}"}\n'
)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Engine, Components, SkewClock]]:
    _sessions, components = rig_components(
        tmp_path, policy=POLICY, inventory=INVENTORY, playbook=OK_PLAYBOOK
    )
    clock = SkewClock()
    engine = Engine(
        components,
        metrics=ScriptedSource(lambda _host, _t: 97.0, ("web1",)),  # stays high throughout
        planner=RulesPlanner(confidence=0.6),  # between approval and auto-execute: ask
        clock=clock,
        plan_wait=10.0,
    )
    yield engine, components, clock
    engine.shutdown()
    components.close()


def test_the_engine_lets_go_of_an_incident_a_person_resolved(
    rig: tuple[Engine, Components, SkewClock],
) -> None:
    engine, components, clock = rig
    sessions = components.recorder.sessions
    engine.tick()
    first = list_incidents(sessions, host="web1")
    assert [i["status"] for i in first] == ["awaiting_approval"]
    incident_id = first[0]["id"]
    components.recorder.handling.resolve(
        incident_id, by="carol", at=clock(), note="known load test"
    )

    for _ in range(3):  # the host is still high: no error, and the resolve stands
        clock.advance(1.0)
        engine.tick()
    assert incident_id not in {t.incident_id for t in engine.tracks.values()}
    incidents = list_incidents(sessions, host="web1")
    resolved = next(i for i in incidents if i["id"] == incident_id)
    assert resolved["status"] == "resolved"
    assert resolved["summary"] == "resolved by carol: known load test"
    kinds = [e["kind"] for e in timeline(sessions, incident_id)]
    assert kinds[-2:] == ["resolved_by_person", "approval_expired"]
    # A new incident for the host's trouble, by the usual rules; nothing ran on the old one.
    assert [i["status"] for i in incidents if i["id"] != incident_id] == ["awaiting_approval"]
    assert list_runs(sessions) == []


# -- the CLI: `autosre incidents ack|assign|resolve ID`; bad input exits 2, never a traceback ---


def test_the_cli_acknowledges_assigns_and_resolves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = migrated_sqlite(tmp_path / "data" / "autosre.db")
    monkeypatch.setenv("AUTOSRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUTOSRE_POLICY", str(ROOT / "policies" / "lab.yaml"))
    monkeypatch.setenv("AUTOSRE_INVENTORY", str(ROOT / "inventory" / "lab.yml"))
    monkeypatch.setenv("SUDO_USER", "root-of-all")
    sessions = open_store(url)
    try:
        recorder = Recorder(sessions, AuditLog(tmp_path / "data" / "audit.jsonl"))
        incident_id = opened(recorder)
        create_user(sessions, "alice", PASSWORD, "operator")
        ident = str(incident_id)
        assert main(["incidents", "ack", ident, "--note", "on it"]) == 0
        assert main(["incidents", "assign", ident, "alice"]) == 0
        for argv, problem in (
            (["incidents", "assign", ident, "mallory"], "no enabled user named 'mallory'"),
            (["incidents", "resolve", ident, "--note", " "], "note is required"),
            (["incidents", "resolve", ident, "--note", "\x1b[2Jx"], "control characters"),
            (["incidents", "resolve", "99", "--note", "x"], "no incident with id 99"),
        ):
            capsys.readouterr()
            assert main(argv) == 2, argv
            err = capsys.readouterr().err
            assert problem in err and "Traceback" not in err and "\x1b" not in err, err
        assert main(["incidents", "resolve", ident, "--note", "done"]) == 0
        out = capsys.readouterr().out
        assert out == f"incident {incident_id} closed by root-of-all (resolved)\n"
        kinds = [e["kind"] for e in timeline(sessions, incident_id)]
        assert kinds == ["detected", "acknowledged", "assigned", "resolved_by_person"]
        with pytest.raises(SystemExit) as exited:  # argparse: a missing --note
            main(["incidents", "resolve", ident])
        assert exited.value.code == 2
    finally:
        sessions.kw["bind"].dispose()
