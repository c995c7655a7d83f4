"""What /metrics counts in the store, read at scrape time in one session.

Each count is one grouped query (no rows loaded), and every known status is present, zero
when absent, so a series never disappears from Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.incident.life import IncidentStatus
from engine.read.alert_events import AlertCounts, alert_counts_in
from engine.read.engine_stats import engine_stats_in
from engine.read.models import EngineStats
from engine.read.notifications import NotificationCounts, notification_counts_in
from engine.store.models import ApprovalRow, Decision, HostStateRow, Incident, PlaybookRun
from engine.types import ApprovalStatus, HostStatus


@dataclass(frozen=True, slots=True)
class PlannerCalls:
    """Model calls by (provider, outcome), and the calls made (not cached) per provider."""

    by_outcome: dict[tuple[str, str], int]  # outcome: used, fallback or cached
    made: dict[str, tuple[int, float]]  # provider -> (calls, seconds spent in them)


@dataclass(frozen=True, slots=True)
class StoreCounts:
    """Everything /metrics shows of the store."""

    engine: EngineStats
    incidents: dict[str, int]  # by status
    runs: dict[tuple[str, str], int]  # by (status, trigger)
    planner: PlannerCalls
    hosts: dict[str, int]  # by published status
    approvals: dict[str, int]  # by status as of now (pending past its time: expired)
    notifications: NotificationCounts  # the outbox (engine/read/notifications.py)
    alerts: AlertCounts  # pushed by Alertmanager (engine/read/alert_events.py)


def read_store_counts(sessions: sessionmaker[Session], *, now: datetime) -> StoreCounts:
    """Every count /metrics shows; raises SQLAlchemyError when the store cannot be read."""
    with sessions() as session:
        return StoreCounts(
            engine=engine_stats_in(session),
            incidents=_counts(session, Incident.status, IncidentStatus),
            runs=_runs(session),
            planner=_planner(session),
            hosts=_counts(session, HostStateRow.status, HostStatus),
            approvals=_approvals(session, now),
            notifications=notification_counts_in(session),
            alerts=alert_counts_in(session),
        )


def _counts(
    session: Session, column: Any, known: Iterable[str], *, source: Any = None
) -> dict[str, int]:
    """Rows per value of a column, with every known value present (zero when absent)."""
    found = dict.fromkeys((str(k) for k in known), 0)
    query = select(column, func.count()).group_by(column)
    if source is not None:
        query = query.select_from(source)
    for value, count in session.execute(query):
        found[str(value)] = int(count)
    return found


def _runs(session: Session) -> dict[tuple[str, str], int]:
    query = select(PlaybookRun.status, PlaybookRun.trigger, func.count()).group_by(
        PlaybookRun.status, PlaybookRun.trigger
    )
    return {(str(s), str(t)): int(n) for s, t, n in session.execute(query)}


def _planner(session: Session) -> PlannerCalls:
    # Grouped on plain columns: PostgreSQL cannot match a CASE with bound literals in
    # the select list to the same CASE in GROUP BY.
    fell_back = Decision.fallback.is_not(None)
    query = (
        select(
            Decision.provider,
            Decision.cached,
            fell_back,
            func.count(),
            func.coalesce(func.sum(Decision.latency_ms), 0.0),
        )
        .where(Decision.provider.is_not(None))
        .group_by(Decision.provider, Decision.cached, fell_back)
    )
    calls: dict[tuple[str, str], int] = {}
    made: dict[str, tuple[int, float]] = {}
    for provider, cached, fallback, count, latency_ms in session.execute(query):
        outcome = "cached" if cached else "fallback" if fallback else "used"
        key = (str(provider), outcome)
        calls[key] = calls.get(key, 0) + count
        if not cached:  # a cached answer costs no call: it would drag the mean down
            before = made.get(key[0], (0, 0.0))
            made[key[0]] = (before[0] + count, before[1] + (latency_ms or 0.0) / 1000.0)
    return PlannerCalls(by_outcome=calls, made=made)


def _approvals(session: Session, now: datetime) -> dict[str, int]:
    # A pending approval past its expiry is expired, as the UI shows it.
    status = case(
        (
            and_(ApprovalRow.status == ApprovalStatus.PENDING, ApprovalRow.expires_at <= now),
            ApprovalStatus.EXPIRED.value,
        ),
        else_=ApprovalRow.status,
    )
    return _counts(session, status, ApprovalStatus, source=ApprovalRow)
