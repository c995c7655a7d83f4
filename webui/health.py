"""GET /healthz (is the store up, is the engine ticking) and GET /metrics (Prometheus).

Neither needs a login: /healthz is for load balancers and /metrics for Prometheus. Both
show counts and timestamps only, never host names, labels or secrets; still, firewall
/metrics or scrape it from the same machine, as for any exporter.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry
from sqlalchemy import and_, case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.record.live import (
    LAST_TICK,
    PUBLISH_EVERY,
    TICK_DURATION_LAST,
    TICK_DURATION_SUM,
    TICKS_TOTAL,
    describe_error,
    read_engine_stats,
)
from engine.store.models import (
    ApprovalRow,
    Decision,
    EngineStat,
    HostStateRow,
    Incident,
    PlaybookRun,
)
from engine.timeutil import iso, to_dt
from engine.types import ApprovalStatus, HostStatus, IncidentStatus
from webui.db import get_sessions, get_settings

log = logging.getLogger("autosre.webui")
bp = Blueprint("health", __name__)

STALE_TICKS = 3  # intervals without a tick before the engine counts as stalled


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """200 while the store answers ("degraded" when the engine is not ticking), else 503."""
    now = time.time()
    try:
        stats = read_engine_stats(get_sessions())
    except SQLAlchemyError as exc:  # the store not answering is the answer, not a 500
        body = {
            "status": "degraded",
            "database": describe_error(exc),
            "engine": {"last_tick": None, "age_seconds": None},
        }
        return jsonify(body), 503
    last = stats.get(LAST_TICK)
    if last is None:
        engine: dict[str, Any] = {"last_tick": None, "age_seconds": None}
        healthy = False
    else:
        # Stats are written at most every PUBLISH_EVERY seconds, so allow for that lag too.
        lag = stats.get(PUBLISH_EVERY, (0.0, None))[0]
        age = max(0.0, now - last[0])
        engine = {"last_tick": iso(to_dt(last[0])), "age_seconds": round(age, 3)}
        healthy = age <= STALE_TICKS * get_settings().interval + lag
    body = {"status": "ok" if healthy else "degraded", "database": "ok", "engine": engine}
    return jsonify(body), 200


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    """The store's counts in the Prometheus text format (OpenMetrics when asked for)."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(get_sessions()))
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(registry), content_type=content_type)


class StoreCollector:
    """Reads the store at scrape time: one query per metric family (or fewer)."""

    def __init__(
        self, sessions: sessionmaker[Session], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.sessions = sessions
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        """Every family; only autosre_store_up (0) when the store cannot be read."""
        up = GaugeMetricFamily(
            "autosre_store_up", "Whether the store answered this scrape (1) or not (0)."
        )
        try:
            with self.sessions() as session:
                families = [
                    *_engine(session),
                    _incidents(session),
                    _runs(session),
                    *_planner(session),
                    _hosts(session),
                    _approvals(session, to_dt(self.clock())),
                ]
        except SQLAlchemyError as exc:  # a scrape reports the outage instead of failing
            log.warning("/metrics: store not readable: %s", describe_error(exc))
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *families]


def _engine(session: Session) -> list[Metric]:
    """The engine's tick counters; none before its first published tick."""
    stats = dict(session.execute(select(EngineStat.name, EngineStat.value)).all())
    if TICKS_TOTAL not in stats:
        return []
    ticks = stats[TICKS_TOTAL]
    total = CounterMetricFamily("autosre_engine_ticks", "Ticks run since the engine started.")
    total.add_metric([], ticks)
    duration = SummaryMetricFamily(
        "autosre_engine_tick_duration_seconds",
        "Time spent in ticks since the engine started.",
        count_value=int(ticks),
        sum_value=stats.get(TICK_DURATION_SUM, 0.0),
    )
    last = GaugeMetricFamily(
        "autosre_engine_last_tick_duration_seconds", "How long the latest published tick took."
    )
    last.add_metric([], stats.get(TICK_DURATION_LAST, 0.0))
    at = GaugeMetricFamily(
        "autosre_engine_last_tick_timestamp_seconds",
        "When the latest published tick ran (UNIX seconds).",
    )
    at.add_metric([], stats.get(LAST_TICK, 0.0))
    return [total, duration, last, at]


def _counts(
    session: Session, column: Any, known: Iterable[str], *, source: Any = None
) -> dict[str, int]:
    """Rows per value of a column, with every known value present (zero when absent)."""
    found = dict.fromkeys((str(k) for k in known), 0)
    query = select(column, func.count()).group_by(column)
    if source is not None:
        query = query.select_from(source)
    for value, count in session.execute(query):
        found[str(value)] = count
    return found


def _incidents(session: Session) -> Metric:
    family = GaugeMetricFamily("autosre_incidents", "Incidents in each status.", labels=["status"])
    for status, count in _counts(session, Incident.status, IncidentStatus).items():
        family.add_metric([status], count)
    return family


def _runs(session: Session) -> Metric:
    family = CounterMetricFamily(
        "autosre_playbook_runs",
        "Playbook runs recorded, by how they ended and who started them (engine or manual).",
        labels=["status", "trigger"],
    )
    query = select(PlaybookRun.status, PlaybookRun.trigger, func.count()).group_by(
        PlaybookRun.status, PlaybookRun.trigger
    )
    for status, trigger, count in session.execute(query):
        family.add_metric([status, trigger], count)
    return family


def _planner(session: Session) -> list[Metric]:
    """Model calls by outcome, and the latency of the calls actually made (not cached)."""
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
    family = CounterMetricFamily(
        "autosre_planner_calls",
        "Planner model calls: reply used, fell back to the rules, or answered from the cache.",
        labels=["provider", "outcome"],
    )
    for labels, count in calls.items():
        family.add_metric(list(labels), count)
    latency = SummaryMetricFamily(
        "autosre_planner_call_latency_seconds",
        "Time spent in planner model calls, all attempts included (cached answers excluded).",
        labels=["provider"],
    )
    for provider, (count, seconds) in made.items():
        latency.add_metric([provider], count_value=count, sum_value=seconds)
    return [family, latency]


def _hosts(session: Session) -> Metric:
    family = GaugeMetricFamily(
        "autosre_hosts", "Hosts in each state, as the engine last published.", labels=["status"]
    )
    for status, count in _counts(session, HostStateRow.status, HostStatus).items():
        family.add_metric([status], count)
    return family


def _approvals(session: Session, now: datetime) -> Metric:
    # A pending approval past its expiry is expired, as the UI shows it.
    status = case(
        (
            and_(ApprovalRow.status == ApprovalStatus.PENDING, ApprovalRow.expires_at <= now),
            ApprovalStatus.EXPIRED.value,
        ),
        else_=ApprovalRow.status,
    )
    family = GaugeMetricFamily("autosre_approvals", "Approvals in each status.", labels=["status"])
    counts = _counts(session, status, ApprovalStatus, source=ApprovalRow)
    for name, count in counts.items():
        family.add_metric([name], count)
    return family
