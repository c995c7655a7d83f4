"""The dashboard's numbers: the fleet's record over a window of days, and what is open now.

Everything is aggregated in SQL (no rows loaded into Python), so it stays fast on 100,000
incidents, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Date, Select, cast, func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.incident.life import ACTIVE_STATUSES, CLOSED_STATUSES, IncidentStatus
from engine.read.models import FleetSummary
from engine.store.models import Incident


def seconds_between(session: Session, start: Any, end: Any) -> ColumnElement[Any]:
    """``end - start`` in seconds, in the session's SQL dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def day_of(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def day_key(value: Any) -> str:
    """A day as ``day_of`` returns it (a date, or text on SQLite), as YYYY-MM-DD."""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10]


def as_float(value: Any) -> float | None:
    """An aggregate's value as a float (PostgreSQL answers Decimal), None kept."""
    return None if value is None else float(value)


def _open_query() -> Select[str, int]:
    return (
        select(Incident.status, func.count())
        .where(Incident.status.in_(ACTIVE_STATUSES))
        .group_by(Incident.status)
    )


def open_counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Each active status -> how many incidents are in it now (0 included), all time."""
    counts = {str(s): 0 for s in ACTIVE_STATUSES}
    with sessions() as session:
        counts.update({str(s): int(n) for s, n in session.execute(_open_query())})
    return counts


def fleet_summary(
    sessions: sessionmaker[Session], *, now: datetime, window_days: int = 7
) -> FleetSummary:
    """The record of the ``window_days`` days up to ``now`` (today included), and open counts."""
    today = now.astimezone(UTC).date()
    first = today - timedelta(days=window_days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    in_window = Incident.opened_at >= since
    resolved = Incident.status == IncidentStatus.RESOLVED
    with sessions() as session:
        closed, resolved_count = session.execute(
            select(
                func.count(),
                func.count().filter(resolved),
            ).where(in_window, Incident.status.in_(CLOSED_STATUSES))
        ).one()
        reduction, mttr = session.execute(
            select(
                func.avg(Incident.cpu_before - Incident.cpu_after),
                func.avg(seconds_between(session, Incident.opened_at, Incident.closed_at)),
            ).where(in_window, resolved)
        ).one()
        open_rows = session.execute(_open_query()).all()
        day = day_of(session, Incident.opened_at)
        day_rows = session.execute(select(day, func.count()).where(in_window).group_by(day)).all()
    counts = {day_key(d): int(n) for d, n in day_rows}
    days = ((first + timedelta(days=offset)).isoformat() for offset in range(window_days))
    open_by_status = {str(s): 0 for s in ACTIVE_STATUSES}
    open_by_status.update({str(s): int(n) for s, n in open_rows})
    return FleetSummary(
        window_days=window_days,
        since=first.isoformat(),
        closed=int(closed),
        resolved=int(resolved_count),
        success_rate=resolved_count / closed if closed else None,
        avg_cpu_reduction=as_float(reduction),
        mttr_seconds=as_float(mttr),
        open_by_status=open_by_status,
        open_total=sum(open_by_status.values()),
        per_day=[(key, counts.get(key, 0)) for key in days],
    )
