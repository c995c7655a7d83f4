"""GET /healthz (is the store up, is the engine ticking, is there disk for runs, which
replicas are alive) and GET /metrics (Prometheus).

Neither needs a login: /healthz is for load balancers and /metrics for Prometheus. Both
show counts and timestamps only, never host names, labels or secrets; still, firewall
/metrics or scrape it from the same machine, as for any exporter. The numbers come from
engine/read (engine_stats, metrics); this module turns them into JSON and metric families.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
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
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.execute.disk_room import free_bytes, no_room
from engine.read.alert_events import AlertCounts
from engine.read.engine_stats import read_engine_stats, read_heartbeat
from engine.read.metrics import PlannerCalls, StoreCounts, read_store_counts
from engine.read.models import EngineStats
from engine.read.notifications import NotificationCounts
from engine.read.replicas import read_replicas
from engine.record.live import describe_error
from engine.timeutil import iso, to_dt
from webui.db import get_sessions, get_settings
from webui.heartbeat_metrics import heartbeat_families
from webui.replica_metrics import replica_families

log = logging.getLogger("autosre.webui")
bp = Blueprint("health", __name__)

STALE_TICKS = 3  # intervals without a tick before the engine counts as stalled


def tick_late(age: float | None, interval: float, publish_every: float | None) -> bool:
    """True when the engine has not ticked for STALE_TICKS intervals (or ever); the stats
    are written every ``publish_every`` seconds, so that lag is allowed too."""
    return age is None or age > STALE_TICKS * interval + (publish_every or 0.0)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """200 while the store answers ("degraded" when the engine is not ticking), else 503."""
    now = time.time()
    try:
        stats = read_engine_stats(get_sessions())
        replicas = read_replicas(get_sessions(), now=to_dt(now))
    except SQLAlchemyError as exc:  # the store not answering is the answer, not a 500
        body: dict[str, Any] = {
            "status": "degraded",
            "database": describe_error(exc),
            "engine": {"last_tick": None, "age_seconds": None},
        }
        return jsonify(body), 503
    if stats.last_tick is None:
        engine: dict[str, Any] = {"last_tick": None, "age_seconds": None}
        healthy = False
    else:
        # Stats are written at most every publish_every seconds, so allow for that lag too.
        age = max(0.0, now - stats.last_tick)
        engine = {"last_tick": iso(to_dt(stats.last_tick)), "age_seconds": round(age, 3)}
        healthy = not tick_late(age, get_settings().interval, stats.publish_every)
    settings = get_settings()
    full = no_room(settings.runs_dir, settings.min_free_mb)
    disk = {"free_bytes": free_bytes(settings.runs_dir), "status": "full" if full else "ok"}
    healthy = healthy and full is None
    body = {
        "status": "ok" if healthy else "degraded",
        "database": "ok",
        "engine": engine,
        "disk": disk,
        # Each engine replica: alive or not, how many hosts and run leases it holds.
        "replicas": [r.model_dump(mode="json") for r in replicas],
    }
    return jsonify(body), 200


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    """The store's counts in the Prometheus text format (OpenMetrics when asked for)."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(get_sessions(), interval=get_settings().interval))
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(registry), content_type=content_type)


class StoreCollector:
    """Reads the store at scrape time (engine.read.metrics) and reports it as families."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        interval: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``interval``: the engine's tick interval, exported for the stalled-engine alert."""
        self.sessions = sessions
        self.interval = interval
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        """Every family; only autosre_store_up (0) when the store cannot be read."""
        up = GaugeMetricFamily(
            "autosre_store_up", "Whether the store answered this scrape (1) or not (0)."
        )
        now = self.clock()
        try:
            counts = read_store_counts(self.sessions, now=to_dt(now))
            replicas = read_replicas(self.sessions, now=to_dt(now))
            heartbeat = read_heartbeat(self.sessions)
        except SQLAlchemyError as exc:  # a scrape reports the outage instead of failing
            log.warning("/metrics: store not readable: %s", describe_error(exc))
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        beats = heartbeat_families(
            heartbeat, now=now, interval=self.interval, publish_every=counts.engine.publish_every
        )
        return [up, *_families(counts), *beats, *replica_families(replicas)]


def _families(counts: StoreCounts) -> list[Metric]:
    return [
        *_engine(counts.engine),
        _by_status("autosre_incidents", "Incidents in each status.", counts.incidents),
        _runs(counts.runs),
        *_planner(counts.planner),
        _by_status(
            "autosre_hosts", "Hosts in each state, as the engine last published.", counts.hosts
        ),
        _by_status("autosre_approvals", "Approvals in each status.", counts.approvals),
        *_notifications(counts.notifications),
        *_alerts(counts.alerts),
    ]


