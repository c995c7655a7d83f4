"""Read-side numbers for the on-call engineer's first look: fleet summary, incident search.

Everything is aggregated in SQL (no rows loaded into Python beyond one page), so the
queries stay fast on 100,000 incidents and 1,000 hosts, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Date, cast, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from engine.read.queries import incident_dict
from engine.store.models import HostStateRow, Incident
from engine.types import ACTIVE_STATUSES, IncidentStatus

CLOSED_STATUSES = (IncidentStatus.RESOLVED, IncidentStatus.ESCALATED, IncidentStatus.FAILED)
MAX_LIMIT = 500
LIKE_ESCAPE = "\\"


def _seconds_between(session: Session, start: Any, end: Any) -> ColumnElement[Any]:
    """``end - start`` in seconds, in the session's SQL dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _day_of(session: Session, column: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp column."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", column), Date)
    return func.date(column)


def _as_float(value: Any) -> float | None:
    return None if value is None else float(value)


def fleet_summary(
    sessions: sessionmaker[Session], *, now: datetime, window_days: int = 7
) -> dict[str, Any]:
    """The fleet's recent record: rates over incidents opened in the window, open ones now.

    Keys: ``window_days``, ``since`` (ISO day), ``closed``, ``resolved``, ``success_rate``
    (resolved / closed, None when nothing closed), ``avg_cpu_reduction`` (percentage points,
    resolved incidents with both values), ``mttr_seconds`` (opened to closed, resolved),
    ``open_by_status`` (each active status: count, all time), ``open_total`` and
    ``per_day`` (``[(YYYY-MM-DD, count)]`` oldest first, one per day of the window, today
    included).
    """
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
                func.avg(_seconds_between(session, Incident.opened_at, Incident.closed_at)),
            ).where(in_window, resolved)
        ).one()
        open_rows = session.execute(
            select(Incident.status, func.count())
            .where(Incident.status.in_(ACTIVE_STATUSES))
            .group_by(Incident.status)
        ).all()
        day = _day_of(session, Incident.opened_at)
        day_rows = session.execute(select(day, func.count()).where(in_window).group_by(day)).all()
    counts = {_day_key(d): int(n) for d, n in day_rows}
    per_day = []
    for offset in range(window_days):
        key = (first + timedelta(days=offset)).isoformat()
        per_day.append((key, counts.get(key, 0)))
    open_by_status = {str(s): 0 for s in ACTIVE_STATUSES}
    open_by_status.update({str(s): int(n) for s, n in open_rows})
    return {
        "window_days": window_days,
        "since": first.isoformat(),
        "closed": int(closed),
        "resolved": int(resolved_count),
        "success_rate": resolved_count / closed if closed else None,
        "avg_cpu_reduction": _as_float(reduction),
        "mttr_seconds": _as_float(mttr),
        "open_by_status": open_by_status,
        "open_total": sum(open_by_status.values()),
        "per_day": per_day,
    }


def _day_key(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10]


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (``%``, ``_`` and the escape escaped)."""
    for char in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(char, LIKE_ESCAPE + char)
    return text


def search_incidents(
    sessions: sessionmaker[Session],
    *,
    host: str | None = None,
    status: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], int | None]:
    """One page of incidents, newest first, and the ``before_id`` of the next page (or None).

    ``since`` is inclusive and ``until`` exclusive (on opened_at); ``q`` matches host or
    summary, case-insensitively, as a plain substring.
    """
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(Incident).order_by(Incident.id.desc()).limit(limit + 1)
    if host:
        query = query.where(Incident.host == host)
    if status:
        query = query.where(Incident.status == status)
    if kind:
        query = query.where(Incident.kind == kind)
    if since is not None:
        query = query.where(Incident.opened_at >= since)
    if until is not None:
        query = query.where(Incident.opened_at < until)
    if before_id is not None:
        query = query.where(Incident.id < before_id)
    if q:
        pattern = f"%{escape_like(q)}%"
        query = query.where(
            or_(
                Incident.host.ilike(pattern, escape=LIKE_ESCAPE),
                Incident.summary.ilike(pattern, escape=LIKE_ESCAPE),
            )
        )
    with sessions() as session:
        rows = [incident_dict(row) for row in session.scalars(query)]
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, int(rows[-1]["id"])
    return rows, None


def open_incidents(sessions: sessionmaker[Session], *, limit: int = 20) -> list[dict[str, Any]]:
    """The newest incidents in an active status (open, awaiting approval, remediating)."""
    query = (
        select(Incident)
        .where(Incident.status.in_(ACTIVE_STATUSES))
        .order_by(Incident.id.desc())
        .limit(limit)
    )
    with sessions() as session:
        return [incident_dict(row) for row in session.scalars(query)]


def active_incident_status(sessions: sessionmaker[Session]) -> dict[str, str]:
    """Host -> the status of its newest active incident (at most one row per active host)."""
    query = (
        select(Incident.host, Incident.status, func.max(Incident.id))
        .where(Incident.status.in_(ACTIVE_STATUSES))
        .group_by(Incident.host, Incident.status)
    )
    newest: dict[str, tuple[int, str]] = {}
    with sessions() as session:
        for host, status, top in session.execute(query):
            if host not in newest or top > newest[host][0]:
                newest[host] = (int(top), str(status))
    return {host: status for host, (_, status) in newest.items()}


def host_statuses(sessions: sessionmaker[Session]) -> dict[str, tuple[str, float | None]]:
    """Every published host: its status and latest value (not the samples)."""
    query = select(HostStateRow.host, HostStateRow.status, HostStateRow.value)
    with sessions() as session:
        return {h: (str(s), _as_float(v)) for h, s, v in session.execute(query)}


def host_samples(sessions: sessionmaker[Session], hosts: Iterable[str]) -> dict[str, list[float]]:
    """The recent CPU values of these hosts (oldest first), for sparklines."""
    names = list(hosts)
    if not names:
        return {}
    query = select(HostStateRow.host, HostStateRow.recent).where(HostStateRow.host.in_(names))
    found: dict[str, list[float]] = {}
    with sessions() as session:
        for host, recent in session.execute(query):
            values: list[float] = []
            for point in recent or []:
                value = point[-1] if isinstance(point, list | tuple) and point else None
                if isinstance(value, int | float) and math.isfinite(value):
                    values.append(float(value))
            found[str(host)] = values
    return found
