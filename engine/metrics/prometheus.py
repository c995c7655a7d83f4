"""Metrics sources: one query per tick, a window of samples per inventory host.

The pure part decides nothing: it turns an answer into samples, or says "no data"
(an empty window), which the evaluator reads as UNKNOWN. A source never raises
out of ``fetch``: an unreachable or hostile server becomes a batch with ``error``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from engine.errors import InputError
from engine.metrics.deadline import MAX_ANSWER, AnswerTooLargeError, DeadlineSession
from engine.metrics.series_map import SeriesMap, strip_port
from engine.redact import redact_url
from engine.types import MetricsBatch, Sample

log = logging.getLogger("autosre.metrics")

_MAX_REASON = 300  # hostile servers may send megabytes of error text; logs stay readable
_TS_SLACK = 0.001  # Prometheus evaluates at millisecond resolution
_MAX_TOLD = (
    1000  # unmatched labels remembered (and logged once each); a hostile server's churn is capped
)

__all__ = ["PrometheusSource", "strip_port"]


class _MalformedAnswerError(InputError):
    """The server answered, but not with a range-query matrix of numbers."""


class Outage:
    """One server's outage, shared by the sources that query it (one per signal kind), so
    that it is told once, not once per kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None

    def begin(self, now: float) -> bool:
        """Note a failure; True only for the first one of an outage."""
        with self._lock:
            if self._since is not None:
                return False
            self._since = now
            return True

    def end(self, now: float) -> float | None:
        """Note an answer; the outage's length if one just ended, else None."""
        with self._lock:
            since, self._since = self._since, None
        return None if since is None else now - since


class PrometheusSource:
    """Reads one range query per tick from Prometheus and maps series to hosts."""

    def __init__(
        self,
        *,
        url: str,
        query: str,
        series: SeriesMap,
        lookback: float,
        step: float,
        label: str = "instance",
        timeout: float = 5.0,
        max_answer: int = MAX_ANSWER,
        client: PrometheusConnect | None = None,
        outage: Outage | None = None,
    ) -> None:
        self._url = redact_url(url)  # shown in logs: never with its password
        self._query = query
        self._series = series
        self._hosts = series.hosts
        self._told: set[str] = set()  # unmatched labels already logged
        self._lookback = lookback
        self._step = step
        self._label = label
        self._timeout = timeout
        self._session: requests.Session | None = None
        if client is None:
            # requests' timeout bounds each socket read, not the answer: a server dribbling
            # bytes would hold the tick. This session makes timeout a deadline for the
            # whole answer and caps its size. No retries either (the library's default
            # backs off for seconds): a failed tick is simply "no data".
            self._session = DeadlineSession(max_answer=max_answer)
            client = PrometheusConnect(
                url=url, session=self._session, retry=Retry(total=0, read=False), timeout=timeout
            )
        self._client = client
        self._outage = outage or Outage()

    def fetch(self, now: float) -> MetricsBatch:
        """Query [now - lookback, now]; on any failure every host gets an empty window."""
        start = now - self._lookback
        try:
            result = self._client.custom_query_range(
                query=self._query,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(now, UTC),
                step=f"{self._step:g}",
                # The library rounds start/end to whole seconds, which can cost the
                # newest half second of data; exact values override its rounding.
                params={"start": f"{start:.3f}", "end": f"{now:.3f}"},
                timeout=self._timeout,
            )
        except Exception as exc:  # whatever the server does must end as "no data"
            return self._failed(now, _describe(exc, self._timeout))
        try:
            windows, unmatched = _windows_from_matrix(
                result,
                owners=self._series,
                label=self._label,
                start=start,
                end=now,
            )
        except _MalformedAnswerError as exc:
            return self._failed(now, f"malformed answer: {exc}")
        lasted = self._outage.end(now)
        if lasted is not None:
            log.info("prometheus at %s answers again after %.1fs of outage", self._url, lasted)
        self._tell_unmatched(unmatched)
        return MetricsBatch(fetched_at=now, windows=windows, unmatched=unmatched)

    def _tell_unmatched(self, unmatched: Sequence[str]) -> None:
        """Log each series label that matches no host once, not on every tick."""
        new = [label for label in unmatched if label not in self._told]
        if not new or len(self._told) >= _MAX_TOLD:
            return
        new = new[: _MAX_TOLD - len(self._told)]
        self._told.update(new)
        shown = ", ".join(repr(label) for label in new[:10])
        more = f" and {len(new) - 10} more" if len(new) > 10 else ""
        log.warning(
            "prometheus series match no inventory host (%s=%s%s); set autosre_instance on the "
            "host they belong to, or leave them out of the query",
            self._label,
            shown,
            more,
        )

    def close(self) -> None:
        """Close the HTTP session this source opened (an injected client is the caller's)."""
        if self._session is not None:
            self._session.close()

    def _failed(self, now: float, reason: str) -> MetricsBatch:
        reason = reason[:_MAX_REASON]
        if self._outage.begin(now):
            # Once per outage: a dead server must not write a warning every tick.
            log.warning(
                "prometheus unreachable at %s: %s; all hosts UNKNOWN until it answers",
                self._url,
                reason,
            )
        empty: dict[str, tuple[Sample, ...]] = dict.fromkeys(self._hosts, ())
        return MetricsBatch(fetched_at=now, windows=empty, error=reason)


