"""Approvals: actions held for a human, decided once (a conditional UPDATE), or expired."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Update, select, update
from sqlalchemy.orm import Session

from engine.errors import ApprovalError
from engine.record.events import RecorderCore
from engine.store.models import ApprovalRow, Event, Incident
from engine.timeutil import iso, to_dt, to_ts
from engine.types import (
    Approval,
    ApprovalStatus,
    IncidentStatus,
)


class ApprovalRecords(RecorderCore):
    """Requesting, reading, deciding and expiring approvals."""

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
                rationale=self.text(rationale),
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
            incident.summary = self.text(message)
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
        note = self.optional_text(note)
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
