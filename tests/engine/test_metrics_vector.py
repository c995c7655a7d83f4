"""The newest-value answer's one-pass reader (engine/metrics/vector.py) gives exactly what the
range query's reader gives for the same vector, for any answer: the usual one, and every
shape a broken or hostile server may send (generated)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.metrics.matrix import MalformedAnswerError, matrix_of_vector, windows_from_matrix
from engine.metrics.series_map import SeriesMap
from engine.metrics.vector import windows_from_vector

AT = 1_764_633_600.0
HOSTS = ("web1", "web2", "web3")
OTHERS = ("web9",)  # another replica's
OWNERS = SeriesMap.of_labels(
    {"10.0.0.1:9100": "web1", "10.0.0.2": "web2", "web3": "web3", "10.0.0.9": "web9"}
)
LABELS = ["10.0.0.1:9100", "10.0.0.2:9100", "web3:80", "10.0.0.9:9100", "stray:9100", "[::1]:9"]

_stamps = st.sampled_from([AT, AT + 0.0004, AT - 0.0009, AT + 1.0, AT - 15.0]) | st.floats()
_texts = st.sampled_from(["12.5", "97", "-3", "NaN", "+Inf", "-Inf", "1e309", "x", "", "1_0"])
_good_point = st.tuples(_stamps, _texts).map(list)
_bad_point = st.one_of(
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.tuples(st.text(max_size=3), _texts).map(list),
    st.tuples(_stamps, st.one_of(st.none(), st.booleans(), st.integers(), st.floats())).map(list),
    st.tuples(st.booleans(), _texts).map(list),
)
_metric = st.one_of(
    st.fixed_dictionaries({"instance": st.sampled_from(LABELS)}),
    st.fixed_dictionaries({"instance": st.one_of(st.integers(), st.none())}),
    st.fixed_dictionaries({"job": st.just("node")}),
    st.none(),
    st.text(max_size=3),
)
_series = st.one_of(
    st.fixed_dictionaries({"metric": _metric, "value": _good_point}),
    st.fixed_dictionaries({"metric": _metric, "value": _bad_point}),
    st.fixed_dictionaries({"metric": _metric}),
    st.fixed_dictionaries({"metric": _metric, "values": st.just([[AT, "1"]])}),
    st.integers(),
    st.text(max_size=3),
)
_usual = st.fixed_dictionaries(
    {
        "metric": st.fixed_dictionaries({"instance": st.sampled_from(LABELS)}),
        "value": st.tuples(
            st.sampled_from([AT, AT - 0.0004]), st.sampled_from(["12.5", "97", "-3", "NaN"])
        ).map(list),
    }
)
_results = st.one_of(
    st.lists(_series, max_size=8),
    st.lists(_usual, min_size=1, max_size=8),  # mostly well formed: hosts with two series
    st.lists(st.fixed_dictionaries({"metric": _metric, "value": _good_point}), max_size=8),
    st.none(),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _read(reader: Any, result: object) -> object:
    try:
        return reader(result)
    except MalformedAnswerError as exc:
        return ("error", str(exc))


def _both(result: object) -> tuple[object, object]:
    common = {"owners": OWNERS, "hosts": HOSTS, "label": "instance", "others": OTHERS}
    start, end = AT - 0.0004, AT  # the asked time in whole milliseconds, and the tick's
    fast = _read(lambda r: windows_from_vector(r, start=start, end=end, **common), result)
    full = _read(
        lambda r: windows_from_matrix(matrix_of_vector(r), start=start, end=end, **common), result
    )
    return fast, full


@settings(max_examples=1500, deadline=None)
@given(_results)
def test_any_answer_reads_as_the_range_reader_reads_it(result: object) -> None:
    fast, full = _both(result)
    assert fast == full


@pytest.mark.parametrize(
    "result",
    [
        [{"metric": {"instance": "10.0.0.1:9100"}, "value": [AT, "97.5"]}],
        [
            {"metric": {"instance": "10.0.0.1:9100"}, "value": [AT, "97.5"]},
            {"metric": {"instance": "10.0.0.1:9100"}, "value": [AT, "12"]},  # two for one host
        ],
        [{"metric": {"instance": "10.0.0.9:9100"}, "value": [AT, "1"]}],  # another replica's
        [{"metric": {"instance": "stray:9100"}, "value": [AT, "1"]}],
        [{"metric": {"instance": "web3:80"}, "value": [AT - 15, "1"]}],  # stamped elsewhere
        [{"metric": {"instance": "web3:80"}, "value": [AT, "NaN"]}],
        [{"metric": {"instance": "web3:80"}, "value": [AT, "-0.4"]}],  # idle jitter: 0 %
        [{"metric": {"instance": "web3:80"}, "value": [AT, "ten"]}],
        [{"metric": {"instance": "web3:80"}, "value": [float("nan"), "1"]}],
        [{"metric": {"instance": "web3:80"}, "value": ["1764633600", "1"]}],
    ],
    ids=[
        "usual", "two series", "other replica", "stray", "stamped elsewhere", "nan", "negative",
        "text value", "nan timestamp", "text timestamp",
    ],
)  # fmt: skip
def test_each_case_reads_as_the_range_reader_reads_it(result: list[dict[str, Any]]) -> None:
    fast, full = _both(result)
    assert fast == full
