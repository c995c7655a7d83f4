"""A range query's matrix as per-host sample windows: checked, mapped to hosts, merged.

Pure. A hostile or broken server's answer (a wrong shape, a point that is not a pair of
numbers) is a ``MalformedAnswerError``, never a wrong window. Per tick a fleet's answer
holds hundreds of thousands of points: the common shape (one ordered series per host,
``[float, "text"]`` points) is checked inline, anything else point by point.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager

from engine.errors import InputError
from engine.metrics.series_map import SeriesMap
from engine.metrics.window import Window
from engine.types import Sample

MAX_REASON = 300  # hostile servers may send megabytes of error text; logs stay readable
_TS_SLACK = 0.001  # Prometheus evaluates at millisecond resolution
_sample = tuple.__new__  # Sample(host, ts, value) without its keyword handling


@contextmanager
def collector_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while a fleet's answer is decoded and mapped.

    Those hundreds of thousands of new lists and tuples hold no cycles, yet each 700 of
    them start a collection that walks the growing heap: measured at 10,000 hosts, the
    collector took three quarters of the time. It is left off if someone else turned it off.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


class MalformedAnswerError(InputError):
    """The server answered, but not with a range-query matrix of numbers."""


def windows_from_matrix(
    result: object,
    *,
    owners: SeriesMap,
    hosts: Sequence[str],
    label: str,
    start: float,
    end: float,
    others: Collection[str] = (),
) -> tuple[dict[str, Sequence[Sample]], tuple[str, ...]]:
    """Turn a query_range ``result`` into per-host windows and unmatched labels.

    ``others`` are inventory hosts left to other replicas: their series are skipped
    unread, not unmatched. Raise MalformedAnswerError on any wrong shape or non-numeric
    value.
    """
    if not isinstance(result, list):
        raise MalformedAnswerError(f"result is {type(result).__name__}, expected a list")
    lo, hi = start - _TS_SLACK, end + _TS_SLACK
    known = set(hosts)
    # Each series' samples become a compact window at once: a fleet's whole windows as
    # named tuples would take several times the memory until they are held.
    found: dict[str, Window | list[Sample]] = {}
    several: set[str] = set()  # hosts with more than one series, or one out of order
    unmatched: set[str] = set()
    shared: dict[float | str, float] = {}  # see _series_samples
    for index, series in enumerate(result):
        if not isinstance(series, dict):
            raise MalformedAnswerError(f"series {index} is {type(series).__name__}")
        metric, values = series.get("metric"), series.get("values")
        if not isinstance(metric, dict) or not isinstance(values, list):
            raise MalformedAnswerError(f"series {index} lacks a metric object or a values list")
        name = metric.get(label)
        host = owners.host_of(name) if isinstance(name, str) else None
        if host not in known:
            if host in others:
                continue  # another replica's host: not read, and not a stray either
            host = None
        samples, ordered = _series_samples(values, index, lo, hi, host or "", shared)
        if host is None:
            unmatched.add((name if isinstance(name, str) else _selector(metric))[:MAX_REASON])
            continue
        if host in found or not ordered:
            several.add(host)
            found[host] = [*found.get(host, ()), *samples]
        else:
            found[host] = Window.of(host, samples)
    windows: dict[str, Sequence[Sample]] = dict.fromkeys(hosts, ())
    for host, kept in found.items():
        windows[host] = (
            Window.of(host, _worst_per_timestamp(list(kept))) if host in several else kept
        )
    return windows, tuple(sorted(unmatched))


def matrix_of_vector(result: object) -> object:
    """An instant query's vector as a matrix of one-point series, for windows_from_matrix
    (which checks every part of it: a series without a value is a malformed point)."""
    if not isinstance(result, list):
        return result
    return [
        {"metric": series.get("metric"), "values": [series.get("value")]}
        if isinstance(series, dict)
        else series
        for series in result
    ]


def _series_samples(
    values: list[object],
    index: int,
    lo: float,
    hi: float,
    host: str,
    shared: dict[float | str, float],
) -> tuple[list[Sample], bool]:
    """A series' finite points within [lo, hi] as the host's samples (percents, never
    negative), and whether their timestamps strictly increase (as Prometheus sends them).

    Raise MalformedAnswerError on any point that is not a [number, number] pair.
    """
    samples: list[Sample] = []
    append = samples.append
    last = -math.inf
    ordered = True
    for raw in values:
        # The common case first, checked inline: a [float, "text"] pair. Anything else
        # goes through _point, which checks every rule and names what is wrong.
        if type(raw) is list and len(raw) == 2 and type(raw[0]) is float and type(raw[1]) is str:
            ts, text = raw
            # One float object per timestamp and per value text in an answer: every host
            # shares the grid and gauges repeat their values, so a text is parsed once and
            # a whole-window answer takes less memory until it is held (as arrays).
            ts = shared.setdefault(ts, ts)
            value = shared.get(text)
            if value is None:
                try:
                    value = shared[text] = float(text)
                except ValueError:
                    ts, value = _point(raw, index)  # raises, naming what is wrong first
        else:
            ts, value = _point(raw, index)
        if not lo <= ts <= hi:
            if not math.isfinite(ts):
                raise MalformedAnswerError(
                    f"series {index}: timestamp {str(ts)[:40]!r} is not a number"
                )
            continue
        if not math.isfinite(value):
            continue
        if ts <= last:
            ordered = False
        last = ts
        # Signals are percents; an idle counter's rate jitters a hair above 100 % idle,
        # which would read as "cpu -0.3%".
        append(_sample(Sample, (host, ts, value if value > 0.0 else 0.0)))
    return samples, ordered


def _worst_per_timestamp(samples: list[Sample]) -> list[Sample]:
    """Several series for one host (per core, per job, per address): the worst value at
    each timestamp decides; sorted by time."""
    worst: dict[float, Sample] = {}
    for sample in samples:
        kept = worst.get(sample.ts)
        if kept is None or sample.value >= kept.value:
            worst[sample.ts] = sample
    return [worst[ts] for ts in sorted(worst)]


def _point(raw: object, index: int) -> tuple[float, float]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise MalformedAnswerError(f"series {index}: a point is not a [ts, value] pair")
    ts, value = raw
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise MalformedAnswerError(f"series {index}: timestamp {str(ts)[:40]!r} is not a number")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MalformedAnswerError(f"series {index}: value {str(value)[:40]!r} is not a number")
    try:
        return float(ts), float(value)
    except ValueError:
        raise MalformedAnswerError(
            f"series {index}: value {str(value)[:40]!r} is not a number"
        ) from None


def _selector(metric: Mapping[object, object]) -> str:
    labels = ",".join(f'{key}="{value}"' for key, value in sorted(metric.items(), key=str))
    return "{" + labels + "}"
