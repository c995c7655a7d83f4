"""The incident record on both real backends: SQLite in a temp file and the machine's PostgreSQL.

Every test gets an empty store at the newest schema (a copy of the session's migrated
SQLite file or PostgreSQL template) and its own JSONL audit file (fixtures in
tests/engine/conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, inspect, select, text
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import IllegalMoveError, StoreError
from engine.incident.life import IncidentStatus
from engine.record.recorder import Recorder
from engine.store import open_store
from engine.store.migrate import migrate_to_head
from engine.store.models import Decision, Event, Incident, PlaybookRun
from engine.store.schema import HEAD
from engine.types import (
    Attempt,
    HostRunStats,
    PlannerCall,
    Proposal,
    RunRequest,
    RunResult,
    Verdict,
    VerdictKind,
    Verification,
)
from tests.engine.test_read_models import INCIDENT
from tests.fixtures.reads import incident_detail, list_incidents, list_runs

T0 = 1_700_000_000.0
TABLES = {"alembic_version", "incidents", "decisions", "playbook_runs", "events", "approvals"}
PLAYBOOK = "/opt/autosre/playbooks/restart_nginx.yml"


# -- helpers --------------------------------------------------------------------------


def detect(recorder: Recorder, host: str = "web1", at: float = T0, value: float = 97.5) -> int:
    return recorder.incidents.open(
        host, "high_cpu", value, f"CPU {value}% for 10s", at=at, since=at - 10
    )


PROPOSAL = Proposal("restart_nginx", 0.9, "CPU is high; nginx workers are busy", "rules")
EXECUTE = Verdict(VerdictKind.EXECUTE, "restart_nginx", "first rung of the ladder", "ladder")


def decide(recorder: Recorder, incident_id: int, host: str = "web1", at: float = T0 + 1) -> int:
    return recorder.decisions.record(incident_id, host, PROPOSAL, EXECUTE, at)


def request(*hosts: str, **extra: str) -> RunRequest:
    return RunRequest(
        action="restart_nginx",
        playbook=PLAYBOOK,
        hosts=hosts or ("web1",),
        extra_vars=extra,
        timeout=60,
    )


def begin(
    recorder: Recorder,
    pairs: list[tuple[int, int]],
    *hosts: str,
    ident: str = "run-1",
    at: float = T0 + 2,
    **extra: str,
) -> int:
    return recorder.runs.begin(
        request(*hosts, **extra),
        ident=ident,
        artifact_dir=f"/var/lib/autosre/runs/{ident}",
        trigger="engine",
        requested_by="engine",
        at=at,
        decisions=pairs,
    )


def reopen(recorder: Recorder, incident_id: int, *, at: float) -> None:
    """What the engine records when a run did not cure: the incident is open again."""
    recorder.incidents.set_status(incident_id, IncidentStatus.OPEN, at, "not_recovered", "high")


def result(
    status: str = "successful",
    rc: int | None = 0,
    ident: str = "run-1",
    ended: float = T0 + 5,
    error: str | None = None,
    **stats: HostRunStats,
) -> RunResult:
    return RunResult(
        ident=ident,
        status=status,
        rc=rc,
        artifact_dir=f"/var/lib/autosre/runs/{ident}",
        started_at=T0 + 2,
        ended_at=ended,
        stats=stats,
        error=error,
    )


OK = HostRunStats(ok=4, changed=1)
FAILED = HostRunStats(ok=2, failures=1)


def detail(sessions: sessionmaker[Session], incident_id: int) -> dict[str, Any]:
    found = incident_detail(sessions, incident_id)
    assert found is not None
    return found


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def all_events(sessions: sessionmaker[Session]) -> list[Event]:
    with sessions() as session:
        return list(session.scalars(select(Event).order_by(Event.id)))


# -- the store ------------------------------------------------------------------------


def test_open_store_on_a_current_schema_and_twice_is_fine(
    store_url: str, opened: list[sessionmaker[Session]]
) -> None:
    first = open_store(store_url)
    opened.append(first)
    second = open_store(store_url)
    opened.append(second)
    bind = second.kw["bind"]
    assert set(inspect(bind).get_table_names()) >= TABLES
    with second() as session:
        assert session.scalar(text("SELECT version_num FROM alembic_version")) == HEAD
        assert session.scalar(select(Incident.id)) is None


def test_sqlite_store_is_created_by_the_upgrade_not_by_opening(
    tmp_path: Path, opened: list[sessionmaker[Session]]
) -> None:
    path = tmp_path / "deep" / "er" / "autosre.db"
    with pytest.raises(StoreError, match=r"does not exist.*run `autosre db upgrade`"):
        open_store(f"sqlite:///{path}")
    assert not path.parent.exists(), "opening a missing store created its folder"
    assert migrate_to_head(f"sqlite:///{path}") is None  # it had no schema
    assert path.is_file()
    opened.append(open_store(f"sqlite:///{path}"))


# -- incidents ------------------------------------------------------------------------


def test_open_incident_and_set_status(recorder: Recorder, sessions: sessionmaker[Session]) -> None:
    incident_id = detect(recorder)
    opened = detail(sessions, incident_id)
    assert opened["status"] == "open"
    assert opened["host"] == "web1"
    assert opened["kind"] == "high_cpu"
    assert opened["cpu_before"] == 97.5
    assert opened["attempts"] == 0
    assert opened["action"] is None
    assert opened["opened_at"] == "2023-11-14T22:13:20Z"
    assert opened["closed_at"] is None
    assert opened["summary"] == "CPU 97.5% for 10s"
    assert [e["kind"] for e in opened["timeline"]] == ["detected"]

    recorder.incidents.set_status(
        incident_id,
        IncidentStatus.RESOLVED,
        T0 + 60,
        "resolved",
        "CPU back to 12%",
        value_after=12.0,
        close=True,
        data={"value": 12.0},
    )
    resolved = detail(sessions, incident_id)
    assert resolved["status"] == "resolved"
    assert resolved["cpu_after"] == 12.0
    assert resolved["closed_at"] == "2023-11-14T22:14:20Z"
    assert resolved["summary"] == "CPU back to 12%"

    # A resolved incident is final: a move the incident's life forbids changes nothing.
    with pytest.raises(IllegalMoveError, match="from resolved to escalated"):
        recorder.incidents.set_status(
            incident_id, IncidentStatus.ESCALATED, T0 + 120, "escalated", "told a human"
        )
    assert detail(sessions, incident_id) == resolved


def test_closing_an_escalated_incident_again_keeps_the_first_close(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    incident_id = detect(recorder)
    escalated = IncidentStatus.ESCALATED
    recorder.incidents.set_status(incident_id, escalated, T0 + 5, "escalated", "paged")
    recorder.incidents.set_status(
        incident_id, escalated, T0 + 60, "recovered", "back to 12%", value_after=12.0, close=True
    )
    # Closing again keeps the first close time; no value_after keeps the old one.
    recorder.incidents.set_status(
        incident_id, escalated, T0 + 120, "escalated", "told a human", close=True
    )
    again = detail(sessions, incident_id)
    assert again["status"] == "escalated"
    assert again["closed_at"] == "2023-11-14T22:14:20Z"
    assert again["cpu_after"] == 12.0
    assert [e["kind"] for e in again["timeline"]] == [
        "detected",
        "escalated",
        "recovered",
        "escalated",
    ]


def test_set_status_unknown_incident(recorder: Recorder) -> None:
    with pytest.raises(NoResultFound):
        recorder.incidents.set_status(999, IncidentStatus.OPEN, T0, "x", "y")


def test_record_decision(recorder: Recorder, sessions: sessionmaker[Session]) -> None:
    incident_id = detect(recorder)
    wait = Verdict(VerdictKind.WAIT, None, "cooldown until 10:00", "cooldown", overridden=True)
    first = recorder.decisions.record(incident_id, "web1", PROPOSAL, wait, T0 + 1)
    second = decide(recorder, incident_id, at=T0 + 2)
    assert second > first
    found = detail(sessions, incident_id)
    assert [d["id"] for d in found["decisions"]] == [first, second]
    waited = found["decisions"][0]
    assert waited == {
        "id": first,
        "at": "2023-11-14T22:13:21Z",
        "planner": "rules",
        "action": "restart_nginx",
        "confidence": 0.9,
        "rationale": "CPU is high; nginx workers are busy",
        "verdict": "wait",
        "verdict_action": None,
        "rule": "cooldown",
        "reason": "cooldown until 10:00",
        "overridden": True,
        "run_id": None,
        "outcome": None,
        "provider": None,
        "model": None,
        "latency_ms": None,
        "attempts": None,
        "input_tokens": None,
        "output_tokens": None,
        "prompt": None,
        "reply": None,
        "call_error": None,
        "cached": False,
        "fallback": None,
        "trust": None,
    }
    assert found["decisions"][1]["verdict"] == "execute"
    assert found["decisions"][1]["verdict_action"] == "restart_nginx"
    decided = [e for e in found["timeline"] if e["kind"] == "decided"]
    assert len(decided) == 2
    assert "rules proposed restart_nginx (0.90); policy: wait - cooldown" in decided[0]["message"]


def test_record_decision_with_a_model_call_and_a_fallback(
    recorder: Recorder, sessions: sessionmaker[Session], audit_path: Path
) -> None:
    incident_id = detect(recorder)
    call = PlannerCall(
        provider="gemini",
        model="gemini-2.5-flash",
        latency=1.2345,
        attempts=2,
        prompt="host web1: CPU 97.5% for 10s",
        reply='{"action": "reboot_everything"}',
        input_tokens=812,
        output_tokens=37,
        error="action reboot_everything is not whitelisted",
    )
    proposal = Proposal(
        "restart_nginx",
        0.9,
        "CPU is high",
        "rules",
        call=call,
        fallback="model proposed an action outside the whitelist",
    )
    recorder.decisions.record(incident_id, "web1", proposal, EXECUTE, T0 + 1)
    cached = Proposal(
        "restart_nginx",
        0.8,
        "as before",
        "gemini",
        call=PlannerCall("gemini", "gemini-2.5-flash", 0.0, 1, "p", "r", cached=True),
    )
    recorder.decisions.record(incident_id, "web1", cached, EXECUTE, T0 + 2)

    first, second = detail(sessions, incident_id)["decisions"]
    assert first["provider"] == "gemini"
    assert first["model"] == "gemini-2.5-flash"
    assert first["latency_ms"] == pytest.approx(1234.5)
    assert first["attempts"] == 2
    assert (first["input_tokens"], first["output_tokens"]) == (812, 37)
    assert first["prompt"] == "host web1: CPU 97.5% for 10s"
    assert first["reply"] == '{"action": "reboot_everything"}'
    assert first["call_error"] == "action reboot_everything is not whitelisted"
    assert first["cached"] is False
    assert first["fallback"] == "model proposed an action outside the whitelist"
    assert second["cached"] is True
    assert second["fallback"] is None
    assert second["input_tokens"] is None

    decided = [line for line in audit_lines(audit_path) if line["kind"] == "decided"]
    assert "(fallback: model proposed an action outside the whitelist)" in decided[0]["message"]
    assert "fallback" not in decided[1]["message"]
    assert decided[0]["data"]["call"]["model"] == "gemini-2.5-flash"
    # The prompt stays in the store; the audit log names the call only.
    assert "host web1: CPU" not in json.dumps(decided)


# -- runs ------------------------------------------------------------------------------


def test_begin_run_is_committed_before_the_run_ends(
    recorder: Recorder, store_url: str, opened: list[sessionmaker[Session]]
) -> None:
    incident_id = detect(recorder)
    decision_id = decide(recorder, incident_id)
    run_id = begin(recorder, [(decision_id, incident_id)])

    # A second, independent connection pool sees it all before end_run.
    other = open_store(store_url)
    opened.append(other)
    with other() as session:
        incident = session.get_one(Incident, incident_id)
        assert incident.status == "remediating"
        assert incident.attempts == 1
        assert incident.action == "restart_nginx"
        run = session.get_one(PlaybookRun, run_id)
        assert run.status == "running"
        assert run.ended_at is None
        assert run.hosts == ["web1"]
        assert run.trigger == "engine"
        decision = session.get_one(Decision, decision_id)
        assert decision.run_id == run_id
        assert decision.outcome == "running"

    # A second attempt in the same incident counts again (after the first did not cure).
    reopen(recorder, incident_id, at=T0 + 9)
    second = decide(recorder, incident_id, at=T0 + 10)
    begin(recorder, [(second, incident_id)], ident="run-2", at=T0 + 11)
    assert detail(other, incident_id)["attempts"] == 2


def test_begin_run_without_decisions_is_a_manual_run(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    run_id = recorder.runs.begin(
        RunRequest("restart_nginx", PLAYBOOK, ("web1", "web2"), check=True),
        ident="manual-1",
        artifact_dir="/tmp/manual-1",
        trigger="manual",
        requested_by="alice",
        at=T0,
    )
    runs = list_runs(sessions)
    assert [r["id"] for r in runs] == [run_id]
    assert runs[0]["check_mode"] is True
    assert runs[0]["requested_by"] == "alice"
    assert runs[0]["hosts"] == ["web1", "web2"]
    started = [e for e in all_events(sessions) if e.kind == "run_started"]
    assert len(started) == 1
    assert started[0].message == "manual run of restart_nginx in check mode on web1, web2"


def test_extra_var_values_are_never_stored(
    recorder: Recorder, sessions: sessionmaker[Session], audit_path: Path
) -> None:
    incident_id = detect(recorder)
    decision_id = decide(recorder, incident_id)
    run_id = begin(
        recorder,
        [(decision_id, incident_id)],
        api_token="tok-7c1d-SECRET",
        nginx_health_url="http://127.0.0.1/",
    )
    recorder.runs.end(run_id, result(web1=OK))
    found = detail(sessions, incident_id)
    assert found["runs"][0]["extra_var_names"] == ["api_token", "nginx_health_url"]
    assert "tok-7c1d-SECRET" not in json.dumps(found)
    assert "tok-7c1d-SECRET" not in audit_path.read_text(encoding="utf-8")
    with sessions() as session:
        rows = session.execute(text("SELECT * FROM playbook_runs")).all()
    assert "tok-7c1d-SECRET" not in repr(rows)


def test_end_run_success_leaves_the_outcome_to_verification(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    incident_id = detect(recorder)
    decision_id = decide(recorder, incident_id)
    run_id = begin(recorder, [(decision_id, incident_id)])
    recorder.runs.end(run_id, result(web1=OK))
    found = detail(sessions, incident_id)
    run = found["runs"][0]
    assert run["status"] == "successful"
    assert run["rc"] == 0
    assert run["ended_at"] == "2023-11-14T22:13:25Z"
    assert run["stats"]["web1"] == {
        "ok": 4,
        "changed": 1,
        "failures": 0,
        "unreachable": 0,
        "skipped": 0,
        "rescued": 0,
        "ignored": 0,
    }
    assert found["decisions"][0]["outcome"] == "running"
    ended = [e["message"] for e in found["timeline"] if e["kind"] == "run_ended"]
    assert ended == ["restart_nginx succeeded on web1 (run successful, rc 0)"]


def test_end_run_marks_a_failed_host_run_failed(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    first = detect(recorder, "web1")
    second = detect(recorder, "web2")
    d1 = decide(recorder, first, "web1")
    d2 = decide(recorder, second, "web2")
    run_id = begin(recorder, [(d1, first), (d2, second)], "web1", "web2")
    recorder.runs.end(run_id, result("failed", 2, web1=OK, web2=FAILED))
    failed = detail(sessions, second)
    assert failed["decisions"][0]["outcome"] == "run_failed"
    assert failed["runs"][0]["status"] == "failed"
    assert failed["runs"][0]["stats"]["web2"]["failures"] == 1
    messages = [e["message"] for e in failed["timeline"] if e["kind"] == "run_ended"]
    assert messages == ["restart_nginx failed on web2 (run failed, rc 2)"]
    with sessions() as session:
        decision = session.get_one(Decision, d2)
        assert decision.outcome_at is not None


def test_end_run_keeps_a_clean_host_of_a_partly_failed_run(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    first = detect(recorder, "web1")
    second = detect(recorder, "web2")
    d1 = decide(recorder, first, "web1")
    d2 = decide(recorder, second, "web2")
    run_id = begin(recorder, [(d1, first), (d2, second)], "web1", "web2")
    recorder.runs.end(run_id, result("failed", 2, web1=OK, web2=FAILED))
    assert detail(sessions, first)["decisions"][0]["outcome"] == "running"


def test_end_run_error_without_stats(recorder: Recorder, sessions: sessionmaker[Session]) -> None:
    incident_id = detect(recorder)
    decision_id = decide(recorder, incident_id)
    run_id = begin(recorder, [(decision_id, incident_id)])
    recorder.runs.end(run_id, result("error", None, error="ansible-runner not found"))
    found = detail(sessions, incident_id)
    assert found["decisions"][0]["outcome"] == "run_failed"
    assert found["runs"][0]["error"] == "ansible-runner not found"
    assert found["runs"][0]["rc"] is None
    run_level = [e for e in all_events(sessions) if e.kind == "run_ended" and e.host is None]
    assert run_level[0].message == "run run-1 error (rc None): ansible-runner not found"


@pytest.mark.parametrize(
    ("recovered", "outcome"),
    [(True, "recovered"), (False, "not_recovered"), (None, "unverified")],
)
def test_record_verification(
    recorder: Recorder, sessions: sessionmaker[Session], recovered: bool | None, outcome: str
) -> None:
    incident_id = detect(recorder)
    decision_id = decide(recorder, incident_id)
    run_id = begin(recorder, [(decision_id, incident_id)])
    recorder.runs.end(run_id, result(web1=OK))
    check = Verification("web1", recovered, 20.0 if recovered is not None else None, T0 + 9, "ok")
    recorder.decisions.verified(decision_id, check)
    found = detail(sessions, incident_id)
    assert found["decisions"][0]["outcome"] == outcome
    verified = [e for e in all_events(sessions) if e.kind == "verified"]
    assert len(verified) == 1
    assert verified[0].run_id == run_id
    assert verified[0].incident_id == incident_id
    assert verified[0].data == {"recovered": recovered, "value": check.value}


# -- history ---------------------------------------------------------------------------


def test_host_history(recorder: Recorder) -> None:
    incident_id = detect(recorder)
    # Attempt 1: ran, did not cure.
    d1 = decide(recorder, incident_id, at=T0 + 1)
    r1 = begin(recorder, [(d1, incident_id)], ident="run-1", at=T0 + 2)
    recorder.runs.end(r1, result(ident="run-1", ended=T0 + 5, web1=OK))
    recorder.decisions.verified(d1, Verification("web1", False, 95.0, T0 + 9, "still high"))
    reopen(recorder, incident_id, at=T0 + 10)
    # Attempt 2: the playbook failed.
    d2 = decide(recorder, incident_id, at=T0 + 20)
    r2 = begin(recorder, [(d2, incident_id)], ident="run-2", at=T0 + 21)
    recorder.runs.end(r2, result("failed", 2, ident="run-2", ended=T0 + 25, web1=FAILED))
    reopen(recorder, incident_id, at=T0 + 26)
    # Attempt 3: cured.
    d3 = decide(recorder, incident_id, at=T0 + 40)
    r3 = begin(recorder, [(d3, incident_id)], ident="run-3", at=T0 + 41)
    recorder.runs.end(r3, result(ident="run-3", ended=T0 + 45, web1=OK))
    recorder.decisions.verified(d3, Verification("web1", True, 10.0, T0 + 50, "recovered"))
    reopen(recorder, incident_id, at=T0 + 51)
    # Attempt 4: still running. Plus decisions that never ran, and another host.
    d4 = decide(recorder, incident_id, at=T0 + 60)
    begin(recorder, [(d4, incident_id)], ident="run-4", at=T0 + 61)
    decide(recorder, incident_id, at=T0 + 62)  # execute verdict, no run
    recorder.decisions.record(
        incident_id, "web1", PROPOSAL, Verdict(VerdictKind.WAIT, None, "busy", "locked"), T0 + 63
    )
    other = detect(recorder, "web2")
    d_other = decide(recorder, other, "web2")
    begin(recorder, [(d_other, other)], "web2", ident="run-x", at=T0 + 3)

    history = recorder.memory.host_history("web1", since=T0)
    assert history.host == "web1"
    assert history.attempts == (
        Attempt(incident_id, "restart_nginx", T0 + 2, T0 + 5, False),
        Attempt(incident_id, "restart_nginx", T0 + 21, T0 + 25, False),
        Attempt(incident_id, "restart_nginx", T0 + 41, T0 + 45, True),
        Attempt(incident_id, "restart_nginx", T0 + 61, None, None),
    )
    assert history.remediating_hosts == 2  # web1's and web2's incidents

    recent = recorder.memory.host_history("web1", since=T0 + 30)
    assert [a.succeeded for a in recent.attempts] == [True, None]
    assert recorder.memory.host_history("web3", since=T0).attempts == ()


def test_active_incidents(recorder: Recorder) -> None:
    open_id = detect(recorder, "web1")
    done = detect(recorder, "web2")
    recorder.incidents.set_status(
        done, IncidentStatus.RESOLVED, T0 + 5, "resolved", "ok", close=True
    )
    escalated = detect(recorder, "web3")
    d = decide(recorder, escalated, "web3")
    run_id = begin(recorder, [(d, escalated)], "web3")
    recorder.runs.end(run_id, result("failed", 2, web3=FAILED))
    recorder.incidents.set_status(escalated, IncidentStatus.ESCALATED, T0 + 9, "escalated", "paged")
    queries: list[str] = []
    bind = recorder.sessions.kw["bind"]
    listen = lambda *args: queries.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
    event.listen(bind, "before_cursor_execute", listen)
    try:
        active = recorder.memory.active_incidents()
    finally:
        event.remove(bind, "before_cursor_execute", listen)
    assert [(a.id, a.host, a.kind, a.status, a.tried) for a in active] == [
        (open_id, "web1", "high_cpu", "open", []),
        (escalated, "web3", "high_cpu", "escalated", ["restart_nginx"]),
    ]
    assert len([q for q in queries if q.lstrip().upper().startswith("SELECT")]) == 1


def test_recover_interrupted(recorder: Recorder, sessions: sessionmaker[Session]) -> None:
    crashed = detect(recorder, "web1")
    d1 = decide(recorder, crashed, "web1")
    in_flight = begin(recorder, [(d1, crashed)], "web1", ident="run-1")
    finished = detect(recorder, "web2")
    d2 = decide(recorder, finished, "web2")
    done = begin(recorder, [(d2, finished)], "web2", ident="run-2")
    recorder.runs.end(done, result(ident="run-2", web2=OK))

    assert recorder.runs.recover_interrupted(T0 + 100) == [in_flight]

    with sessions() as session:
        assert session.get_one(PlaybookRun, in_flight).status == "interrupted"
        assert session.get_one(PlaybookRun, in_flight).ended_at is not None
        assert session.get_one(PlaybookRun, done).status == "successful"
        assert session.get_one(Decision, d1).outcome == "interrupted"
        # run-2 had ended: it must not be counted as an interrupted run.
        assert session.get_one(Decision, d2).outcome != "interrupted"
        assert session.get_one(Incident, crashed).status == "open"
        # web2's run ended, but its incident was still remediating: decided again too.
        assert session.get_one(Incident, finished).status == "open"
    kinds = [e["kind"] for e in detail(sessions, crashed)["timeline"]]
    assert kinds[-1] == "reopened"
    interrupted = [e for e in all_events(sessions) if e.kind == "run_interrupted"]
    assert [e.run_id for e in interrupted] == [in_flight]
    history = recorder.memory.host_history("web1", since=T0)
    assert history.attempts[0].succeeded is None  # effect unknown: no failure to cure
    assert history.remediating_hosts == 0

    # Nothing left to recover the second time.
    assert recorder.runs.recover_interrupted(T0 + 200) == []


def test_staged_release_and_discard_are_recorded_in_order(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    staged = recorder.staged.stage(request("web1"), ident="run-s1", artifact_dir="/r/s1", at=T0)
    incident = detect(recorder, "web1", at=T0 + 3)
    decision = decide(recorder, incident, "web1", at=T0 + 3)
    recorder.staged.release(
        staged, action="restart_nginx", at=T0 + 3, decisions=[(decision, incident)]
    )
    with pytest.raises(IllegalMoveError, match="not staged"):
        recorder.staged.release(staged, action="restart_nginx", at=T0 + 4, decisions=[])
    recorder.runs.end(staged, result(ident="run-s1", web1=OK))
    other = recorder.staged.stage(request("web2"), ident="run-s2", artifact_dir="/r/s2", at=T0)
    recorder.staged.discarded(other, result(ident="run-s2", web2=HostRunStats(ok=3)), "it calmed")

    with sessions() as session:
        assert session.get_one(PlaybookRun, staged).status == "successful"
        assert session.get_one(Decision, decision).run_id == staged
        assert session.get_one(Incident, incident).status == "remediating"
        discarded = session.get_one(PlaybookRun, other)
        assert (discarded.status, discarded.error) == (
            "discarded",
            "it calmed (run successful, rc 0)",
        )
    kinds = [(e.run_id, e.kind) for e in all_events(sessions) if e.run_id is not None]
    assert kinds == [
        (staged, "run_staged"),
        (staged, "run_released"),
        (staged, "remediating"),
        (staged, "run_ended"),
        (staged, "run_ended"),
        (other, "run_staged"),
        (other, "run_discarded"),
    ]


def test_a_run_staged_when_the_engine_stopped_is_discarded_not_interrupted(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    # Its release is recorded before it is given: a run still "staged" was never released,
    # changed nothing, and is no failed attempt on the host.
    staged = recorder.staged.stage(request("web1"), ident="run-s", artifact_dir="/r/s", at=T0)
    assert recorder.runs.recover_interrupted(T0 + 100) == []
    with sessions() as session:
        run = session.get_one(PlaybookRun, staged)
        assert run.status == "discarded" and run.ended_at is not None
        assert run.error == "the engine stopped while the run was staged"
    assert [e.kind for e in all_events(sessions)][-1] == "run_discarded"
    assert recorder.memory.host_history("web1", since=T0).attempts == ()


# -- queries ---------------------------------------------------------------------------


def test_list_incidents_filters_and_pages(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    ids = [detect(recorder, f"web{i % 3}", at=T0 + i) for i in range(7)]
    for incident_id in ids[::2]:
        recorder.incidents.set_status(
            incident_id, IncidentStatus.RESOLVED, T0 + 50, "resolved", "ok"
        )

    everything = list_incidents(sessions)
    assert [i["id"] for i in everything] == ids[::-1]

    page1 = list_incidents(sessions, limit=3)
    page2 = list_incidents(sessions, limit=3, before_id=page1[-1]["id"])
    page3 = list_incidents(sessions, limit=3, before_id=page2[-1]["id"])
    assert [i["id"] for i in page1 + page2 + page3] == ids[::-1]
    assert len(page3) == 1
    assert list_incidents(sessions, before_id=ids[0]) == []

    resolved = list_incidents(sessions, status="resolved")
    assert [i["id"] for i in resolved] == ids[::2][::-1]
    on_web1 = list_incidents(sessions, host="web1")
    assert [i["id"] for i in on_web1] == [ids[4], ids[1]]
    both = list_incidents(sessions, status="open", host="web1")
    assert [i["id"] for i in both] == [ids[1]]
    paged = list_incidents(sessions, status="resolved", limit=1, before_id=ids[4])
    assert [i["id"] for i in paged] == [ids[2]]
    assert list_incidents(sessions, host="nope") == []


def test_incident_detail_shape(recorder: Recorder, sessions: sessionmaker[Session]) -> None:
    assert incident_detail(sessions, 12345) is None
    incident_id = detect(recorder)
    decision_id = decide(recorder, incident_id)
    run_id = begin(recorder, [(decision_id, incident_id)])
    recorder.runs.end(run_id, result(web1=OK))
    recorder.decisions.verified(decision_id, Verification("web1", True, 9.0, T0 + 9, "cured"))
    recorder.incidents.set_status(
        incident_id,
        IncidentStatus.RESOLVED,
        T0 + 10,
        "resolved",
        "cured",
        value_after=9.0,
        close=True,
    )
    found = detail(sessions, incident_id)
    assert set(found) == {*INCIDENT, "decisions", "approvals", "runs", "timeline"}
    assert found["approvals"] == []
    assert found["action"] == "restart_nginx"
    assert found["attempts"] == 1
    assert [r["id"] for r in found["runs"]] == [run_id]
    assert set(found["runs"][0]) >= {"ident", "playbook", "status", "artifact_dir", "stats"}
    assert found["runs"][0]["playbook"] == PLAYBOOK
    assert [e["kind"] for e in found["timeline"]] == [
        "detected",
        "decided",
        "remediating",
        "run_ended",
        "verified",
        "resolved",
    ]
    assert all(set(e) == {"at", "kind", "message", "run_id"} for e in found["timeline"])
    assert all(e["at"].endswith("Z") for e in found["timeline"])
    json.dumps(found)  # JSON-ready as documented


# -- the audit log ---------------------------------------------------------------------


def test_every_event_is_one_audit_line(
    recorder: Recorder, sessions: sessionmaker[Session], audit_path: Path
) -> None:
    incident_id = detect(recorder)
    decision_id = decide(recorder, incident_id)
    run_id = begin(recorder, [(decision_id, incident_id)])
    recorder.runs.end(run_id, result(web1=OK))
    recorder.decisions.verified(decision_id, Verification("web1", True, 9.0, T0 + 9, "cured"))
    recorder.incidents.set_status(
        incident_id, IncidentStatus.RESOLVED, T0 + 10, "resolved", "cured"
    )
    recorder.journal.event(T0 + 11, "note", "operator looked", host="web1", incident_id=incident_id)
    recorder.runs.recover_interrupted(T0 + 12)  # nothing to recover: no event

    events = all_events(sessions)
    lines = audit_lines(audit_path)
    assert len(lines) == len(events) == 9
    by_id = {line["event_id"]: line for line in lines}
    assert len(by_id) == len(lines)
    for row in events:
        line = by_id[row.id]
        assert line["kind"] == row.kind
        assert line["host"] == row.host
        assert line["incident_id"] == row.incident_id
        assert line["run_id"] == row.run_id
        assert line["message"] == row.message
        assert line["data"] == row.data
        assert line["at"].endswith("Z")
    assert [line["kind"] for line in lines] == [
        "detected",
        "decided",
        "run_started",
        "remediating",
        "run_ended",
        "run_ended",
        "verified",
        "resolved",
        "note",
    ]
    assert lines[0]["at"] == "2023-11-14T22:13:20Z"
    assert lines[0]["data"] == {"value": 97.5, "since": "2023-11-14T22:13:10Z"}
