"""Alert events on the write side: stored by the receiver, moved on by the engine's inbox.

The receiver (webui/alerts.py) only writes here; the engine takes the open events on its
next tick (engine/push/inbox.py). Alertmanager re-sends whole groups, so an alert seen
before (same fingerprint, start and status) only counts again. New events are limited per
minute by a count held in the store, so the limit holds across web workers and restarts.
Each move of an event, with its timeline note, is one transaction that only succeeds
from the outcome the engine read: two engines never note one alert twice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from engine.errors import InputError
from engine.record.events import Journal
from engine.store.alert_events import AlertEventRow
from engine.timeutil import to_dt

IGNORED, NEW, PENDING = "ignored", "new", "pending"  # a pending firing alert awaits the data
JOINED, LINKED, HINTED = "joined", "linked", "hinted"  # noted on an incident
UNCONFIRMED, NO_INCIDENT, DROPPED = "unconfirmed", "no_incident", "dropped"
OUTCOMES = (IGNORED, NEW, PENDING, JOINED, LINKED, HINTED, UNCONFIRMED, NO_INCIDENT, DROPPED)
OPEN = (NEW, PENDING)
RATE_WINDOW = 60.0  # seconds


class AlertRateError(InputError):
    """More new alerts than the policy's ``alerts.max_per_minute``: nothing was stored."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Received:
    """One pushed alert, routed (host and kind) or ignored (reason)."""

    fingerprint: str
    status: str
    alertname: str
    starts_at: datetime
    ends_at: datetime | None
    labels: dict[str, str]
    host: str | None
    kind: str | None
    reason: str | None  # why it is ignored; None when routed


@dataclass(frozen=True, slots=True)
class Tally:
    """What one post added: new routed alerts, new ignored ones, and alerts seen before."""

    accepted: int = 0
    ignored: int = 0
    duplicate: int = 0


@dataclass(frozen=True, slots=True)
class OpenEvent:
    """An event the engine has still to act on (new), or to see confirmed (pending)."""

    id: int
    fingerprint: str
    status: str
    alertname: str
    host: str
    kind: str
    outcome: str
    received_at: datetime
    confirm_by: datetime | None


def _key(fingerprint: str, starts_at: datetime, status: str) -> tuple[str, float, str]:
    return fingerprint, starts_at.timestamp(), status


class AlertEventRecords:
    """Stores pushed alerts once each, and records what the engine made of each."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def receive(self, alerts: Sequence[Received], at: float, *, per_minute: int) -> Tally:
        """Store the alerts not seen before and count the others again; AlertRateError
        (nothing stored) when the new ones would pass the per-minute limit."""
        try:
            return self._receive(alerts, at, per_minute)
        except IntegrityError:  # another post stored one of them a moment ago: count again
            return self._receive(alerts, at, per_minute)

    def _receive(self, alerts: Sequence[Received], at: float, per_minute: int) -> Tally:
        row, when = AlertEventRow, to_dt(at)
        with self.journal.sessions() as session:
            fingerprints = sorted({alert.fingerprint for alert in alerts})
            seen: dict[tuple[str, float, str], AlertEventRow] = {}
            for start in range(0, len(fingerprints), 500):  # bounded IN lists
                chunk = fingerprints[start : start + 500]
                for found in session.scalars(select(row).where(row.fingerprint.in_(chunk))):
                    seen[_key(found.fingerprint, found.starts_at, found.status)] = found
            fresh: dict[tuple[str, float, str], Received] = {}
            repeats = 0
            for alert in alerts:
                key = _key(alert.fingerprint, alert.starts_at, alert.status)
                if key in seen:
                    seen[key].received += 1
                    seen[key].last_received_at = when
                    repeats += 1
                elif key in fresh:
                    repeats += 1  # twice in one post: still one event
                else:
                    fresh[key] = alert
            recent = session.scalar(
                select(func.count())
                .select_from(row)
                .where(row.received_at > to_dt(at - RATE_WINDOW))
            )
            if fresh and int(recent or 0) + len(fresh) > per_minute:
                session.rollback()
                raise AlertRateError(
                    f"{len(fresh)} new alerts would pass the limit of {per_minute} a minute "
                    "(alerts.max_per_minute); nothing was stored",
                    retry_after=math.ceil(RATE_WINDOW),
                )
            for alert in fresh.values():
                session.add(self._row(alert, when))
            session.commit()
        ignored = sum(1 for alert in fresh.values() if alert.reason is not None)
        return Tally(len(fresh) - ignored, ignored, repeats)

    def _row(self, alert: Received, when: datetime) -> AlertEventRow:
        labels: dict[str, Any] = self.journal.data(dict(alert.labels))
        return AlertEventRow(
            fingerprint=alert.fingerprint,
            status=alert.status,
            alertname=self.journal.text(alert.alertname[:255]),
            starts_at=alert.starts_at,
            ends_at=alert.ends_at,
            labels=labels,
            host=alert.host,
            kind=alert.kind,
            outcome=IGNORED if alert.reason is not None else NEW,
            reason=self.journal.optional_text(alert.reason),
            received_at=when,
            last_received_at=when,
            received=1,
        )

    def open_events(self, *, limit: int) -> list[OpenEvent]:
        """New and pending events, oldest first (at most ``limit``)."""
        row = AlertEventRow
        with self.journal.sessions() as session:
            rows = session.scalars(
                select(row).where(row.outcome.in_(OPEN)).order_by(row.id).limit(limit)
            )
            return [
                OpenEvent(
                    r.id,
                    r.fingerprint,
                    r.status,
                    r.alertname,
                    r.host or "",
                    r.kind or "",
                    r.outcome,
                    r.received_at,
                    r.confirm_by,
                )
                for r in rows
            ]

    def move(
        self,
        event: OpenEvent,
        outcome: str,
        at: float,
        *,
        incident_id: int | None = None,
        reason: str | None = None,
        confirm_by: float | None = None,
        note: str | None = None,
    ) -> bool:
        """Move the event on from the outcome it was read in, with its timeline note (one
        transaction); False when someone else moved it first (then nothing is written)."""
        row, journal = AlertEventRow, self.journal
        values: dict[str, Any] = {"outcome": outcome, "decided_at": to_dt(at)}
        if incident_id is not None:
            values["incident_id"] = incident_id
        if reason is not None:
            values["reason"] = journal.text(reason)
        if confirm_by is not None:
            values["confirm_by"] = to_dt(confirm_by)
        with journal.sessions() as session:
            moved = session.execute(
                update(row)
                .where(row.id == event.id, row.outcome == event.outcome)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                session.rollback()
                return False
            events = []
            if note is not None:
                data = {"alert_event_id": event.id, "fingerprint": event.fingerprint}
                events.append(
                    journal.add(
                        session,
                        at,
                        "alert",
                        note,
                        host=event.host,
                        incident_id=incident_id,
                        data=data,
                    )
                )
            journal.commit(session, events)
        return True
