"""Held windows completed by the newest value alone (an instant query at each tick), against
the full query, on generated fleets.

The source's own choice each tick (PrometheusSource._fetch_held): the newest value when the
last fetch is at most a step old, else the newest steps, else a full query. Such a window
holds one value per tick, not per step of the full query's grid: each a true value of the
expression, the newest one the full query's own, no hole that the other lacks, and the same
decisions but for a run's start, or the newest sample's age, seen less than a step apart.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.evaluate import evaluate_host
from engine.metrics.held import HeldWindows, millis
from engine.types import HostState, HostStatus, Sample
from tests.engine.test_metrics_incremental import (
    LIMITS,
    LOOKBACK,
    SLACK,
    STEP,
    T0,
    Fleet,
    assert_run_starts_close,
    assert_true_points,
    decision,
    fetch,
    walk,
)


def prompt_fleet(seed: int, hosts: int) -> Fleet:
    """A generated fleet whose scrapes all land at once (the newest-steps test keeps the late
    ones: an instant query, like the full query's newest point, reads what has landed)."""
    fleet = Fleet(seed, hosts)
    fleet.lag = dict.fromkeys(fleet.values, 0.0)
    return fleet


def tick(held: HeldWindows, fleet: Fleet, now: float) -> tuple[dict[str, tuple[Sample, ...]], str]:
    """One fetch as the source does it, and how it asked: newest value, steps or in full."""
    if not held.newest_only(now):
        since = held.since(now)
        windows, _ = fetch(held, fleet, now)
        return windows, "full" if since is None else "steps"
    at = millis(now)
    merged = held.merge(fleet.query(at, now), at, now)  # one grid point: the value at now
    assert merged is not None  # nothing held is replaced: never a reason to ask in full
    held.keep(merged, now)
    return merged, "newest"


def stale_near_the_limit(window: tuple[Sample, ...], now: float) -> bool:
    """True when the newest sample's age is within a step of the staleness limit."""
    return bool(window) and abs(now - window[-1].ts - LIMITS.staleness) < STEP + SLACK


def assert_close(
    held: Mapping[str, tuple[Sample, ...]],
    full: Mapping[str, tuple[Sample, ...]],
    fleet: Fleet,
    now: float,
) -> None:
    for host, window in held.items():
        ts = assert_true_points(host, window, fleet, now)
        # The newest point (the value at now) is the full query's own.
        newest = now - SLACK
        assert [s for s in window if s.ts >= newest] == [s for s in full[host] if s.ts >= newest]
        other = [s.ts for s in full[host]]
        for mine, theirs in ((ts, other), (other, ts)):
            for t in mine:
                if t >= now - LOOKBACK + STEP:
                    assert any(abs(t - u) < STEP + SLACK for u in theirs), (host, t)
        for previous in (None, HostState(host, HostStatus.HIGH_CPU, 90.0, now - 400, "x")):
            a = evaluate_host(host, window, previous, LIMITS, now)
            b = evaluate_host(host, full[host], previous, LIMITS, now)
            if decision(a)[:2] == decision(b)[:2] and a.sample_ts and b.sample_ts:
                # The last sample before a hole: a tick's and a step's, less than a step apart.
                assert abs(a.sample_ts - b.sample_ts) < STEP + SLACK, (host, a, b)
                if a.rising_since == b.rising_since or a.status is HostStatus.UNKNOWN:
                    continue
            elif decision(a) == decision(b):
                continue
            if stale_near_the_limit(window, now) or stale_near_the_limit(full[host], now):
                continue  # so one of them may be stale and the other not yet
            assert_run_starts_close(window, full[host], (host, a, b))


@settings(max_examples=200, deadline=None)
@example(5, [10.0] * 30)
@given(
    st.integers(0, 10**6),
    st.lists(st.sampled_from([0.4, 3.0, 10.0, 10.0, 10.0, 12.0, 15.0, 17.5, 40.0]), max_size=40),
)
def test_newest_values_match_the_full_query(seed: int, gaps: list[float]) -> None:
    walk(prompt_fleet(seed, hosts=6), gaps, lambda h, f, now: tick(h, f, now)[0], assert_close)


def test_a_usual_tick_asks_for_one_value_a_host() -> None:
    fleet = prompt_fleet(7, hosts=20)
    held = HeldWindows(lookback=LOOKBACK, step=STEP, stale_after=60)
    now, ways = T0, []
    for gap in (0, 10, 10, 15, 10, 16, 10):
        now += gap
        windows, way = tick(held, fleet, now)
        ways.append(way)
    # A step or less since the last fetch: the value at now; more: the newest steps.
    assert ways == ["full", "newest", "newest", "newest", "newest", "steps", "newest"]
    # A window holds a value per tick since the full query, trimmed to the lookback.
    stamps = [s.ts for s in windows["h0"] if s.ts > T0 + 1]
    assert all(b - a <= STEP + SLACK for a, b in itertools.pairwise(stamps))
    assert held.newest_only(now + STEP) and not held.newest_only(now + STEP + 0.002)
    assert not held.newest_only(now) and not held.newest_only(now - 5)  # a clock going back
