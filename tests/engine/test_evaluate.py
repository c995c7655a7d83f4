"""Evaluation: sustain from the first high sample, hysteresis, and no data is UNKNOWN."""

from __future__ import annotations

from dataclasses import replace

from engine.evaluate import Evaluator, Thresholds, evaluate_host
from engine.policy.schema import SignalRule
from engine.signals import HIGH_CPU
from engine.types import HostState, HostStatus, MetricsBatch, Sample

LIMITS = Thresholds(trigger=80, clear=50, sustain=10, step=1, staleness=5)


def series(values: list[float], *, end: float = 100.0, host: str = "web1") -> tuple[Sample, ...]:
    """Samples one second apart, the last at ``end``."""
    start = end - len(values) + 1
    return tuple(Sample(host, start + i, v) for i, v in enumerate(values))


def test_high_only_after_the_whole_sustain_window() -> None:
    short = evaluate_host("web1", series([20] + [95] * 10), None, LIMITS, now=100)
    assert short.status is HostStatus.NORMAL
    assert "for 9s of 10s" in short.reason
    held = evaluate_host("web1", series([20] + [95] * 11), None, LIMITS, now=100)
    assert held.status is HostStatus.HIGH_CPU
    assert held.since == 90.0  # counted from the first high sample, not from this tick
    assert held.value == 95


def test_one_dip_restarts_the_sustain_window() -> None:
    values = [95] * 8 + [70] + [95] * 5
    state = evaluate_host("web1", series(values), None, LIMITS, now=100)
    assert state.status is HostStatus.NORMAL


def test_a_hole_in_the_data_breaks_the_run() -> None:
    before = [Sample("web1", t, 95) for t in range(80, 86)]
    after = [Sample("web1", t, 95) for t in range(93, 101)]
    state = evaluate_host("web1", (*before, *after), None, LIMITS, now=100)
    assert state.status is HostStatus.NORMAL


def test_hysteresis_stays_high_until_below_clear() -> None:
    high = HostState("web1", HostStatus.HIGH_CPU, 95, 80, "x", 99)
    between = evaluate_host("web1", series([60]), high, LIMITS, now=100)
    assert between.status is HostStatus.HIGH_CPU
    assert between.since == 80
    cleared = evaluate_host("web1", series([45]), between, LIMITS, now=101)
    assert cleared.status is HostStatus.NORMAL


def test_no_series_and_stale_series_are_unknown_never_normal() -> None:
    assert evaluate_host("web1", (), None, LIMITS, now=100).status is HostStatus.UNKNOWN
    stale = evaluate_host("web1", series([10], end=90), None, LIMITS, now=100)
    assert stale.status is HostStatus.UNKNOWN
    assert "stale" in stale.reason
    high = HostState("web1", HostStatus.HIGH_CPU, 95, 80, "x", 99)
    assert evaluate_host("web1", (), high, LIMITS, now=100).status is HostStatus.UNKNOWN


def test_source_error_makes_every_host_unknown() -> None:
    evaluator = Evaluator(LIMITS, ["web1", "web2"])
    batch = MetricsBatch(fetched_at=100, windows={"web1": series([10])}, error="refused")
    result = evaluator.update(batch, now=100)
    assert {s.status for s in result.states.values()} == {HostStatus.UNKNOWN}
    assert "refused" in result.states["web1"].reason


def test_evaluator_reports_only_changes() -> None:
    evaluator = Evaluator(LIMITS, ["web1", "web2"])
    windows = {"web1": series([10]), "web2": ()}
    first = evaluator.update(MetricsBatch(100, windows), now=100)
    assert len(first.changes) == 2
    windows = {"web1": series([12], end=101), "web2": ()}
    second = evaluator.update(MetricsBatch(101, windows), now=101)
    assert second.changes == ()
    burn = {"web1": series([95] * 12, end=113), "web2": ()}
    third = evaluator.update(MetricsBatch(113, burn), now=113)
    assert [(old and old.status, new.status) for old, new in third.changes] == [
        (HostStatus.NORMAL, HostStatus.HIGH_CPU)
    ]


def test_zero_sustain_acts_on_the_first_high_sample() -> None:
    limits = Thresholds(trigger=80, clear=50, sustain=0, step=1, staleness=5)
    assert evaluate_host("web1", series([95]), None, limits, now=100).status is HostStatus.HIGH_CPU


def test_the_first_tick_that_sees_the_window_complete_decides() -> None:
    # Scrapes every second, the burn from t=90; ticks 0.3 s after each scrape, and a sample
    # is queryable 0.2 s after its timestamp. The sample at t=100 completes the 10 s window:
    # the tick at 100.3 is the first to see it, and it is the one that decides.
    evaluator = Evaluator(LIMITS, ["web1"])
    samples = [Sample("web1", 89, 20), *(Sample("web1", 90 + i, 95) for i in range(15))]
    seen = {}
    for tick in (95.3 + i for i in range(8)):
        visible = tuple(s for s in samples if s.ts <= tick - 0.2)
        batch = MetricsBatch(tick, {"web1": visible})
        seen[tick] = evaluator.update(batch, now=tick).states["web1"]
    rising = [tick for tick, state in seen.items() if state.status is HostStatus.NORMAL]
    assert rising == [95.3, 96.3, 97.3, 98.3, 99.3]
    assert {seen[tick].rising_since for tick in rising} == {90}
    decided = seen[100.3]
    assert (decided.status, decided.since, decided.rising_since) == (HostStatus.HIGH_CPU, 90, None)


def test_a_rate_counts_the_step_its_first_sample_measures() -> None:
    # Ten samples of CPU busy, each over the second before it, are ten seconds of it (as
    # Monit's "for 10 cycles"); ten samples of a gauge span nine.
    rate = replace(LIMITS, covers=1.0)
    short = evaluate_host("web1", series([20] + [95] * 9), None, rate, now=100)
    assert (short.status, short.rising_since) == (HostStatus.NORMAL, 92)
    assert "for 9s of 10s" in short.reason
    held = evaluate_host("web1", series([20] + [95] * 10), None, rate, now=100)
    assert (held.status, held.since) == (HostStatus.HIGH_CPU, 91)
    assert evaluate_host("web1", series([20] + [95] * 10), None, LIMITS, now=100).status is (
        HostStatus.NORMAL
    )
    cpu = SignalRule(query="q", trigger=80, clear=50, window=3, sustain=10, step=1, ladder=["a"])
    assert Thresholds.of(HIGH_CPU, cpu).covers == 1.0
