"""A held window (engine/metrics/window.py) reads as the tuple of its samples in every way
the engine reads one, and holds a sample in a fraction of the memory."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.metrics.held import HeldWindows, millis
from engine.metrics.window import Window
from engine.types import Sample

NOW = 1_764_633_600.0


def _samples(n: int, host: str = "web1") -> tuple[Sample, ...]:
    return tuple(Sample(host, NOW - 10.0 * (n - i), float(i % 7) * 13.5) for i in range(n))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=40), st.integers(-45, 45), st.integers(-45, 45))
def test_a_window_reads_as_the_tuple_of_its_samples(n: int, a: int, b: int) -> None:
    samples = _samples(n)
    window = Window.of("web1", samples)
    assert len(window) == n and bool(window) is bool(samples)
    assert list(window) == list(samples)
    assert list(reversed(window)) == list(reversed(samples))
    assert window[a:b] == samples[a:b] and window[a:] == samples[a:] and window[:b] == samples[:b]
    for index in (a, b):
        if -n <= index < n:
            assert window[index] == samples[index]
        else:
            with pytest.raises(IndexError):
                window[index]
    assert window == samples and samples == window  # both ways, as dict comparisons do
    assert window == Window.of("web1", samples)
    assert window != (*samples, Sample("web1", NOW + 1, 1.0))
    assert (window == _samples(n, "web2")) is (n == 0)


def test_a_window_is_not_hashable_and_never_changes() -> None:
    window = Window.of("web1", _samples(5))
    with pytest.raises(TypeError):
        hash(window)
    longer = window.kept(1, 5, (Sample("web1", NOW, 99.0),))
    assert len(window) == 5 and window == _samples(5)  # the original is left as it was
    assert longer == (*_samples(5)[1:], Sample("web1", NOW, 99.0))


def test_merging_keeps_the_same_samples_as_the_tuples_did() -> None:
    held = HeldWindows(lookback=60, step=15, stale_after=60)
    first = held.keep({"web1": _samples(10), "web2": ()}, NOW - 10)
    assert first == {"web1": _samples(10), "web2": ()}
    fresh = {"web1": (Sample("web1", NOW, 42.0),), "web2": (Sample("web2", NOW, 1.0),)}
    merged = held.merge(fresh, millis(NOW), NOW)
    assert merged is not None
    # Within the 60 s lookback (and its millisecond slack): the last six held, then the new.
    assert merged["web1"] == (*_samples(10)[-6:], Sample("web1", NOW, 42.0))
    assert merged["web2"] == (Sample("web2", NOW, 1.0),)


def _held_bytes(make: object, hosts: int, per_host: int) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = make(hosts, per_host)  # type: ignore[operator]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert kept
    return after - before


NAMES = [f"h{h}" for h in range(1000)]  # made before tracing: both forms share them


def _as_windows(hosts: int, per_host: int) -> object:
    return {
        NAMES[h]: Window.of(
            NAMES[h], (Sample(NAMES[h], NOW + i, float(h * per_host + i)) for i in range(per_host))
        )
        for h in range(hosts)
    }


def _as_tuples(hosts: int, per_host: int) -> object:
    return {
        NAMES[h]: tuple(Sample(NAMES[h], NOW + i, float(h * per_host + i)) for i in range(per_host))
        for h in range(hosts)
    }


def test_a_held_sample_takes_a_fraction_of_a_tuples_memory() -> None:
    """1,000 hosts of 35 samples each (a full CPU window at 10 s ticks), every value its own."""
    compact = _held_bytes(_as_windows, 1000, 35)
    tuples = _held_bytes(_as_tuples, 1000, 35)
    per_sample = compact / 35_000
    assert per_sample < 26, f"{per_sample:.1f} bytes a sample"  # 16 for the two doubles
    assert compact * 4 < tuples, (compact, tuples)  # 23 against 130 on CPython 3.11
