"""The engine's heartbeat for /metrics: when it last ticked, read its metrics and wrote the
store, each as a timestamp and as an age, fleet-wide and per replica.

The timestamps stop moving when the engine stops, so an alert is ``time() - metric``; the
ages say the same to a person reading /metrics. The shipped alert rules
(examples/prometheus/autosre-alerts.yml) use the timestamps and the two intervals below.
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from engine.read.engine_stats import Beat, Heartbeat

# Beat field -> (metric name part, what it is); the tick's timestamp family already exists.
BEATS = {
    "last_tick": ("last_tick", "the latest published tick ran"),
    "last_metrics_read": (
        "last_metrics_read_success",
        "the latest tick whose every metrics query was answered ran",
    ),
    "last_store_write": (
        "last_store_write_success",
        "the engine's latest write to the store committed",
    ),
}


def heartbeat_families(
    heartbeat: Heartbeat, *, now: float, interval: float, publish_every: float | None
) -> list[Metric]:
    """Timestamps, ages, the write-failure counter and the intervals an alert needs."""
    families: list[Metric] = []
    for field, (part, what) in BEATS.items():
        value = getattr(heartbeat, field)
        if value is None:
            continue  # nothing yet: no series, rather than a misleading 1970
        if field != "last_tick":  # autosre_engine_last_tick_timestamp_seconds exists already
            at = GaugeMetricFamily(
                f"autosre_engine_{part}_timestamp_seconds", f"When {what} (UNIX seconds)."
            )
            at.add_metric([], value)
            families.append(at)
        age = GaugeMetricFamily(
            f"autosre_engine_{part}_age_seconds", f"Seconds since {what}, at this scrape."
        )
        age.add_metric([], max(0.0, now - value))
        families.append(age)
    failures = CounterMetricFamily(
        "autosre_engine_store_write_failures",
        "The engine's writes to the store that failed, as of its latest write that worked.",
    )
    failures.add_metric([], heartbeat.store_write_failures)
    tick = GaugeMetricFamily(
        "autosre_engine_tick_interval_seconds", "The configured tick interval (AUTOSRE_INTERVAL)."
    )
    tick.add_metric([], interval)
    families += [failures, tick]
    if publish_every is not None:
        publish = GaugeMetricFamily(
            "autosre_engine_publish_interval_seconds",
            "How often the engine writes these stats: how stale they may be.",
        )
        publish.add_metric([], publish_every)
        families.append(publish)
    return families + replica_beats(heartbeat.replicas)


def replica_beats(replicas: dict[str, Beat]) -> list[Metric]:
    """Each replica's heartbeat timestamps (none when the engine runs alone)."""
    if not replicas:
        return []
    families: list[Metric] = []
    for field, (part, what) in BEATS.items():
        family = GaugeMetricFamily(
            f"autosre_replica_{part}_timestamp_seconds",
            f"When, for each replica, {what} (UNIX seconds).",
            labels=["replica"],
        )
        for name, beat in replicas.items():
            value = getattr(beat, field)
            if value is not None:
                family.add_metric([name], value)
        families.append(family)
    return families
