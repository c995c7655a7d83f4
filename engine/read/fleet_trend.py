"""The fleet's record over a chosen window (24 h, 7 d, 30 d) against the window before it.

The rates of both windows come from one aggregate query over the incidents opened in the
last two windows (``ix_incidents_opened_at``), and the chart's buckets (hours for 24 h,
days otherwise) from one GROUP BY: no rows are loaded into Python, so it stays fast on
100,000 incidents, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field
from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.incident.life import CLOSED_STATUSES, IncidentStatus
from engine.read.fleet import as_float, day_key, day_of, seconds_between
from engine.read.models import ReadModel
from engine.store.models import Incident

# The windows a page may ask for, by name: an allow-list, never a length typed by a person.
WINDOWS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
WINDOW_LABELS = {"24h": "24 h", "7d": "7 d", "30d": "30 d"}
DEFAULT_WINDOW = "7d"


class WindowRecord(ReadModel):
    """What came of the incidents opened in one window."""

    closed: int
    resolved: int
    success_rate: float | None = Field(description="resolved / closed; None: nothing closed")
    mttr_seconds: float | None = Field(description="opened to closed, resolved ones")
    avg_cpu_reduction: float | None = Field(description="percentage points, resolved ones")


class FleetTrend(ReadModel):
    """A window's record, the previous window's, the change, and opened incidents per bucket."""

    window: str
    label: str = Field(description="the window for people: '24 h', '7 d', '30 d'")
    start: datetime
    end: datetime
    current: WindowRecord
    previous: WindowRecord
    rate_change_points: float | None = Field(
        description="success rate now minus before, in percentage points; None: one is unknown"
    )
    mttr_change_seconds: float | None = Field(description="MTTR now minus before")
    hourly: bool = Field(description="buckets are hours (24 h) rather than days")
    buckets: list[tuple[str, int]] = Field(
        description="(YYYY-MM-DD or YYYY-MM-DDTHH, opened) oldest first, UTC"
    )


def _hour_of(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC hour of a timestamp column as text ``YYYY-MM-DDTHH``."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), 'YYYY-MM-DD"T"HH24')
    return func.strftime("%Y-%m-%dT%H", column)


def _record(
    session: Session, start: datetime, end: datetime, middle: datetime
) -> tuple[WindowRecord, WindowRecord]:
    """The records of [start, middle) and [middle, end), in one query."""
    row = Incident
    resolved = row.status == IncidentStatus.RESOLVED
    closed = row.status.in_(CLOSED_STATUSES)
    seconds = seconds_between(session, row.opened_at, row.closed_at)
    columns = []
    for early in (True, False):
        side = row.opened_at < middle if early else row.opened_at >= middle
        columns += [
            func.count().filter(and_(side, closed)),
            func.count().filter(and_(side, resolved)),
            func.avg(seconds).filter(and_(side, resolved)),
            func.avg(row.cpu_before - row.cpu_after).filter(and_(side, resolved)),
        ]
    values = session.execute(
        select(*columns).where(row.opened_at >= start, row.opened_at < end)
    ).one()
    records = []
    for offset in (0, 4):
        n_closed, n_resolved, mttr, reduction = values[offset : offset + 4]
        records.append(
            WindowRecord(
                closed=int(n_closed),
                resolved=int(n_resolved),
                success_rate=n_resolved / n_closed if n_closed else None,
                mttr_seconds=as_float(mttr),
                avg_cpu_reduction=as_float(reduction),
            )
        )
    return records[0], records[1]


def _bucket_keys(end: datetime, length: timedelta, hourly: bool) -> list[str]:
    """The buckets covering the window up to ``end``, oldest first (the last holds ``end``)."""
    if hourly:
        last = end.replace(minute=0, second=0, microsecond=0)
        count = int(length / timedelta(hours=1))
        return [(last - timedelta(hours=n)).strftime("%Y-%m-%dT%H") for n in reversed(range(count))]
    today = end.date()
    return [(today - timedelta(days=n)).isoformat() for n in reversed(range(length.days))]


def _change(now: float | None, before: float | None, scale: float = 1.0) -> float | None:
    return None if now is None or before is None else (now - before) * scale


def fleet_trend(
    sessions: sessionmaker[Session], *, now: datetime, window: str = DEFAULT_WINDOW
) -> FleetTrend:
    """The record of the incidents opened in the ``window`` up to ``now``, and the one before.

    ``window`` is a key of WINDOWS (KeyError otherwise: callers check the allow-list).
    """
    length = WINDOWS[window]
    end = now.astimezone(UTC)
    start = end - length
    hourly = length <= timedelta(days=1)
    keys = _bucket_keys(end, length, hourly)
    first = datetime.fromisoformat(keys[0]).replace(tzinfo=UTC)  # the oldest bucket's start
    with sessions() as session:
        previous, current = _record(session, start - length, end, start)
        bucket = (_hour_of if hourly else day_of)(session, Incident.opened_at)
        rows = session.execute(
            select(bucket, func.count())
            .where(Incident.opened_at >= first, Incident.opened_at <= end)
            .group_by(bucket)
        ).all()
    counts = {(str(key) if hourly else day_key(key)): int(n) for key, n in rows}
    return FleetTrend(
        window=window,
        label=WINDOW_LABELS[window],
        start=start,
        end=end,
        current=current,
        previous=previous,
        rate_change_points=_change(current.success_rate, previous.success_rate, 100.0),
        mttr_change_seconds=_change(current.mttr_seconds, previous.mttr_seconds),
        hourly=hourly,
        buckets=[(key, counts.get(key, 0)) for key in keys],
    )
