"""One host's history of a signal from Prometheus: a bounded range query for its series only.

The policy's query covers the fleet; the range query keeps only the series whose label
matches this host's keys (``autosre_instance`` exactly, or its name or address with or
without a port), inside Prometheus, so a 10,000-host fleet answers with one series. Every
series that comes back is checked again against the inventory's series map. Any failure
(down, slow, too large, not JSON, HTTP error) raises ``HistoryUnavailable`` with a short
reason that never shows the URL.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import requests

from engine.errors import AutoSREError
from engine.metrics.deadline import DeadlineSession
from engine.metrics.series_map import SeriesMap

MAX_POINTS = 400  # per chart: about one point per two pixels of a wide screen
MAX_ANSWER = 4 * 1024 * 1024  # one host's series is a few kilobytes
MATCH_LABEL = "autosre_history_host"  # added by the filter; never in a real series
_PORT = "(:[0-9]+)?"


class HistoryUnavailable(AutoSREError):  # noqa: N818 - reads as the page says it
    """The history cannot be read now; ``str()`` says why, for the page."""


@dataclass(frozen=True, slots=True)
class HostSeriesKeys:
    """The label values a host's series may carry: exact ones, and bare ones (any port)."""

    host: str
    exact: tuple[str, ...] = ()
    bare: tuple[str, ...] = ()


def regex_literal(text: str) -> str:
    """``text`` as an RE2 pattern matching exactly it (punctuation escaped, others as \\x{})."""
    out = []
    for char in text:
        if char.isascii() and (char.isalnum() or char == "_"):
            out.append(char)
        elif char.isascii() and char.isprintable() and char != " ":
            out.append("\\" + char)  # RE2 takes any escaped ASCII punctuation literally
        else:
            out.append(f"\\x{{{ord(char):x}}}")
    return "".join(out)


def label_regex(keys: HostSeriesKeys) -> str:
    """A regex (anchored by label_replace) for every label value of this host's series."""
    options = [regex_literal(value) for value in keys.exact]
    for value in keys.bare:
        literal = regex_literal(value)
        options += [literal + _PORT, "\\[" + literal + "\\]" + _PORT]
    options = options or [regex_literal(keys.host) + _PORT]
    return "|".join(f"(?:{option})" for option in options)


def promql_string(text: str) -> str:
    """``text`` as a double-quoted PromQL string (JSON's escapes are Go's)."""
    return json.dumps(text)


def host_query(query: str, label: str, keys: HostSeriesKeys) -> str:
    """The policy's query cut down to this host's series, inside Prometheus."""
    mark = promql_string(MATCH_LABEL)
    tagged = (
        f'label_replace(({query}), {mark}, "1", {promql_string(label)}, '
        f"{promql_string(label_regex(keys))})"
    )
    return f'{tagged} and on({MATCH_LABEL}) label_replace(vector(1), {mark}, "1", "", "")'


def step_for(start: float, end: float, minimum: float) -> float:
    """A query step giving at most MAX_POINTS points, never finer than ``minimum``."""
    return max(minimum, math.ceil((end - start) / MAX_POINTS))


def describe(exc: Exception, timeout: float) -> str:
    """A failed request in a few words, never with the URL (it may hold a password)."""
    if isinstance(exc, requests.Timeout):
        return f"Prometheus gave no answer within {timeout:g}s"
    if isinstance(exc, requests.ConnectionError):
        return "Prometheus cannot be reached (connection failed)"
    if isinstance(exc, ValueError | LookupError | TypeError):
        return "Prometheus gave an answer that is not a range query's"
    return f"Prometheus could not be asked ({type(exc).__name__})"


class RangeReader:
    """Reads one host's series of one query over a time range, bounded in time and size."""

    def __init__(
        self,
        *,
        url: str,
        query: str,
        label: str,
        step: float,
        timeout: float,
        series: SeriesMap | None = None,
        session_factory: Callable[[], requests.Session] | None = None,
    ) -> None:
        """``series``: the inventory's map, to check each answered series belongs here."""
        self.url = url.rstrip("/")
        self.query = query
        self.label = label
        self.step = step
        self.timeout = timeout
        self.series = series
        self.session_factory = session_factory or (lambda: DeadlineSession(max_answer=MAX_ANSWER))

    def read(self, keys: HostSeriesKeys, start: float, end: float) -> list[tuple[float, float]]:
        """The host's (ts, value) points, oldest first; HistoryUnavailable with why."""
        params = {
            "query": host_query(self.query, self.label, keys),
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{step_for(start, end, self.step):g}",
        }
        with self.session_factory() as session:
            try:
                response = session.get(
                    f"{self.url}/api/v1/query_range", params=params, timeout=self.timeout
                )
                body = response.json() if response.status_code == 200 else None
            except Exception as exc:  # whatever the server does ends as a reason on the page
                raise HistoryUnavailable(describe(exc, self.timeout)) from None
        if body is None:
            raise HistoryUnavailable(f"Prometheus answered HTTP {response.status_code}")
        try:
            return self._points(body["data"]["result"], keys.host)
        except (LookupError, TypeError, ValueError) as exc:
            raise HistoryUnavailable(describe(exc, self.timeout)) from None

    def _points(self, result: Iterable[dict[str, object]], host: str) -> list[tuple[float, float]]:
        points: dict[float, float] = {}
        for series in result:
            metric = series["metric"]
            if not isinstance(metric, dict):
                raise TypeError("metric")
            owner = str(metric.get(self.label, ""))
            if self.series is not None and self.series.host_of(owner) != host:
                continue  # another host's series, matched by a shared address: not ours
            values = series["values"]
            if not isinstance(values, list):
                raise TypeError("values")
            for ts, text in values:
                value = float(text)
                if math.isfinite(value):
                    # Several series (one per label set): the highest, as the evaluator sees.
                    points[float(ts)] = max(value, points.get(float(ts), value))
        return sorted(points.items())
