"""Record: the incident state machine, written to the SQL store and the JSONL audit log.

Every transition is committed before the side effect it announces starts and
again after it ends, so a crash never loses an incident and never hides a run.

    open ──► remediating ──► open (not cured: next rung) ──► ... ──► escalated
      │            │
      │            └──► resolved (verified below the clear threshold)
      └──► resolved (recovered before any action)        failed: could not carry on
    open ──► awaiting_approval ──► remediating (approved) or open (rejected, expired)

An approval is pending until a human approves or rejects it, or it expires; only a
pending, unexpired approval can be decided, and only once (a conditional UPDATE).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Update, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.audit import AuditLog
from engine.store.models import ApprovalRow, Decision, Event, Incident, PlaybookRun
from engine.timeutil import iso, to_dt, to_ts
from engine.types import (
    ACTIVE_STATUSES,
    Approval,
    ApprovalStatus,
    Attempt,
    HostHistory,
    IncidentStatus,
    Proposal,
    RunRequest,
    RunResult,
    Verdict,
    VerdictKind,
    Verification,
)

RUNNING_RUN = ("pending", "running")


class ApprovalError(ValueError):
    """An approval that cannot be decided: unknown, already decided, or expired."""


class Recorder:
    """Writes incidents, decisions, runs and events; every method is one transaction."""

    def __init__(self, sessions: sessionmaker[Session], audit: AuditLog) -> None:
        self.sessions = sessions
        self.audit = audit

    # -- events ---------------------------------------------------------------

    def _event(
        self,
        session: Session,
        at: float,
        kind: str,
        message: str,
        *,
        host: str | None = None,
        incident_id: int | None = None,
        run_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> Event:
        row = Event(
            at=to_dt(at),
            kind=kind,
            host=host,
            incident_id=incident_id,
            run_id=run_id,
            message=message,
            data=data or {},
        )
        session.add(row)
        return row

    def _commit(self, session: Session, events: Iterable[Event] = ()) -> None:
        session.commit()
        for row in events:
            self.audit.write(
                {
                    "at": iso(row.at),
                    "event_id": row.id,
                    "kind": row.kind,
                    "host": row.host,
                    "incident_id": row.incident_id,
                    "run_id": row.run_id,
                    "message": row.message,
                    "data": row.data,
                }
            )

    def event(self, at: float, kind: str, message: str, **refs: Any) -> None:
        """Record a free-standing timeline event (and its audit line)."""
        with self.sessions() as session:
            row = self._event(session, at, kind, message, **refs)
            self._commit(session, [row])

    # -- incidents ------------------------------------------------------------

    def open_incident(
        self, host: str, kind: str, value: float | None, reason: str, *, at: float, since: float
    ) -> int:
        """Open an incident for a host and record its detection."""
        with self.sessions() as session:
            incident = Incident(
                host=host,
                kind=kind,
                status=IncidentStatus.OPEN,
                opened_at=to_dt(at),
                updated_at=to_dt(at),
                cpu_before=value,
                summary=reason,
            )
            session.add(incident)
            session.flush()
            row = self._event(
                session,
                at,
                "detected",
                reason,
                host=host,
                incident_id=incident.id,
                data={"value": value, "since": iso(to_dt(since))},
            )
            self._commit(session, [row])
            return incident.id

    def set_status(
        self,
        incident_id: int,
        status: IncidentStatus,
        at: float,
        kind: str,
        message: str,
        *,
        cpu_after: float | None = None,
        close: bool = False,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Move an incident to a status, with the event that explains why."""
        with self.sessions() as session:
            incident = session.get_one(Incident, incident_id)
            incident.status = status
            incident.updated_at = to_dt(at)
            incident.summary = message
            if cpu_after is not None:
                incident.cpu_after = cpu_after
            if close and incident.closed_at is None:
                incident.closed_at = to_dt(at)
            row = self._event(
                session, at, kind, message, host=incident.host, incident_id=incident_id, data=data
            )
            self._commit(session, [row])

    def record_decision(
        self, incident_id: int, host: str, proposal: Proposal, verdict: Verdict, at: float
    ) -> int:
        """Store a proposal (with its model call, if any) and the policy's verdict over it."""
        call = proposal.call
        with self.sessions() as session:
            decision = Decision(
                incident_id=incident_id,
                host=host,
                created_at=to_dt(at),
                planner=proposal.planner,
                action=proposal.action,
                confidence=proposal.confidence,
                rationale=proposal.rationale,
                verdict=verdict.kind,
                verdict_action=verdict.action,
                rule=verdict.rule,
                reason=verdict.reason,
                overridden=verdict.overridden,
                fallback=proposal.fallback,
            )
            if call is not None:
                decision.provider = call.provider
                decision.model = call.model
                decision.latency_ms = call.latency * 1000.0
                decision.attempts = call.attempts
                decision.input_tokens = call.input_tokens
                decision.output_tokens = call.output_tokens
                decision.prompt = call.prompt
                decision.reply = call.reply
                decision.call_error = call.error
                decision.cached = call.cached
            session.add(decision)
            session.flush()
            fallback = f" (fallback: {proposal.fallback})" if proposal.fallback else ""
            message = (
                f"{proposal.planner} proposed {proposal.action} "
                f"({proposal.confidence:.2f}){fallback}; policy: {verdict.kind} - {verdict.reason}"
            )
            data: dict[str, Any] = {"decision_id": decision.id, "rule": verdict.rule}
            if call is not None:
                # Prompt and reply stay in the store: the audit line names the call only.
                data["call"] = {
                    "provider": call.provider,
                    "model": call.model,
                    "latency_ms": decision.latency_ms,
                    "cached": call.cached,
                }
            if proposal.fallback:
                data["fallback"] = proposal.fallback
            row = self._event(
                session, at, "decided", message, host=host, incident_id=incident_id, data=data
            )
            self._commit(session, [row])
            return decision.id

    # -- approvals ------------------------------------------------------------

    def request_approval(
        self,
        incident_id: int,
        decision_id: int,
        host: str,
        action: str,
        rationale: str,
        *,
        at: float,
        expires_at: float,
    ) -> int:
        """Hold an action for a human: a pending approval, the incident awaiting_approval."""
        if expires_at <= at:
            raise ApprovalError(f"approval for {action} on {host} would expire before it starts")
        with self.sessions() as session:
            approval = ApprovalRow(
                incident_id=incident_id,
                decision_id=decision_id,
                host=host,
                action=action,
                status=ApprovalStatus.PENDING,
                rationale=rationale,
                requested_at=to_dt(at),
                expires_at=to_dt(expires_at),
            )
            session.add(approval)
            session.flush()
            incident = session.get_one(Incident, incident_id)
            message = (
                f"{action} on {host} awaits approval {approval.id} until {iso(approval.expires_at)}"
            )
            incident.status = IncidentStatus.AWAITING_APPROVAL
            incident.updated_at = to_dt(at)
            incident.summary = message
            row = self._event(
                session,
                at,
                "awaiting_approval",
                message,
                host=host,
                incident_id=incident_id,
                data={
                    "approval_id": approval.id,
                    "decision_id": decision_id,
                    "action": action,
                    "expires_at": iso(approval.expires_at),
                },
            )
            self._commit(session, [row])
            return approval.id

    def approvals(self, ids: Sequence[int]) -> dict[int, Approval]:
        """The approvals with these ids, as stored (the caller compares expires_at to its clock)."""
        if not ids:
            return {}
        with self.sessions() as session:
            rows = session.scalars(select(ApprovalRow).where(ApprovalRow.id.in_(set(ids)))).all()
            return {row.id: _approval(row) for row in rows}

    def pending_approvals(self) -> list[Approval]:
        """Every pending approval, oldest first (for the engine to resume after a restart)."""
        with self.sessions() as session:
            rows = session.scalars(
                select(ApprovalRow)
                .where(ApprovalRow.status == ApprovalStatus.PENDING)
                .order_by(ApprovalRow.requested_at, ApprovalRow.id)
            ).all()
            return [_approval(row) for row in rows]

    def decide_approval(
        self, approval_id: int, *, approve: bool, by: str, at: float, note: str | None = None
    ) -> Approval:
        """Approve or reject a pending, unexpired approval; anything else is an ApprovalError."""
        status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        with self.sessions() as session:
            row = session.get(ApprovalRow, approval_id)
            if row is None:
                raise ApprovalError(f"no approval with id {approval_id}")
            if row.status != ApprovalStatus.PENDING:
                raise ApprovalError(_settled(row))
            current = _approval(row)
            if at >= current.expires_at:
                expired = self._expire(session, row, at)
                if expired is None:  # settled by someone else in the meantime
                    session.rollback()
                    session.refresh(row)
                    raise ApprovalError(_settled(row))
                self._commit(session, [expired])
                raise ApprovalError(_expired(row))
            # Two people deciding at once: the row lock (PostgreSQL) or the write lock
            # (SQLite) serialises the UPDATEs, and only the first still finds it pending.
            won = _rowcount(
                session,
                update(ApprovalRow)
                .where(ApprovalRow.id == approval_id, ApprovalRow.status == ApprovalStatus.PENDING)
                .values(status=status, decided_at=to_dt(at), decided_by=by, note=note),
            )
            if won != 1:
                session.rollback()
                session.refresh(row)
                raise ApprovalError(_settled(row))
            verb = "approved" if approve else "rejected"
            event = self._event(
                session,
                at,
                verb,
                f"{by} {verb} {row.action} on {row.host} (approval {approval_id})"
                + (f": {note}" if note else ""),
                host=row.host,
                incident_id=row.incident_id,
                data={"approval_id": approval_id, "by": by, "note": note},
            )
            self._commit(session, [event])
            return Approval(
                id=current.id,
                incident_id=current.incident_id,
                decision_id=current.decision_id,
                host=current.host,
                action=current.action,
                status=status,
                requested_at=current.requested_at,
                expires_at=current.expires_at,
                rationale=current.rationale,
                decided_at=at,
                decided_by=by,
                note=note,
            )

    def expire_approval(self, approval_id: int, *, at: float) -> bool:
        """Mark a pending approval expired (timed out, or no longer wanted); False if it was not."""
        with self.sessions() as session:
            row = session.get(ApprovalRow, approval_id)
            if row is None:
                raise ApprovalError(f"no approval with id {approval_id}")
            event = self._expire(session, row, at)
            if event is None:
                session.rollback()
                return False
            self._commit(session, [event])
            return True

    def _expire(self, session: Session, row: ApprovalRow, at: float) -> Event | None:
        """Conditionally move a row from pending to expired; the event, or None if it was not."""
        done = _rowcount(
            session,
            update(ApprovalRow)
            .where(ApprovalRow.id == row.id, ApprovalRow.status == ApprovalStatus.PENDING)
            .values(status=ApprovalStatus.EXPIRED, decided_at=to_dt(at)),
        )
        if done != 1:
            return None
        return self._event(
            session,
            at,
            "approval_expired",
            f"approval {row.id} for {row.action} on {row.host} expired unanswered "
            f"(it was due by {iso(row.expires_at)})",
            host=row.host,
            incident_id=row.incident_id,
            data={"approval_id": row.id},
        )

    # -- runs -----------------------------------------------------------------

    def begin_run(
        self,
        request: RunRequest,
        *,
        ident: str,
        artifact_dir: str,
        trigger: str,
        requested_by: str,
        at: float,
        decisions: Sequence[tuple[int, int]] = (),
    ) -> int:
        """Record a run as started (and its incidents as remediating) before it starts."""
        with self.sessions() as session:
            run = PlaybookRun(
                ident=ident,
                action=request.action,
                playbook=request.playbook,
                hosts=list(request.hosts),
                check_mode=request.check,
                trigger=trigger,
                requested_by=requested_by,
                extra_var_names=sorted(request.extra_vars),
                status="running",
                rc=None,
                stats={},
                artifact_dir=artifact_dir,
                created_at=to_dt(at),
                started_at=to_dt(at),
            )
            session.add(run)
            session.flush()
            mode = " in check mode" if request.check else ""
            events = [
                self._event(
                    session,
                    at,
                    "run_started",
                    f"{trigger} run of {request.action}{mode} on {', '.join(request.hosts)}",
                    run_id=run.id,
                    data={"ident": ident, "requested_by": requested_by},
                )
            ]
            for decision_id, incident_id in decisions:
                decision = session.get_one(Decision, decision_id)
                decision.run_id = run.id
                decision.outcome = "running"
                incident = session.get_one(Incident, incident_id)
                incident.status = IncidentStatus.REMEDIATING
                incident.action = request.action
                incident.attempts += 1
                incident.updated_at = to_dt(at)
                events.append(
                    self._event(
                        session,
                        at,
                        "remediating",
                        f"running {request.action} (run {ident})",
                        host=incident.host,
                        incident_id=incident_id,
                        run_id=run.id,
                    )
                )
            self._commit(session, events)
            return run.id

    def end_run(self, run_id: int, result: RunResult) -> None:
        """Record how a run ended; a host whose run failed has its attempt marked failed."""
        with self.sessions() as session:
            run = session.get_one(PlaybookRun, run_id)
            run.status = result.status
            run.rc = result.rc
            run.error = result.error
            run.ended_at = to_dt(result.ended_at)
            run.stats = {host: _stats_dict(s) for host, s in result.stats.items()}
            events = [
                self._event(
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
                    self._event(
                        session,
                        result.ended_at,
                        "run_ended",
                        f"{run.action} {'succeeded' if ok else 'failed'} on {decision.host} "
                        f"(run {result.status}, rc {result.rc})",
                        host=decision.host,
                        incident_id=decision.incident_id,
                        run_id=run_id,
                    )
                )
            self._commit(session, events)

    def record_verification(self, decision_id: int, check: Verification) -> None:
        """Store a verification's result on the decision whose run it checked."""
        outcome = {True: "recovered", False: "not_recovered", None: "unverified"}[check.recovered]
        with self.sessions() as session:
            decision = session.get_one(Decision, decision_id)
            decision.outcome = outcome
            decision.outcome_at = to_dt(check.checked_at)
            row = self._event(
                session,
                check.checked_at,
                "verified",
                check.reason,
                host=check.host,
                incident_id=decision.incident_id,
                run_id=decision.run_id,
                data={"recovered": check.recovered, "value": check.value},
            )
            self._commit(session, [row])

    # -- reads the engine needs -----------------------------------------------

    def host_history(self, host: str, since: float) -> HostHistory:
        """The host's remediation attempts since a time, and the fleet's runs in flight."""
        with self.sessions() as session:
            rows = session.execute(
                select(Decision, PlaybookRun)
                .join(PlaybookRun, Decision.run_id == PlaybookRun.id)
                .where(
                    Decision.host == host,
                    Decision.created_at >= to_dt(since),
                    Decision.verdict == VerdictKind.EXECUTE,
                )
                .order_by(Decision.id)
            ).all()
            busy = (
                session.scalar(
                    select(func.count())
                    .select_from(Incident)
                    .where(Incident.status == IncidentStatus.REMEDIATING)
                )
                or 0
            )
        attempts = tuple(
            Attempt(
                incident_id=d.incident_id,
                action=d.action,
                started_at=to_ts(r.started_at or d.created_at),
                ended_at=to_ts(r.ended_at) if r.ended_at else None,
                succeeded={
                    "recovered": True,
                    "not_recovered": False,
                    "run_failed": False,
                    "interrupted": False,
                }.get(d.outcome or ""),
            )
            for d, r in rows
        )
        return HostHistory(host=host, attempts=attempts, remediating_hosts=busy)

    def active_incidents(self) -> list[tuple[int, str, str, list[str]]]:
        """Active (open, awaiting approval, remediating) and unclosed escalated or failed ones.

        Each as (id, host, status, tried).
        """
        with self.sessions() as session:
            incidents = session.scalars(
                select(Incident)
                .where(
                    Incident.status.in_(
                        [*ACTIVE_STATUSES, IncidentStatus.ESCALATED, IncidentStatus.FAILED]
                    ),
                    Incident.closed_at.is_(None),
                )
                .order_by(Incident.id)
            ).all()
            found = []
            for incident in incidents:
                tried = session.scalars(
                    select(Decision.action)
                    .where(Decision.incident_id == incident.id, Decision.run_id.is_not(None))
                    .order_by(Decision.id)
                ).all()
                found.append((incident.id, incident.host, incident.status, list(tried)))
            return found

    def recover_interrupted(self, at: float) -> list[int]:
        """After a crash: mark runs still 'running' as interrupted; never re-run them blindly.

        Pending approvals and awaiting_approval incidents are left as they are: a human
        may still answer.
        """
        with self.sessions() as session:
            runs = session.scalars(select(PlaybookRun).where(PlaybookRun.status.in_(RUNNING_RUN)))
            events = []
            run_ids = []
            for run in runs.all():
                run.status = "interrupted"
                run.ended_at = to_dt(at)
                run_ids.append(run.id)
                events.append(
                    self._event(
                        session,
                        at,
                        "run_interrupted",
                        f"run {run.ident} was in flight when the engine stopped; its effect is "
                        "unknown and it is not re-run: it counts as a failed attempt",
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
                    self._event(
                        session,
                        at,
                        "reopened",
                        "engine restarted during remediation; deciding again",
                        host=incident.host,
                        incident_id=incident.id,
                    )
                )
            self._commit(session, events)
            return run_ids


def _rowcount(session: Session, statement: Update) -> int:
    """Run an UPDATE in the session's transaction; how many rows it changed."""
    # Core execution: rowcount is what the conditional UPDATE's caller needs, and the
    # ORM's session synchronisation would only refresh objects the caller re-reads anyway.
    return session.connection().execute(statement).rowcount


def _approval(row: ApprovalRow) -> Approval:
    return Approval(
        id=row.id,
        incident_id=row.incident_id,
        decision_id=row.decision_id,
        host=row.host,
        action=row.action,
        status=ApprovalStatus(row.status),
        requested_at=to_ts(row.requested_at),
        expires_at=to_ts(row.expires_at),
        rationale=row.rationale,
        decided_at=to_ts(row.decided_at) if row.decided_at else None,
        decided_by=row.decided_by,
        note=row.note,
    )


def _expired(row: ApprovalRow) -> str:
    return f"approval {row.id} expired at {iso(row.expires_at)}: the engine will decide again"


def _settled(row: ApprovalRow) -> str:
    """Why an approval that is no longer pending cannot be decided."""
    if row.status == ApprovalStatus.EXPIRED:
        return _expired(row)
    by = row.decided_by or "someone"
    return f"approval {row.id} was already {row.status} by {by} at {iso(row.decided_at)}"


def _stats_dict(stats: Any) -> dict[str, int]:
    return {
        name: int(getattr(stats, name))
        for name in ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")
    }
