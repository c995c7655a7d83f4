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

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, or_, select, update

from engine.record.approvals import ApprovalRecords
from engine.store.models import Decision, Incident, PlaybookRun
from engine.timeutil import iso, to_dt, to_ts
from engine.types import (
    ACTIVE_STATUSES,
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

__all__ = ["Recorder"]


class Recorder(ApprovalRecords):
    """Writes incidents, decisions, runs and events; every method is one transaction."""

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
                summary=self.text(reason),
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
            incident.summary = self.text(message)
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
                rationale=self.text(proposal.rationale),
                verdict=verdict.kind,
                verdict_action=verdict.action,
                rule=verdict.rule,
                reason=self.text(verdict.reason),
                overridden=verdict.overridden,
                fallback=self.optional_text(proposal.fallback),
            )
            if call is not None:
                decision.provider = call.provider
                decision.model = call.model
                decision.latency_ms = call.latency * 1000.0
                decision.attempts = call.attempts
                decision.input_tokens = call.input_tokens
                decision.output_tokens = call.output_tokens
                decision.prompt = self.optional_text(call.prompt)
                decision.reply = self.optional_text(call.reply)
                decision.call_error = self.optional_text(call.error)
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
            run.error = self.optional_text(result.error)
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


def _stats_dict(stats: Any) -> dict[str, int]:
    return {
        name: int(getattr(stats, name))
        for name in ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")
    }
