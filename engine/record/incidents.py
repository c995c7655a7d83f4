"""Incidents on the write side: opened on detection, moved only along engine/incident/life.py.

Every status change is committed with the event that explains it, before the side
effect it announces (a run, a page) starts.
"""

from __future__ import annotations

from typing import Any

from engine.incident.life import IncidentStatus, check_status_move
from engine.record.events import Journal
from engine.store.models import Incident
from engine.timeutil import iso, to_dt


class IncidentRecords:
    """Opens incidents and moves their status, each with its timeline event."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def open(
        self, host: str, kind: str, value: float | None, reason: str, *, at: float, since: float
    ) -> int:
        """Open an incident for a host and record its detection; the new incident's id."""
        journal = self.journal
        with journal.sessions() as session:
            incident = Incident(
                host=host,
                kind=kind,
                status=IncidentStatus.OPEN,
                opened_at=to_dt(at),
                updated_at=to_dt(at),
                cpu_before=value,
                summary=journal.text(reason),
            )
            session.add(incident)
            session.flush()
            row = journal.add(
                session,
                at,
                "detected",
                reason,
                host=host,
                incident_id=incident.id,
                data={"value": value, "since": iso(to_dt(since))},
            )
            journal.commit(session, [row])
            return incident.id

    def set_status(
        self,
        incident_id: int,
        status: IncidentStatus,
        at: float,
        kind: str,
        message: str,
        *,
        value_after: float | None = None,
        close: bool = False,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Move an incident to a status, with the event that explains why."""
        journal = self.journal
        with journal.sessions() as session:
            incident = session.get_one(Incident, incident_id)
            check_status_move(incident.status, status)
            # Closing in the status it already has (an escalated incident whose host later
            # recovered) keeps the summary that says why it was escalated; the event tells the rest.
            if not (close and incident.status == status):
                incident.summary = journal.text(message)
            incident.status = status
            incident.updated_at = to_dt(at)
            if value_after is not None:
                incident.cpu_after = value_after
            if close and incident.closed_at is None:
                incident.closed_at = to_dt(at)
            row = journal.add(
                session, at, kind, message, host=incident.host, incident_id=incident_id, data=data
            )
            journal.commit(session, [row])
