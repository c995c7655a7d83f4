"""Every kind's fetch of a tick asked at once (engine/fetch_kinds.py)."""

from __future__ import annotations

import threading

import pytest

from engine.fetch_kinds import KindFetcher
from engine.types import MetricsBatch

NOW = 1_700_000_000.0


class Waiting:
    """A source whose fetch returns only once every source of the tick has been asked."""

    def __init__(self, name: str, barrier: threading.Barrier, calls: list[str]) -> None:
        self.name, self.barrier, self.calls = name, barrier, calls

    def fetch(self, now: float) -> MetricsBatch:
        self.calls.append(self.name)
        self.barrier.wait(timeout=5)  # broken (raises) if the others are asked after it
        return MetricsBatch(fetched_at=now, windows={}, error=self.name)


def test_distinct_sources_are_asked_at_once() -> None:
    calls: list[str] = []
    barrier = threading.Barrier(3)
    fetcher = KindFetcher({kind: Waiting(kind, barrier, calls) for kind in ("a", "b", "c")})
    try:
        pending = fetcher.fetch(NOW)
        assert {kind: f.result(timeout=10).error for kind, f in pending.items()} == {
            "a": "a",
            "b": "b",
            "c": "c",
        }
    finally:
        fetcher.close()


class Shared:
    """One source for several kinds, which must not be asked from two threads at once."""

    def __init__(self) -> None:
        self.calls = 0
        self.inside = threading.Lock()

    def fetch(self, now: float) -> MetricsBatch:
        assert self.inside.acquire(blocking=False), "asked twice at once"
        try:
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("third call fails")
            return MetricsBatch(fetched_at=now, windows={}, error=str(self.calls))
        finally:
            self.inside.release()


def test_a_shared_source_is_asked_in_the_kinds_order_and_its_errors_reach_the_tick() -> None:
    shared, barrier = Shared(), threading.Barrier(1)
    fetcher = KindFetcher({"x": shared, "y": Waiting("y", barrier, []), "z": shared, "w": shared})
    try:
        pending = fetcher.fetch(NOW)
        assert list(pending) == ["x", "z", "w", "y"]
        assert pending["x"].result(timeout=10).error == "1"
        assert pending["z"].result(timeout=10).error == "2"
        with pytest.raises(RuntimeError, match="third call fails"):
            pending["w"].result(timeout=10)
        assert pending["y"].result(timeout=10).error == "y"
    finally:
        fetcher.close()


def test_one_source_is_asked_on_the_tick_s_own_thread() -> None:
    seen: list[str] = []

    class Here:
        def fetch(self, now: float) -> MetricsBatch:
            seen.append(threading.current_thread().name)
            return MetricsBatch(fetched_at=now, windows={})

    source = Here()
    fetcher = KindFetcher({"a": source, "b": source})
    pending = fetcher.fetch(NOW)
    assert all(f.done() for f in pending.values())
    assert seen == [threading.current_thread().name] * 2
    fetcher.close()
