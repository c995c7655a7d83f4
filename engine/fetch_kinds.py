"""One tick's fetches, every signal kind's asked at once.

Each kind is one query to Prometheus. Asked one after another, a tick waits for each in
turn while Prometheus computes it; asked at once, Prometheus computes them side by side and
the engine maps one answer while the next is computed. A source shared by several kinds (a
test's, the local host's) is asked for them one after another, in the kinds' order, as
before: nothing says it may be called from two threads at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

from engine.metrics import MetricsSource
from engine.types import MetricsBatch


class KindFetcher:
    """Fetches every kind's source for a tick, each distinct source on its own thread."""

    def __init__(self, sources: Mapping[str, MetricsSource]) -> None:
        self._groups: dict[int, list[tuple[str, MetricsSource]]] = {}
        for name, source in sources.items():
            self._groups.setdefault(id(source), []).append((name, source))
        self._pool = (
            ThreadPoolExecutor(len(self._groups), thread_name_prefix="autosre-fetch")
            if len(self._groups) > 1
            else None
        )

    def fetch(self, now: float) -> dict[str, Future[MetricsBatch]]:
        """Start every kind's fetch for ``now``; each future holds its batch (or what its
        source raised, as calling it would have)."""
        pending: dict[str, Future[MetricsBatch]] = {}
        for group in self._groups.values():
            futures = {name: Future[MetricsBatch]() for name, _ in group}
            pending.update(futures)
            if self._pool is None:
                _fetch_group(group, futures, now)
            else:
                self._pool.submit(_fetch_group, group, futures, now)
        return pending

    def close(self) -> None:
        """Stop the threads (a fetch in flight ends within its source's deadline)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _fetch_group(
    group: list[tuple[str, MetricsSource]], futures: Mapping[str, Future[MetricsBatch]], now: float
) -> None:
    for name, source in group:
        try:
            futures[name].set_result(source.fetch(now))
        except BaseException as exc:  # handed to the tick, which raises it as before
            futures[name].set_exception(exc)
