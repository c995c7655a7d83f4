"""An instant query's vector as per-host one-point windows, for the usual tick.

Pure. The usual answer has one series per host, each a ``[float, "text"]`` value stamped at
the asked time: that shape is mapped here in one pass, without first turning the vector into
a matrix. Anything else (a series of another shape, a host with several series, a label
that names no host, a value stamped elsewhere) is handed whole to the range query's reader
(engine/metrics/matrix.py), which checks every part and decides as it always has: the
two paths give the same windows for any answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence

from engine.metrics.matrix import (
    MalformedAnswerError,
    matrix_of_vector,
    windows_from_matrix,
)
from engine.metrics.series_map import SeriesMap
from engine.types import Sample

_TS_SLACK = 0.001  # as matrix.py: Prometheus evaluates at millisecond resolution
_sample = tuple.__new__  # Sample(host, ts, value) without its keyword handling


def windows_from_vector(
    result: object,
    *,
    owners: SeriesMap,
    hosts: Sequence[str],
    label: str,
    start: float,
    end: float,
    others: Collection[str] = (),
) -> tuple[dict[str, Sequence[Sample]], tuple[str, ...]]:
    """Turn an instant query's ``result`` (evaluated at the asked time, between ``start``
    and ``end``) into per-host windows of at most one sample, and unmatched labels. Raise
    MalformedAnswerError as windows_from_matrix does."""
    if not isinstance(result, list):
        raise MalformedAnswerError(f"result is {type(result).__name__}, expected a list")
    lo, hi = start - _TS_SLACK, end + _TS_SLACK
    windows: dict[str, Sequence[Sample]] = dict.fromkeys(hosts, ())
    read: set[str] = set()
    values: dict[str, float] = {}  # gauges repeat their values: each text is parsed once
    host_of = owners.host_of
    for series in result:
        host = _usual_host(series, label, host_of)
        if host is None or host not in windows or host in read:
            if host is not None and host in others:
                continue  # another replica's host: not read, as windows_from_matrix does
            return _in_full(result, owners, hosts, label, (start, end), others)
        ts, text = series["value"]
        if not lo <= ts <= hi:
            return _in_full(result, owners, hosts, label, (start, end), others)
        value = values.get(text)
        if value is None:
            try:
                value = values[text] = float(text)
            except ValueError:  # the range reader names what is wrong
                return _in_full(result, owners, hosts, label, (start, end), others)
        read.add(host)
        if not math.isfinite(value):  # not data: windows_from_matrix skips it too
            continue
        windows[host] = (_sample(Sample, (host, ts, value if value > 0.0 else 0.0)),)
    return windows, ()


def _usual_host(series: object, label: str, host_of: Callable[[str], str | None]) -> str | None:
    """The host of a series of the usual shape (a metric object and a [float, "text"]
    value), else None."""
    if type(series) is not dict:
        return None
    metric, point = series.get("metric"), series.get("value")
    if type(metric) is not dict or type(point) is not list or len(point) != 2:
        return None
    if type(point[0]) is not float or type(point[1]) is not str:
        return None
    name = metric.get(label)
    if type(name) is not str:
        return None
    return host_of(name)


def _in_full(
    result: list[object],
    owners: SeriesMap,
    hosts: Sequence[str],
    label: str,
    span: tuple[float, float],
    others: Collection[str],
) -> tuple[dict[str, Sequence[Sample]], tuple[str, ...]]:
    return windows_from_matrix(
        matrix_of_vector(result),
        owners=owners,
        hosts=hosts,
        label=label,
        start=span[0],
        end=span[1],
        others=others,
    )
