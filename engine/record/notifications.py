"""The notification outbox on the write side: notices queued, claimed, sent or failed.

Queueing is a store write only (no network), made while the engine carries out the
escalation or the close, so a notice is never lost to a crash or a receiver that is
down. The delivery worker (engine/notify/deliver.py) claims due rows with a lease held
in the store, so two engine processes never send one row twice at the same time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from engine.notify.notice import TRIGGER, Notice
from engine.record.events import Journal
from engine.store.outbox import NotificationRow
from engine.timeutil import to_dt

PENDING, SENT, FAILED = "pending", "sent", "failed"
STATUSES = (PENDING, SENT, FAILED)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A due row the worker holds for one delivery attempt."""

    id: int
    incident_id: int
    channel: str
    event: str
    payload: dict[str, Any]
    attempts: int  # before this attempt


class NotificationRecords:
    """Queues notices per channel and records each delivery attempt's outcome."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def queue(self, notice: Notice, channels: Iterable[str]) -> list[str]:
        """Queue the notice on each channel unless it is there already; the channels added."""
        added: list[str] = []
        payload = self.journal.data(notice.payload())
        for channel in channels:
            with self.journal.sessions() as session:
                found = session.scalar(
                    select(NotificationRow.id).where(
                        NotificationRow.incident_id == notice.incident_id,
                        NotificationRow.channel == channel,
                        NotificationRow.event == notice.event,
                    )
                )
                if found is not None:
                    continue
                session.add(
                    NotificationRow(
                        incident_id=notice.incident_id,
                        channel=channel,
                        event=notice.event,
                        payload=payload,
                        status=PENDING,
                        attempts=0,
                        next_attempt_at=to_dt(notice.at),
                        created_at=to_dt(notice.at),
                    )
                )
                try:
                    session.commit()
                except IntegrityError:  # another engine queued it a moment ago: done
                    session.rollback()
                    continue
            added.append(channel)
        return added

    def triggered(self, incident_id: int) -> list[str]:
        """The channels where the incident's trigger was queued."""
        with self.journal.sessions() as session:
            rows = session.scalars(
                select(NotificationRow.channel).where(
                    NotificationRow.incident_id == incident_id,
                    NotificationRow.event == TRIGGER,
                )
            )
            return list(rows)

    def claim_due(self, now: float, *, limit: int, lease: float) -> list[Claimed]:
        """Due pending rows, oldest first, each held for ``lease`` seconds; a row waits while
        an older one of its incident and channel is pending (a resolve after its trigger)."""
        older = aliased(NotificationRow)
        blocked = exists().where(
            and_(
                older.incident_id == NotificationRow.incident_id,
                older.channel == NotificationRow.channel,
                older.status == PENDING,
                older.id < NotificationRow.id,
            )
        )
        claimed: list[Claimed] = []
        with self.journal.sessions() as session:
            rows = session.scalars(
                select(NotificationRow)
                .where(
                    NotificationRow.status == PENDING,
                    NotificationRow.next_attempt_at <= to_dt(now),
                    ~blocked,
                )
                .order_by(NotificationRow.id)
                .limit(limit)
            ).all()
            for row in rows:
                # Held only if nobody moved it since it was read: the lease is the store's.
                taken = session.execute(
                    update(NotificationRow)
                    .where(
                        NotificationRow.id == row.id,
                        NotificationRow.status == PENDING,
                        NotificationRow.next_attempt_at == row.next_attempt_at,
                        NotificationRow.attempts == row.attempts,
                    )
                    .values(next_attempt_at=to_dt(now + lease))
                    .execution_options(synchronize_session=False)
                )
                if taken.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(
                        Claimed(
                            row.id,
                            row.incident_id,
                            row.channel,
                            row.event,
                            row.payload,
                            row.attempts,
                        )
                    )
            session.commit()
        return claimed

    def sent(self, claim: Claimed, at: float) -> None:
        """Record a delivery, with its timeline event."""
        message = f"{claim.event} delivered to {claim.channel} (attempt {claim.attempts + 1})"
        self._finish(claim, at, SENT, None, "notified", message)

    def failed(self, claim: Claimed, at: float, error: str) -> None:
        """Record a delivery given up for good (the receiver refused it), with its event."""
        message = f"{claim.event} to {claim.channel} failed for good: {error}"
        self._finish(claim, at, FAILED, error, "notify_failed", message)

    def retry(self, claim: Claimed, at: float, error: str, *, next_at: float) -> None:
        """Record a failed attempt; the row is due again at ``next_at``."""
        with self.journal.sessions() as session:
            row = session.get_one(NotificationRow, claim.id)
            row.attempts = claim.attempts + 1
            row.last_error = self.journal.text(error)
            row.next_attempt_at = to_dt(next_at)
            session.commit()

    def _finish(
        self, claim: Claimed, at: float, status: str, error: str | None, kind: str, message: str
    ) -> None:
        journal = self.journal
        with journal.sessions() as session:
            row = session.get_one(NotificationRow, claim.id)
            row.status = status
            row.attempts = claim.attempts + 1
            row.last_error = journal.optional_text(error)
            if status == SENT:
                row.sent_at = to_dt(at)
            host = str(claim.payload.get("host") or "") or None
            event = journal.add(
                session,
                at,
                kind,
                message,
                host=host,
                incident_id=claim.incident_id,
                data={"channel": claim.channel, "event": claim.event},
            )
            journal.commit(session, [event])
