"""Playbook runs on the write side: recorded before they start and after they end, and
after a crash, the runs left in flight marked interrupted (never re-run blindly)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from engine.incident.life import IncidentStatus, check_status_move
from engine.record.events import Journal
from engine.store.models import Decision, Event, Incident, PlaybookRun
from engine.timeutil import to_dt, to_ts
from engine.types import RunRequest, RunResult

RUNNING_RUN = ("pending", "running")
STAGED_RUN = "staged"


@dataclass(frozen=True, slots=True)
class InFlight:
    """A run the store calls running or staged (after a crash: maybe no longer)."""

    id: int
    ident: str
    hosts: tuple[str, ...]
    started_at: float
    artifact_dir: str


class RunRecords:
    """Begins and ends runs (with the incidents they remediate), and recovers from crashes."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def begin(
        self,
        request: RunRequest,
        *,
        ident: str,
        artifact_dir: str,
        trigger: str,
        requested_by: str,
        at: float,
        decisions: Sequence[tuple[int, int]] = (),
        reason: str | None = None,
        ticket: str | None = None,
    ) -> int:
        """Record a run as started (and its incidents as remediating) before it starts;
        a run by hand with its reason and ticket (checked: engine.record.run_reason)."""
        journal = self.journal
        why = {"reason": reason, "ticket": ticket} if reason or ticket else {}
        with journal.sessions() as session:
            run = new_run(
                request,
                ident=ident,
                artifact_dir=artifact_dir,
                trigger=trigger,
                requested_by=requested_by,
                status="running",
                at=at,
            )
            run.reason, run.ticket = journal.optional_text(reason), ticket  # reason redacted
            session.add(run)
            session.flush()
            mode = " in check mode" if request.check else ""
            events = [
                journal.add(
                    session,
                    at,
                    "run_started",
                    f"{trigger} run of {request.action}{mode} on {', '.join(request.hosts)}",
                    run_id=run.id,
                    data={"ident": ident, "requested_by": requested_by, **why},
                )
            ]
            events += remediating(journal, session, run, decisions, at)
            journal.commit(session, events)
            return run.id

    def end(self, run_id: int, result: RunResult) -> None:
        """Record how a run ended; a host whose run failed has its attempt marked failed."""
        journal = self.journal
        with journal.sessions() as session:
            run = session.get_one(PlaybookRun, run_id)
            run.status = result.status
            run.rc = result.rc
            run.error = journal.optional_text(result.error)
            run.ended_at = to_dt(result.ended_at)
            run.stats = {host: stats_dict(s) for host, s in result.stats.items()}
            events = [
                journal.add(
                    session,
                    result.ended_at,
                    "run_ended",
                    f"run {run.ident} {result.status} (rc {result.rc})"
                    + (f": {result.error}" if result.error else ""),
                    run_id=run_id,
                    data={"stats": run.stats},
                )
            ]
            decisions = session.scalars(select(Decision).where(Decision.run_id == run_id)).all()
            for decision in decisions:
                ok = result.host_succeeded(decision.host)
                if not ok:
                    decision.outcome = "run_failed"
                    decision.outcome_at = to_dt(result.ended_at)
                events.append(
                    journal.add(
                        session,
                        result.ended_at,
                        "run_ended",
                        f"{run.action} {'succeeded' if ok else 'failed'} on {decision.host} "
                        f"(run {result.status}, rc {result.rc})"
                        + (
                            f": {result.host_errors[decision.host]}"
                            if decision.host in result.host_errors
                            else ""
                        ),
                        host=decision.host,
                        incident_id=decision.incident_id,
                        run_id=run_id,
                    )
                )
            journal.commit(session, events)

    def in_flight(self) -> list[InFlight]:
        """Every run the store calls running or staged, oldest first."""
        with self.journal.sessions() as session:
            runs = session.scalars(
                select(PlaybookRun)
                .where(PlaybookRun.status.in_([*RUNNING_RUN, STAGED_RUN]))
                .order_by(PlaybookRun.id)
            ).all()
            return [
                InFlight(
                    id=run.id,
                    ident=run.ident,
                    hosts=tuple(run.hosts or ()),
                    started_at=to_ts(run.started_at) if run.started_at else 0.0,
                    artifact_dir=run.artifact_dir or "",
                )
                for run in runs
            ]

    def recover_interrupted(self, at: float, only: Collection[int] | None = None) -> list[int]:
        """After a crash: mark runs still 'running' (of ``only``, when given: those whose
        owner is gone) as interrupted; never re-run them blindly.

        Pending approvals and awaiting_approval incidents are left as they are: a human
        may still answer.
        """
        journal = self.journal
        with journal.sessions() as session:
            runs = session.scalars(
                select(PlaybookRun).where(PlaybookRun.status.in_([*RUNNING_RUN, STAGED_RUN]))
            )
            events = []
            run_ids = []
            for run in runs.all():
                if only is not None and run.id not in only:
                    continue  # a live process (a run by hand) still owns it
                if run.status == STAGED_RUN:
                    # Never released (the release is recorded before it is given): the run
                    # ended at its hold, or its hold timed out, having changed nothing.
                    run.status = "discarded"
                    run.ended_at = to_dt(at)
                    run.error = "the engine stopped while the run was staged"
                    events.append(
                        journal.add(
                            session,
                            at,
                            "run_discarded",
                            f"staged run {run.ident} discarded: the engine stopped before its "
                            "verdict, and a staged run changes nothing unless released",
                            run_id=run.id,
                        )
                    )
                    continue
                run.status = "interrupted"
                run.ended_at = to_dt(at)
                run_ids.append(run.id)
                events.append(
                    journal.add(
                        session,
                        at,
                        "run_interrupted",
                        f"run {run.ident} was in flight when the engine stopped; its effect is "
                        "unknown and it is not re-run: the host is verified on fresh data first",
                        run_id=run.id,
                    )
                )
            if run_ids:
                session.execute(
                    update(Decision)
                    .where(
                        Decision.run_id.in_(run_ids),
                        or_(Decision.outcome == "running", Decision.outcome.is_(None)),
                    )
                    .values(outcome="interrupted", outcome_at=to_dt(at))
                )
            # Runs that ended but were never verified: their effect is unknown too.
            session.execute(
                update(Decision)
                .where(Decision.outcome == "running", Decision.run_id.is_not(None))
                .values(outcome="unverified", outcome_at=to_dt(at))
            )
            for incident in session.scalars(
                select(Incident).where(Incident.status == IncidentStatus.REMEDIATING)
            ).all():
                incident.status = IncidentStatus.OPEN
                incident.updated_at = to_dt(at)
                events.append(
                    journal.add(
                        session,
                        at,
                        "reopened",
                        "engine restarted during remediation; deciding again",
                        host=incident.host,
                        incident_id=incident.id,
                    )
                )
            journal.commit(session, events)
            return run_ids


