"""A fleet's answer read fast, with the same results as the plain reading.

The matrix reader (engine/metrics/matrix.py) checks the common point shape inline and
builds samples as named tuples; the evaluator skips non-finite samples where it reads
them instead of copying every window first. Both are compared here with a plain
reference on generated inputs, and the collector pause with its promise to restore.
"""

from __future__ import annotations

import gc
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.evaluate import Thresholds, evaluate_host
from engine.metrics.matrix import MalformedAnswerError, collector_paused
from engine.metrics.matrix import windows_from_matrix as read
from engine.metrics.series_map import SeriesMap
from engine.types import HostState, HostStatus, Sample

SERIES = SeriesMap.of_labels({"10.0.0.1": "a", "10.0.0.2": "b"})
START, END = 100.0, 104.0
LABELS = st.sampled_from(["10.0.0.1:9100", "10.0.0.1:9200", "10.0.0.2:9100", "10.0.0.9:1"])
STAMPS = st.sampled_from([99.0, 100.0, 100.5, 101.0, 102.0, 103.0, 104.0, 104.5, 110.0])
VALUES = st.sampled_from(["1", "50.5", "99.9", "-0.3", "0", "NaN", "+Inf", "12"])
POINTS = st.lists(st.tuples(STAMPS, VALUES).map(list), max_size=6)
MATRIX = st.lists(
    st.fixed_dictionaries(
        {"metric": st.builds(lambda v: {"instance": v}, LABELS), "values": POINTS}
    ),
    max_size=5,
)


def reference(result: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """The plain reading: every point in range with a finite value, never below 0, the
    worst per timestamp when a host has several series, sorted by time."""
    merged: dict[str, dict[float, float]] = {host: {} for host in SERIES.hosts}
    for series in result:
        host = SERIES.host_of(series["metric"]["instance"])
        if host is None:
            continue
        for ts, text in series["values"]:
            value = float(text)
            if START - 0.001 <= ts <= END + 0.001 and math.isfinite(value):
                by_ts = merged[host]
                by_ts[ts] = max(value, 0.0, by_ts.get(ts, 0.0))
    return {host: sorted(by_ts.items()) for host, by_ts in merged.items()}


@settings(max_examples=300, deadline=None)
@given(MATRIX)
def test_the_fast_reading_is_the_plain_one(result: list[dict[str, Any]]) -> None:
    windows, unmatched = read(
        result,
        owners=SERIES,
        hosts=SERIES.hosts,
        label="instance",
        start=START,
        end=END,
    )
    assert {h: [(s.ts, s.value) for s in w] for h, w in windows.items()} == reference(result)
    assert all(type(s) is Sample and s.host == h for h, w in windows.items() for s in w)
    labels = {series["metric"]["instance"] for series in result}
    assert set(unmatched) == {label for label in labels if SERIES.host_of(label) is None}


@pytest.mark.parametrize(
    ("point", "error"),
    [
        ([float("nan"), "abc"], "timestamp 'nan' is not a number"),
        ([101.0, "abc"], "value 'abc' is not a number"),
        ([101.0, True], "value 'True' is not a number"),
        ([101, None], "value 'None' is not a number"),
        ([101.0], "not a [ts, value] pair"),
    ],
)
def test_a_bad_point_is_named_whatever_its_place(point: list[Any], error: str) -> None:
    result = [{"metric": {"instance": "10.0.0.1:9100"}, "values": [[100.0, "1"], point]}]
    with pytest.raises(MalformedAnswerError, match=error.replace("[", r"\[")):
        read(
            result,
            owners=SERIES,
            hosts=("a",),
            label="instance",
            start=START,
            end=END,
        )


def test_the_collector_comes_back_as_it_was() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("mid-answer")
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # someone else's choice stays
    finally:
        gc.enable()


LIMITS = Thresholds(trigger=80, clear=50, sustain=10, step=1, staleness=5, covers=1.0)
SAMPLE_VALUES = st.sampled_from([10.0, 50.0, 80.0, 85.0, 90.0, 99.0, math.nan, math.inf])
PREVIOUS = st.sampled_from(
    [
        None,
        HostState("h", HostStatus.NORMAL, 10.0, 900.0, "x"),
        HostState("h", HostStatus.HIGH_CPU, 90.0, 950.0, "x"),
        HostState("h", HostStatus.UNKNOWN, None, 990.0, "x"),
    ]
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([1.0, 2.0, 7.0]), SAMPLE_VALUES), max_size=14),
    PREVIOUS,
)
def test_non_finite_samples_count_as_absent(
    steps: list[tuple[float, float]], previous: HostState | None
) -> None:
    now, ts, window = 1000.0, 999.5, []
    for gap, value in steps:
        window.append(Sample("h", ts, value))
        ts -= gap
    window.reverse()
    finite = [s for s in window if math.isfinite(s.value)]
    assert evaluate_host("h", window, previous, LIMITS, now) == evaluate_host(
        "h", finite, previous, LIMITS, now
    )