def _engine(stats: EngineStats) -> list[Metric]:
    """The engine's tick counters; none before its first published tick."""
    if stats.ticks_total is None:
        return []
    total = CounterMetricFamily("autosre_engine_ticks", "Ticks run since the engine started.")
    total.add_metric([], stats.ticks_total)
    duration = SummaryMetricFamily(
        "autosre_engine_tick_duration_seconds",
        "Time spent in ticks since the engine started.",
        count_value=int(stats.ticks_total),
        sum_value=stats.tick_duration_sum or 0.0,
    )
    last = GaugeMetricFamily(
        "autosre_engine_last_tick_duration_seconds", "How long the latest published tick took."
    )
    last.add_metric([], stats.tick_duration_last or 0.0)
    at = GaugeMetricFamily(
        "autosre_engine_last_tick_timestamp_seconds",
        "When the latest published tick ran (UNIX seconds).",
    )
    at.add_metric([], stats.last_tick or 0.0)
    unmatched = GaugeMetricFamily(
        "autosre_metrics_unmatched_series",
        "Series in the latest tick's answers that matched no inventory host (logged once each).",
    )
    unmatched.add_metric([], stats.unmatched_series or 0.0)
    return [total, duration, last, at, unmatched]


def _by_status(name: str, documentation: str, counts: dict[str, int]) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=["status"])
    for status, count in counts.items():
        family.add_metric([status], count)
    return family


def _runs(counts: dict[tuple[str, str], int]) -> Metric:
    family = CounterMetricFamily(
        "autosre_playbook_runs",
        "Playbook runs recorded, by how they ended and who started them (engine or manual).",
        labels=["status", "trigger"],
    )
    for (status, trigger), count in counts.items():
        family.add_metric([status, trigger], count)
    return family


def _planner(planner: PlannerCalls) -> list[Metric]:
    """Model calls by outcome, and the latency of the calls actually made (not cached)."""
    family = CounterMetricFamily(
        "autosre_planner_calls",
        "Planner model calls: reply used, fell back to the rules, or answered from the cache.",
        labels=["provider", "outcome"],
    )
    for labels, count in planner.by_outcome.items():
        family.add_metric(list(labels), count)
    latency = SummaryMetricFamily(
        "autosre_planner_call_latency_seconds",
        "Time spent in planner model calls, all attempts included (cached answers excluded).",
        labels=["provider"],
    )
    for provider, (count, seconds) in planner.made.items():
        latency.add_metric([provider], count_value=count, sum_value=seconds)
    return [family, latency]


def _notifications(counts: NotificationCounts) -> list[Metric]:
    """The outbox: notices by channel and status, failed attempts, what still waits."""
    total = CounterMetricFamily(
        "autosre_notifications",
        "Notices queued per channel, by status (pending, sent, failed for good).",
        labels=["channel", "status"],
    )
    pending = GaugeMetricFamily(
        "autosre_notifications_pending", "Notices not yet delivered.", labels=["channel"]
    )
    for (channel, status), count in sorted(counts.by_status.items()):
        total.add_metric([channel, status], count)
        if status == "pending":
            pending.add_metric([channel], count)
    failures = CounterMetricFamily(
        "autosre_notification_delivery_failures",
        "Delivery attempts that failed (receiver down, refused, too slow).",
        labels=["channel"],
    )
    for channel, count in sorted(counts.failed_attempts.items()):
        failures.add_metric([channel], count)
    oldest = GaugeMetricFamily(
        "autosre_notifications_oldest_pending_timestamp_seconds",
        "When the oldest undelivered notice was queued (UNIX seconds; 0: none pending).",
    )
    oldest.add_metric([], counts.oldest_pending.timestamp() if counts.oldest_pending else 0.0)
    return [total, pending, failures, oldest]


def _alerts(counts: AlertCounts) -> list[Metric]:
    """Alerts pushed by Alertmanager: as received, and what the engine made of them."""
    received = CounterMetricFamily(
        "autosre_alerts_received",
        "Alerts posted to /api/v1/alerts, by status and outcome (accepted, ignored: mapped "
        "to no host or watched kind, duplicate: re-sent by Alertmanager).",
        labels=["status", "outcome"],
    )
    for (status, outcome), count in sorted(counts.received.items()):
        received.add_metric([status, outcome], count)
    events = GaugeMetricFamily(
        "autosre_alert_events",
        "Stored alert events by what the engine made of them (pending, joined, linked, "
        "unconfirmed: its own metrics never showed the problem).",
        labels=["outcome"],
    )
    for outcome, count in sorted(counts.by_outcome.items()):
        events.add_metric([outcome], count)
    return [received, events]