def remediating(
    journal: Journal,
    session: Session,
    run: PlaybookRun,
    decisions: Sequence[tuple[int, int]],
    at: float,
) -> list[Event]:
    """Link the decisions to the run and mark their incidents remediating (in ``session``)."""
    events = []
    for decision_id, incident_id in decisions:
        decision = session.get_one(Decision, decision_id)
        decision.run_id = run.id
        decision.outcome = "running"
        incident = session.get_one(Incident, incident_id)
        check_status_move(incident.status, IncidentStatus.REMEDIATING)
        incident.status = IncidentStatus.REMEDIATING
        incident.action = run.action
        incident.attempts += 1
        incident.updated_at = to_dt(at)
        events.append(
            journal.add(
                session,
                at,
                "remediating",
                f"running {run.action} (run {run.ident})",
                host=incident.host,
                incident_id=incident_id,
                run_id=run.id,
            )
        )
    return events


def new_run(
    request: RunRequest,
    *,
    ident: str,
    artifact_dir: str,
    trigger: str,
    requested_by: str,
    status: str,
    at: float,
) -> PlaybookRun:
    """A run's row as it is first recorded (extra var names only: values may be secret)."""
    return PlaybookRun(
        ident=ident,
        action=request.action,
        playbook=request.playbook,
        hosts=list(request.hosts),
        check_mode=request.check,
        trigger=trigger,
        requested_by=requested_by,
        extra_var_names=sorted(request.extra_vars),
        status=status,
        rc=None,
        stats={},
        artifact_dir=artifact_dir,
        created_at=to_dt(at),
        started_at=to_dt(at),
    )


def stats_dict(stats: Any) -> dict[str, int]:
    """A host's run stats as stored."""
    return {
        name: int(getattr(stats, name))
        for name in ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")
    }
