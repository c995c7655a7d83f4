"""Metrics sources: one query per tick, a window of samples per inventory host.

A source decides nothing: it returns samples, or says "no data" (an empty window, or a
batch with ``error``), which the evaluator reads as UNKNOWN. A source never raises
out of ``fetch``. Prometheus (engine/metrics/prometheus.py) reads a fleet; the local
source (engine/metrics/local.py) reads this machine through psutil.
"""

from __future__ import annotations

from typing import Protocol

from engine.types import MetricsBatch


class MetricsSource(Protocol):
    """Where samples come from; called once per engine tick."""

    def fetch(self, now: float) -> MetricsBatch:
        """Return a window covering [now - lookback, now] for every known host."""
        ...
