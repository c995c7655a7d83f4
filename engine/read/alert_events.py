"""Alert events pushed by Alertmanager, as /metrics, the API's replies and tests read them.

``received`` counts every alert a post carried, by its status and what the receiver made
of it: ``accepted`` (mapped to a host and kind), ``ignored`` (the reason is in its row) or
``duplicate`` (Alertmanager re-sending one already stored). ``by_outcome`` is what the
engine made of the stored events (pending, joined, linked, unconfirmed...).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.record.alert_events import IGNORED, OUTCOMES
from engine.store.alert_events import AlertEventRow

STATUSES = ("firing", "resolved")
RECEIVED = ("accepted", "ignored", "duplicate")


@dataclass(frozen=True, slots=True)
class AlertCounts:
    """Alerts received by (status, outcome), and stored events by the engine's outcome."""

    received: dict[tuple[str, str], int]
    by_outcome: dict[str, int]


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One stored alert event: where it was routed and what became of it."""

    id: int
    fingerprint: str
    status: str
    alertname: str
    host: str | None
    kind: str | None
    outcome: str
    reason: str | None
    incident_id: int | None
    received: int
    labels: dict[str, Any]
    received_at: datetime
    decided_at: datetime | None


def alert_counts_in(session: Session) -> AlertCounts:
    """The counts, in one grouped query; every known label pair present (zero when absent)."""
    row = AlertEventRow
    accepted = case((row.outcome == IGNORED, "ignored"), else_="accepted")
    query = select(
        row.status, row.outcome, accepted, func.count(), func.coalesce(func.sum(row.received), 0)
    ).group_by(row.status, row.outcome, accepted)
    received = {(status, outcome): 0 for status in STATUSES for outcome in RECEIVED}
    by_outcome = dict.fromkeys(OUTCOMES, 0)
    for status, outcome, taken, count, posts in session.execute(query):
        received[(str(status), str(taken))] = received.get((str(status), str(taken)), 0) + count
        key = (str(status), "duplicate")
        received[key] = received.get(key, 0) + int(posts) - int(count)
        by_outcome[str(outcome)] = by_outcome.get(str(outcome), 0) + int(count)
    return AlertCounts(received, by_outcome)


def alert_events(
    sessions: sessionmaker[Session], *, incident_id: int | None = None, limit: int = 100
) -> list[AlertEvent]:
    """Stored events, newest first (only one incident's, when given)."""
    row = AlertEventRow
    query = select(row).order_by(row.id.desc()).limit(limit)
    if incident_id is not None:
        query = query.where(row.incident_id == incident_id)
    with sessions() as session:
        return [
            AlertEvent(
                r.id,
                r.fingerprint,
                r.status,
                r.alertname,
                r.host,
                r.kind,
                r.outcome,
                r.reason,
                r.incident_id,
                r.received,
                dict(r.labels),
                r.received_at,
                r.decided_at,
            )
            for r in session.scalars(query)
        ]
