"""Who is on an incident, for lists: "ack by X", "assigned to Y" (migration 0010's columns).

Lists read their incidents through the read models, whose fields the API pins; the marks
are read apart, in one query by primary key for the ids a page shows.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from engine.read.models import ReadModel
from engine.store.models import Incident

MAX_IDS = 1000  # a page's worth: lists show at most a few hundred rows


class HandlingMarks(ReadModel):
    """An incident's markers for people (the engine neither reads nor sets them)."""

    acknowledged_by: str | None
    assigned_to: str | None


def handling_marks(
    sessions: sessionmaker[Session], incident_ids: Collection[int]
) -> dict[int, HandlingMarks]:
    """Incident id -> its marks, for those of ``incident_ids`` acknowledged or assigned."""
    ids = sorted(set(incident_ids))[:MAX_IDS]
    if not ids:
        return {}
    query = select(Incident.id, Incident.acknowledged_by, Incident.assigned_to).where(
        Incident.id.in_(ids),
        or_(Incident.acknowledged_by.is_not(None), Incident.assigned_to.is_not(None)),
    )
    with sessions() as session:
        return {
            int(ident): HandlingMarks(acknowledged_by=ack, assigned_to=assigned)
            for ident, ack, assigned in session.execute(query)
        }
