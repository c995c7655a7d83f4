"""The notification outbox on the read side: counts for /metrics and the dashboard, and
one incident's notices for its page. Rows hold no secrets (engine/store/outbox.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.record.notifications import FAILED, PENDING, SENT
from engine.store.outbox import NotificationRow


@dataclass(frozen=True, slots=True)
class NotificationCounts:
    """Rows by (channel, status), failed attempts per channel, the oldest pending row."""

    by_status: dict[tuple[str, str], int]
    failed_attempts: dict[str, int]  # attempts that did not deliver, whatever came after
    oldest_pending: datetime | None

    def total(self, status: str) -> int:
        """Rows in one status, over every channel."""
        return sum(n for (_, s), n in self.by_status.items() if s == status)


@dataclass(frozen=True, slots=True)
class NotificationView:
    """One notice on one channel, as an incident's page shows it."""

    id: int
    channel: str
    event: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None


def notification_counts_in(session: Session) -> NotificationCounts:
    """The outbox's counts, in two grouped queries."""
    row = NotificationRow
    # A sent row's last attempt delivered; every other attempt failed.
    missed = row.attempts - case((row.status == SENT, 1), else_=0)
    query = select(row.channel, row.status, func.count(), func.coalesce(func.sum(missed), 0))
    by_status: dict[tuple[str, str], int] = {}
    failed: dict[str, int] = {}
    for channel, status, count, misses in session.execute(query.group_by(row.channel, row.status)):
        by_status[(str(channel), str(status))] = int(count)
        failed[str(channel)] = failed.get(str(channel), 0) + int(misses)
    for channel in failed:  # every status present per channel: no series disappears
        for status in (PENDING, SENT, FAILED):
            by_status.setdefault((channel, status), 0)
    oldest = session.scalar(select(func.min(row.created_at)).where(row.status == PENDING))
    return NotificationCounts(by_status, failed, oldest)


def notification_counts(sessions: sessionmaker[Session]) -> NotificationCounts:
    """The outbox's counts (the dashboard's line)."""
    with sessions() as session:
        return notification_counts_in(session)


def incident_notifications(
    sessions: sessionmaker[Session], incident_id: int
) -> list[NotificationView]:
    """Every notice queued for the incident, oldest first."""
    with sessions() as session:
        rows = session.scalars(
            select(NotificationRow)
            .where(NotificationRow.incident_id == incident_id)
            .order_by(NotificationRow.id)
        )
        return [
            NotificationView(
                r.id,
                r.channel,
                r.event,
                r.status,
                r.attempts,
                r.last_error,
                r.created_at,
                r.next_attempt_at,
                r.sent_at,
            )
            for r in rows
        ]
