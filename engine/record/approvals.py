"""Approvals on the write side: actions held for a human, decided once (a conditional
UPDATE), or expired. A rejected or expired approval escalates its incident
(engine/incident/decide.py).
"""

from __future__ import annotations

from sqlalchemy import Update, update
from sqlalchemy.orm import Session

from engine.errors import ApprovalError
from engine.incident.life import IncidentStatus, check_status_move
from engine.record.events import Journal
from engine.record.memory import approval_from_row
from engine.store.models import ApprovalRow, Event, Incident
from engine.timeutil import iso, to_dt
from engine.types import Approval, ApprovalStatus


class ApprovalRecords:
    """Requesting, deciding and expiring approvals."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def request(
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
        with self.journal.sessions() as session:
            approval = ApprovalRow(
                incident_id=incident_id,
                decision_id=decision_id,
                host=host,
                action=action,
                status=ApprovalStatus.PENDING,
                rationale=self.journal.text(rationale),
                requested_at=to_dt(at),
                expires_at=to_dt(expires_at),
            )
            session.add(approval)
            session.flush()
            incident = session.get_one(Incident, incident_id)
            # Read by people (summary, timeline, CLI): seconds and the zone named, not raw ISO.
            until = to_dt(expires_at).strftime("%Y-%m-%d %H:%M:%S UTC")
            message = f"{action} on {host} awaits approval {approval.id} until {until}"
            check_status_move(incident.status, IncidentStatus.AWAITING_APPROVAL)
            incident.status = IncidentStatus.AWAITING_APPROVAL
            incident.updated_at = to_dt(at)
            incident.summary = self.journal.text(message)
            row = self.journal.add(
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
            self.journal.commit(session, [row])
            return approval.id

    def decide(
        self, approval_id: int, *, approve: bool, by: str, at: float, note: str | None = None
    ) -> Approval:
        """Approve or reject a pending, unexpired approval; anything else is an ApprovalError."""
        status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        note = self.journal.optional_text(note)
        with self.journal.sessions() as session:
            row = session.get(ApprovalRow, approval_id)
            if row is None:
                raise ApprovalError(f"no approval with id {approval_id}")
            if row.status != ApprovalStatus.PENDING:
                raise ApprovalError(_settled(row))
            current = approval_from_row(row)
            if at >= current.expires_at:
                expired = self._expire(session, row, at)
                if expired is None:  # settled by someone else in the meantime
                    session.rollback()
                    session.refresh(row)
                    raise ApprovalError(_settled(row))
                self.journal.commit(session, [expired])
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
            event = self.journal.add(
                session,
                at,
                verb,
                f"{by} {verb} {row.action} on {row.host} (approval {approval_id})"
                + (f": {note}" if note else ""),
                host=row.host,
                incident_id=row.incident_id,
                data={"approval_id": approval_id, "by": by, "note": note},
            )
            self.journal.commit(session, [event])
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

    def expire(self, approval_id: int, *, at: float) -> bool:
        """Mark a pending approval expired (timed out, or no longer wanted); False if it was not."""
        with self.journal.sessions() as session:
            row = session.get(ApprovalRow, approval_id)
            if row is None:
                raise ApprovalError(f"no approval with id {approval_id}")
            event = self._expire(session, row, at)
            if event is None:
                session.rollback()
                return False
            self.journal.commit(session, [event])
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
        return self.journal.add(
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


def _expired(row: ApprovalRow) -> str:
    return f"approval {row.id} expired at {iso(row.expires_at)}: the engine escalates the incident"


def _settled(row: ApprovalRow) -> str:
    """Why an approval that is no longer pending cannot be decided."""
    if row.status == ApprovalStatus.EXPIRED:
        return _expired(row)
    by = row.decided_by or "someone"
    return f"approval {row.id} was already {row.status} by {by} at {iso(row.decided_at)}"
