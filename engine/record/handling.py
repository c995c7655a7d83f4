"""People handling an incident: acknowledge ("I am on it"), assign, resolve with a note.

Acknowledging and assigning are markers for people: the engine neither reads nor changes
them. Resolving closes the incident along its life's tables (engine/incident/life.py), in
one conditional UPDATE so that it never races the engine: refused while a playbook run is
in flight, and a pending approval is withdrawn in the same transaction. The engine lets go
of an incident closed under it at its next tick (``EngineMemory.closed_among``). Each
action is one timeline event (and its audit line), naming who did it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import InputError
from engine.incident.life import IncidentStatus, check_status_move
from engine.record.events import Journal
from engine.store.accounts import User
from engine.store.models import ApprovalRow, Event, Incident
from engine.timeutil import to_dt
from engine.types import ApprovalStatus

MAX_NOTE = 500  # as approval notes (webui/approvals.py)
# Statuses a person may resolve from: escalated and failed keep their status when closed,
# as when their host recovers (STATUS_MOVES), so that the record still says a human had to act.
RESOLVABLE = (
    IncidentStatus.OPEN,
    IncidentStatus.AWAITING_APPROVAL,
    IncidentStatus.ESCALATED,
    IncidentStatus.FAILED,
)


class HandlingError(InputError):
    """An incident action that cannot be done; ``status``: 400 bad input, 404 no such
    incident, 409 not in this incident's state."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Handling:
    """Who is handling an incident, as the pages, the API and the CLI show it."""

    incident_id: int
    status: str
    closed_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    assigned_to: str | None
    resolved_by: str | None


def handling(sessions: sessionmaker[Session], incident_id: int) -> Handling | None:
    """The incident's handling marks, or None when there is no such incident."""
    with sessions() as session:
        row = session.get(Incident, incident_id)
        if row is None:
            return None
        return _handling(row)


def check_note(note: str | None, *, required: bool, name: str = "note") -> str | None:
    """The note stripped, or HandlingError (400) naming ``name``: missing, too long, or with
    control characters (terminal escapes included: they would act in a terminal)."""
    text = (note or "").strip()
    if not text:
        if required:
            raise HandlingError(f"{name} is required: say why")
        return None
    if len(text) > MAX_NOTE:
        raise HandlingError(f"{name} is too long (at most {MAX_NOTE} characters)")
    if any((ord(c) < 0x20 and c not in "\t\n\r") or ord(c) == 0x7F for c in text):
        raise HandlingError(f"{name} must not contain control characters")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise HandlingError(f"{name} must not contain unpaired surrogates")
    return text


