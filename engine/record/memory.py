"""What the engine reads back from its own record: a host's past attempts, the incidents
still active after a restart, and the approvals it waits on. One query each.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.incident.life import ACTIVE_STATUSES, IncidentStatus
from engine.store.models import ApprovalRow, Decision, Incident, PlaybookRun
from engine.timeutil import to_dt, to_ts
from engine.types import Approval, ApprovalStatus, Attempt, HostHistory, VerdictKind


@dataclass(frozen=True, slots=True)
class ActiveIncident:
    """An incident the store says is still active: what the engine resumes after a restart."""

    id: int
    host: str
    kind: str
    status: str
    tried: list[str]  # actions already run in it, in order (not those cut off by a crash)
    interrupted: list[str] = field(default_factory=list)  # cut off: effect unknown


class EngineMemory:
    """Reads the engine needs to decide and to resume; never writes."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

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
                    # Cut off by a crash: its effect is unknown, not a failure to cure.
                    "interrupted": None,
                }.get(d.outcome or ""),
            )
            for d, r in rows
        )
        return HostHistory(host=host, attempts=attempts, remediating_hosts=busy)

    def active_incidents(self) -> list[ActiveIncident]:
        """Active (open, awaiting approval, remediating) and unclosed escalated or failed ones,
        oldest first, each with the actions already run in it, in one query."""
        still_open = Incident.status.in_(
            [*ACTIVE_STATUSES, IncidentStatus.ESCALATED, IncidentStatus.FAILED]
        ) & Incident.closed_at.is_(None)
        query = (
            select(
                Incident.id,
                Incident.host,
                Incident.kind,
                Incident.status,
                Decision.action,
                Decision.outcome,
            )
            .outerjoin(
                Decision, (Decision.incident_id == Incident.id) & Decision.run_id.is_not(None)
            )
            .where(still_open)
            .order_by(Incident.id, Decision.id)
        )
        found: dict[int, ActiveIncident] = {}
        with self.sessions() as session:
            for incident_id, host, kind, status, action, outcome in session.execute(query):
                active = found.setdefault(
                    incident_id, ActiveIncident(incident_id, host, kind, status, [])
                )
                if action is None:
                    continue
                # A rung cut off by a crash may run again, once fresh data shows the host
                # still needs it (a new decision, never a blind re-run of the old one).
                (active.interrupted if outcome == "interrupted" else active.tried).append(action)
        return list(found.values())

    def approvals(self, ids: Sequence[int]) -> dict[int, Approval]:
        """The approvals with these ids, as stored (the caller compares expires_at to its clock)."""
        if not ids:
            return {}
        with self.sessions() as session:
            rows = session.scalars(select(ApprovalRow).where(ApprovalRow.id.in_(set(ids)))).all()
            return {row.id: approval_from_row(row) for row in rows}

    def closed_among(self, incident_ids: Collection[int]) -> set[int]:
        """Which of these incidents are closed in the store: resolved by a person under the
        engine's feet (the engine forgets an incident it closes itself)."""
        if not incident_ids:
            return set()
        with self.sessions() as session:
            found = session.scalars(
                select(Incident.id).where(
                    Incident.id.in_(set(incident_ids)), Incident.closed_at.is_not(None)
                )
            )
            return set(found)

    def pending_approvals(self) -> list[Approval]:
        """Every pending approval, oldest first (for the engine to resume after a restart)."""
        with self.sessions() as session:
            rows = session.scalars(
                select(ApprovalRow)
                .where(ApprovalRow.status == ApprovalStatus.PENDING)
                .order_by(ApprovalRow.requested_at, ApprovalRow.id)
            ).all()
            return [approval_from_row(row) for row in rows]


def approval_from_row(row: ApprovalRow) -> Approval:
    """The engine's value of a stored approval."""
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
