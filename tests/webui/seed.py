"""Rows for web UI tests: a handful per table, inserted directly so each check knows them.

``seed(sessions)`` adds six incidents (ids 1-6), a run with its decisions and an event,
three approvals (pending, pending past its time, approved) and three host states.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from engine.record.recorder import Recorder
from engine.store.models import (
    ApprovalRow,
    Decision,
    Event,
    HostStateRow,
    Incident,
    PlaybookRun,
)
from engine.types import Proposal, RunRequest, Verdict, VerdictKind

NOW = datetime.now(tz=UTC).replace(microsecond=0)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def seed(sessions: sessionmaker[Session], *, artifact_dir: str = "/tmp/r1") -> dict[str, int]:
    """Insert the rows; the ids of the run and of the pending, expired and approved approvals."""
    with sessions.begin() as s:
        for i, (host, kind, status) in enumerate(
            [
                ("web1", "cpu", "resolved"),
                ("web2", "cpu", "open"),
                ("web1", "memory", "escalated"),
                ("web3", "cpu", "awaiting_approval"),
                ("web1", "cpu", "open"),
                ("web2", "cpu", "awaiting_approval"),
            ]
        ):
            at = T0 + timedelta(days=i)
            s.add(
                Incident(
                    host=host,
                    kind=kind,
                    status=status,
                    attempts=0,
                    opened_at=at,
                    updated_at=at,
                    cpu_before=97.5,
                    summary=f"incident {i + 1}",
                )
            )
        s.flush()
        run = PlaybookRun(
            ident="r1",
            action="restart_nginx",
            playbook="restart_nginx.yml",
            hosts=["web1"],
            trigger="engine",
            requested_by="engine",
            extra_var_names=[],
            status="successful",
            rc=0,
            stats={"web1": {"ok": 3}},
            artifact_dir=artifact_dir,
            created_at=T0,
            started_at=T0,
            ended_at=T0 + timedelta(seconds=9),
        )
        s.add(run)
        s.flush()
        decisions = [
            Decision(
                incident_id=incident_id,
                host="web1",
                created_at=T0,
                planner="rules",
                action="restart_nginx",
                confidence=1.0,
                rationale="hot",
                verdict="execute",
                rule="r",
                reason="ok",
                run_id=run_id,
            )
            for incident_id, run_id in [(1, run.id), (4, None), (6, None), (6, None)]
        ]
        s.add_all(decisions)
        s.add(Event(at=T0, kind="opened", host="web1", incident_id=1, message="opened", data={}))
        s.flush()
        hour = timedelta(hours=1)
        pending, expired, approved = (
            ApprovalRow(
                incident_id=incident_id,
                decision_id=decision.id,
                host="web3",
                action="restart_nginx",
                status=status,
                rationale="why",
                requested_at=requested,
                expires_at=requested + hour,
            )
            for incident_id, decision, status, requested in [
                (4, decisions[1], "pending", NOW),
                (6, decisions[2], "pending", NOW - 2 * hour),
                (6, decisions[3], "approved", NOW - 3 * hour),
            ]
        )
        s.add_all([pending, expired, approved])
        for host, status in [("web1", "NORMAL"), ("web2", "HIGH_CPU"), ("web3", "UNKNOWN")]:
            s.add(
                HostStateRow(
                    host=host,
                    status=status,
                    value=50.0,
                    reason="r",
                    since=NOW,
                    updated_at=NOW,
                    recent=[[1.0, 2.0]],
                )
            )
        s.flush()
        return {
            "run": run.id,
            "pending": pending.id,
            "expired": expired.id,
            "approved": approved.id,
        }


@dataclass(frozen=True)
class ApprovalStory:
    """An incident that waited for approval, was approved and then run; one still waiting."""

    incident: int
    approval: int
    run: int
    ident: str
    waiting_incident: int
    waiting_approval: int


def approval_story(recorder: Recorder, *, pending_for: float) -> ApprovalStory:
    """Through the recorder, as the engine writes them: web1's approval approved and its run
    begun (never ended), web2's approval pending for ``pending_for`` seconds more."""
    now = time.time()
    ask = Verdict(VerdictKind.AWAIT_APPROVAL, "restart_nginx", "confidence below 0.8", "approval")
    execute = Verdict(VerdictKind.EXECUTE, "restart_nginx", "approved", "approval")
    model = Proposal("restart_nginx", 0.62, "nginx workers are busy", "gemini")
    incident = recorder.incidents.open("web1", "high_cpu", 97.0, "hot", at=now - 300, since=now)
    asked = recorder.decisions.record(incident, "web1", model, ask, now - 290)
    approval = recorder.approvals.request(
        incident, asked, "web1", "restart_nginx", "busy", at=now - 290, expires_at=now + 3600
    )
    recorder.approvals.decide(approval, approve=True, by="otto", at=now - 200)
    human = Proposal("restart_nginx", 1.0, "approved by otto", planner="human")
    decided = recorder.decisions.record(incident, "web1", human, execute, now - 190)
    run = recorder.runs.begin(
        RunRequest("restart_nginx", "/p/restart_nginx.yml", ("web1",)),
        ident="r-approved",
        artifact_dir="/nowhere",
        trigger="engine",
        requested_by="engine",
        at=now - 190,
        decisions=[(decided, incident)],
    )
    waiting = recorder.incidents.open("web2", "high_cpu", 96.0, "hot", at=now - 60, since=now)
    asked = recorder.decisions.record(waiting, "web2", model, ask, now - 50)
    pending = recorder.approvals.request(
        waiting, asked, "web2", "restart_nginx", "busy", at=now - 50, expires_at=now + pending_for
    )
    return ApprovalStory(incident, approval, run, "r-approved", waiting, pending)