class HandlingRecords:
    """The three actions a person takes on an incident, each with its timeline event."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        # Queues the "resolved" notice of an incident a person closed (set by the
        # composition root when the policy has channels: engine/notify/person_resolve.py).
        self.on_resolved: Callable[..., object] | None = None

    def acknowledge(
        self, incident_id: int, *, by: str, at: float, note: str | None = None
    ) -> Handling:
        """Mark the incident as taken by ``by`` (again: the newest one counts)."""
        note = check_note(note, required=False)
        with self.journal.sessions() as session:
            incident = _open_incident(session, incident_id, "acknowledged")
            incident.acknowledged_at = to_dt(at)
            incident.acknowledged_by = by
            message = f"{by} acknowledged the incident" + (f": {note}" if note else "")
            data = {"by": by, "note": note}
            return self._commit(session, incident, at, "acknowledged", message, data)

    def assign(self, incident_id: int, *, to: str, by: str, at: float) -> Handling:
        """Assign the incident to an enabled web user (by name)."""
        name = to.strip().lower()
        with self.journal.sessions() as session:
            user = session.scalar(select(User).where(User.name == name)) if name else None
            if user is None or user.disabled:
                shown = name[:64] if name.isprintable() else "that name"
                raise HandlingError(f"assignee: there is no enabled user named {shown!r}")
            incident = _open_incident(session, incident_id, "assigned")
            incident.assigned_to = user.name
            message = f"{by} assigned the incident to {user.name}"
            data = {"by": by, "to": user.name}
            return self._commit(session, incident, at, "assigned", message, data)

    def resolve(self, incident_id: int, *, by: str, at: float, note: str) -> Handling:
        """Close the incident by hand, with a required note; 409 while it is remediated."""
        text = check_note(note, required=True)
        assert text is not None
        with self.journal.sessions() as session:
            incident = _open_incident(session, incident_id, "resolved")
            if incident.status == IncidentStatus.REMEDIATING:
                raise HandlingError(_in_flight(incident_id), 409)
            old = IncidentStatus(incident.status)
            if old not in RESOLVABLE:  # remediating and resolved are refused above: a guard
                raise HandlingError(f"incident {incident_id} is {old}: it cannot be resolved", 409)
            # Escalated and failed keep their status (see RESOLVABLE); the rest are resolved.
            kept = old in (IncidentStatus.ESCALATED, IncidentStatus.FAILED)
            new = old if kept else IncidentStatus.RESOLVED
            check_status_move(old, new)
            message = f"resolved by {by}: {text}"
            # Conditional: the engine may have started a run or closed it since the read.
            close = (
                update(Incident)
                .where(
                    Incident.id == incident_id,
                    Incident.status == old,
                    Incident.closed_at.is_(None),
                )
                .values(
                    status=new,
                    closed_at=to_dt(at),
                    updated_at=to_dt(at),
                    resolved_by=by,
                    summary=self.journal.text(message),
                )
            )
            # Core, as deciding an approval does: rowcount says whether the close won.
            won = session.connection().execute(close).rowcount
            if won != 1:
                session.rollback()
                raise HandlingError(_changed(session, incident_id), 409)
            events = [
                self.journal.add(
                    session,
                    at,
                    "resolved_by_person",
                    message,
                    host=incident.host,
                    incident_id=incident_id,
                    data={"by": by, "note": text, "status": new.value},
                )
            ]
            events += self._withdraw_approvals(session, incident, by, at)
            self.journal.commit(session, events)
            session.refresh(incident)
            marks = _handling(incident)
            host, kind = incident.host, incident.kind
        if self.on_resolved is not None:
            self.on_resolved(
                incident_id=incident_id,
                host=host,
                kind=kind,
                status=new.value,
                summary=self.journal.text(message),
                at=at,
            )
        return marks

    def _withdraw_approvals(
        self, session: Session, incident: Incident, by: str, at: float
    ) -> list[Event]:
        """Pending approvals of a resolved incident expire: approving one later does nothing."""
        # Conditional, like deciding one: an approval decided meanwhile stays as decided.
        withdrawn = (
            session.connection()
            .execute(
                update(ApprovalRow)
                .where(
                    ApprovalRow.incident_id == incident.id,
                    ApprovalRow.status == ApprovalStatus.PENDING,
                )
                .values(status=ApprovalStatus.EXPIRED, decided_at=to_dt(at))
                .returning(ApprovalRow.id, ApprovalRow.action, ApprovalRow.host)
            )
            .all()
        )
        return [
            self.journal.add(
                session,
                at,
                "approval_expired",
                f"approval {approval_id} for {action} on {host} withdrawn: "
                f"{by} resolved the incident",
                host=host,
                incident_id=incident.id,
                data={"approval_id": approval_id, "by": by},
            )
            for approval_id, action, host in withdrawn
        ]

    def _commit(
        self,
        session: Session,
        incident: Incident,
        at: float,
        kind: str,
        message: str,
        data: dict[str, Any],
    ) -> Handling:
        row = self.journal.add(
            session, at, kind, message, host=incident.host, incident_id=incident.id, data=data
        )
        self.journal.commit(session, [row])
        session.refresh(incident)
        return _handling(incident)


def _open_incident(session: Session, incident_id: int, verb: str) -> Incident:
    """The incident, still open (not closed by the engine or a person), or HandlingError."""
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise HandlingError(f"no incident with id {incident_id}", 404)
    # Resolved is final even without a close time (rows written by hand, or by old versions).
    if incident.closed_at is not None or incident.status == IncidentStatus.RESOLVED:
        by = f" by {incident.resolved_by}" if incident.resolved_by else ""
        raise HandlingError(
            f"incident {incident_id} is closed ({incident.status}{by}): "
            f"it cannot be {verb} any more",
            409,
        )
    return incident


def _in_flight(incident_id: int) -> str:
    return (
        f"incident {incident_id} is being remediated: a playbook run is in flight. "
        "Wait for it to end (or cancel it), then resolve"
    )


def _changed(session: Session, incident_id: int) -> str:
    """Why the conditional close found the incident changed under it."""
    now = session.get_one(Incident, incident_id)
    if now.status == IncidentStatus.REMEDIATING:
        return _in_flight(incident_id)
    return f"incident {incident_id} changed meanwhile (it is {now.status}): reload and try again"


def _handling(row: Incident) -> Handling:
    return Handling(
        incident_id=row.id,
        status=row.status,
        closed_at=row.closed_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        assigned_to=row.assigned_to,
        resolved_by=row.resolved_by,
    )