def _windows_from_matrix(
    result: object,
    *,
    owners: SeriesMap,
    label: str,
    start: float,
    end: float,
) -> tuple[dict[str, tuple[Sample, ...]], tuple[str, ...]]:
    """Turn a query_range ``result`` into per-host windows and unmatched labels.

    Raise _MalformedAnswerError on any wrong shape or non-numeric value.
    """
    if not isinstance(result, list):
        raise _MalformedAnswerError(f"result is {type(result).__name__}, expected a list")
    merged: dict[str, dict[float, float]] = {host: {} for host in owners.hosts}
    unmatched: set[str] = set()
    for index, series in enumerate(result):
        if not isinstance(series, dict):
            raise _MalformedAnswerError(f"series {index} is {type(series).__name__}")
        metric, values = series.get("metric"), series.get("values")
        if not isinstance(metric, dict) or not isinstance(values, list):
            raise _MalformedAnswerError(f"series {index} lacks a metric object or a values list")
        points = [_point(raw, index) for raw in values]
        name = metric.get(label)
        host = owners.host_of(name) if isinstance(name, str) else None
        if host is None or host not in merged:
            unmatched.add((name if isinstance(name, str) else _selector(metric))[:_MAX_REASON])
            continue
        # Several series for one host (per core, per job, per address): the worst decides.
        by_ts = merged[host]
        for ts, value in points:
            if math.isfinite(value) and start - _TS_SLACK <= ts <= end + _TS_SLACK:
                # Signals are percents; an idle counter's rate jitters a hair above 100 %
                # idle, which would read as "cpu -0.3%".
                percent = max(value, 0.0)
                by_ts[ts] = max(percent, by_ts.get(ts, percent))
    windows = {
        host: tuple(Sample(host, ts, value) for ts, value in sorted(by_ts.items()))
        for host, by_ts in merged.items()
    }
    return windows, tuple(sorted(unmatched))


def _point(raw: object, index: int) -> tuple[float, float]:
    if not isinstance(raw, list) or len(raw) != 2:
        raise _MalformedAnswerError(f"series {index}: a point is not a [ts, value] pair")
    ts, value = raw
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise _MalformedAnswerError(f"series {index}: timestamp {str(ts)[:40]!r} is not a number")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _MalformedAnswerError(f"series {index}: value {str(value)[:40]!r} is not a number")
    try:
        return float(ts), float(value)
    except ValueError:
        raise _MalformedAnswerError(
            f"series {index}: value {str(value)[:40]!r} is not a number"
        ) from None


def _selector(metric: Mapping[object, object]) -> str:
    labels = ",".join(f'{key}="{value}"' for key, value in sorted(metric.items(), key=str))
    return "{" + labels + "}"


def _describe(exc: Exception, timeout: float) -> str:
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, requests.ConnectionError):
        cause = getattr(exc.args[0], "reason", exc) if exc.args else exc
        # urllib3 prefixes the connection object's repr; the errno text is what matters.
        return "connection failed: " + str(cause).rsplit(">: ", 1)[-1]
    if isinstance(exc, AnswerTooLargeError):
        return str(exc)  # "answer larger than the 256 MiB limit"
    if isinstance(exc, PrometheusApiClientException):
        return str(exc)  # "HTTP Status Code 500 (b'...')"
    if isinstance(exc, ValueError):
        return f"invalid JSON: {exc}"
    if isinstance(exc, LookupError | TypeError):
        return f"unexpected answer shape: {type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"
