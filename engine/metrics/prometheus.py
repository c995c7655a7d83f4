"""Metrics sources: one query per tick, a window of samples per inventory host.

The pure part decides nothing: it turns an answer into samples, or says "no data"
(an empty window), which the evaluator reads as UNKNOWN. A source never raises
out of ``fetch``: an unreachable or hostile server becomes a batch with ``error``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import orjson
import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from engine.metrics.deadline import MAX_ANSWER, AnswerTooLargeError, DeadlineSession
from engine.metrics.held import HeldWindows, as_param, millis
from engine.metrics.matrix import (
    MAX_REASON,
    MalformedAnswerError,
    collector_paused,
    windows_from_matrix,
)
from engine.metrics.outage import Outage
from engine.metrics.series_map import SeriesMap, strip_port
from engine.metrics.vector import windows_from_vector
from engine.redact import redact_url
from engine.types import MetricsBatch, Sample

log = logging.getLogger("autosre.metrics")
# One answer decoded at a time, however many kinds are asked at once (engine/fetch_kinds.py):
# the interpreter decodes one at a time anyway, and a fleet's decoded answers alive side by
# side cost tens of MB (measured with whole windows: 21 MB more at 10,000 hosts).
_DECODING = threading.Lock()
MAX_TOLD = 1000  # unmatched labels remembered (and logged once each); a hostile server's
# churn is capped

__all__ = ["Outage", "PrometheusSource", "strip_port"]

# Windows per host and the labels that matched no host, or why the answer was not used.
_Found = tuple[Mapping[str, Sequence[Sample]], tuple[str, ...]] | str


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
        incremental: bool = True,
        stale_after: float | None = None,
    ) -> None:
        self._url = redact_url(url)  # shown in logs: never with its password
        self._query = query
        self._hosts = series.hosts
        self._series = series
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
        # Windows kept between fetches: only with this source's own session (an injected
        # client is asked for whole windows, as before).
        self.incremental = incremental and self._session is not None
        # False: a usual tick asks for the newest steps too, not the newest value alone (as
        # before; the bench compares the two).
        self.newest_value = True
        self._held = HeldWindows(lookback=lookback, step=step, stale_after=stale_after)
        self._all_hosts = frozenset(self._hosts)
        self._others: frozenset[str] = frozenset()  # inventory hosts of other replicas

    def restrict(self, hosts: frozenset[str] | None) -> None:
        """From the next fetch on, map and keep only series of these hosts; None: all."""
        wanted = self._series.hosts if hosts is None else tuple(sorted(hosts & self._all_hosts))
        if wanted == self._hosts:
            return
        self._hosts = wanted
        self._others = self._all_hosts.difference(wanted)
        self._held.forget()  # hosts new to this source have nothing held: ask in full

    def fetch(self, now: float) -> MetricsBatch:
        """Windows over [now - lookback, now]: asked in full, or when the last fetch's
        windows are held, only the newest value or steps (engine/metrics/held.py); on any
        failure every host gets an empty window."""
        found = self._fetch_held(now) if self.incremental else self._fetch_windows(None, now)
        if isinstance(found, str):
            self._held.forget()  # after a failure, the next fetch asks in full
            return self._failed(now, found)
        windows, unmatched = found
        if self.incremental:  # held compactly (engine/metrics/window.py), and so batched
            windows = self._held.keep(windows, now)
        lasted = self._outage.end(now)
        if lasted is not None:
            log.info("prometheus at %s answers again after %.1fs of outage", self._url, lasted)
        self._tell_unmatched(unmatched)
        return MetricsBatch(fetched_at=now, windows=windows, unmatched=unmatched)

    def _fetch_held(self, now: float) -> _Found:
        """The held windows completed by the newest value or steps, else asked in full."""
        if self.newest_value and self._held.newest_only(now):
            since: int | None = millis(now)
            found = self._fetch_newest(now)
        else:
            since = self._held.since(now)
            found = self._fetch_windows(since, now)
        if since is None or isinstance(found, str):
            return found
        merged = self._held.merge(found[0], since, now)
        # Anything inconsistent: the full answer, at once.
        return (merged, found[1]) if merged is not None else self._fetch_windows(None, now)

    def _fetch_newest(self, now: float) -> _Found:
        """One instant query at now: each host's newest value, as a one-point window."""
        at = millis(now)
        params = {"query": self._query, "time": as_param(at)}
        return self._read(lambda: self._get("query", params), at, now, instant=True)

    def _fetch_windows(self, since: int | None, now: float) -> _Found:
        """One range query from ``since`` (ms; None: the full window) to now, as windows and
        unmatched labels, or why it failed."""
        start_ms = self._held.full_start(now) if since is None else since
        return self._read(lambda: self._query_range(start_ms, now), start_ms, now)

    def _read(
        self, ask: Callable[[], bytes | object], start_ms: int, now: float, *, instant: bool = False
    ) -> _Found:
        """Ask, and read the answer as windows from ``start_ms``; or why it failed."""
        try:
            answer = ask()
        except Exception as exc:  # whatever the server does must end as "no data"
            return _describe(exc, self._timeout)
        try:
            return self._windows(answer, start_ms / 1000, now, instant=instant)
        except MalformedAnswerError as exc:
            return f"malformed answer: {exc}"
        except Exception as exc:  # not JSON, or JSON of another shape
            return _describe(exc, self._timeout)

    def _windows(
        self, answer: bytes | object, start: float, now: float, *, instant: bool = False
    ) -> tuple[dict[str, Sequence[Sample]], tuple[str, ...]]:
        """The answer (a body to decode, or the injected client's result) as windows."""
        with _DECODING, collector_paused():
            # Decoded here, not by the library, so that the collector is held for it too.
            # orjson (the store's encoder): 3 ms against json's 6 for a 10,000-host newest-value
            # answer, 75 against 93 for whole windows.
            result = orjson.loads(answer)["data"]["result"] if isinstance(answer, bytes) else answer
            read = windows_from_vector if instant else windows_from_matrix
            found = read(
                result,
                owners=self._series,
                hosts=self._hosts,
                label=self._label,
                start=start,
                end=now,
                others=self._others,
            )
            # Freed while the collector is held: it never walks the answer's lists.
            del result
            return found

    def _query_range(self, start_ms: int, now: float) -> bytes | object:
        """The answer's body, or with an injected client its ``data.result``; raises on any
        failure (see ``_describe``)."""
        # The library rounds start/end to whole seconds, which can cost the newest half
        # second of data; exact values (whole milliseconds, as Prometheus reads them, so
        # that every query's grid is the full query's) override its rounding.
        start = start_ms / 1000
        exact = {"start": as_param(start_ms), "end": as_param(millis(now))}
        if self._session is None:  # an injected client: its own request and decoding
            decoded: object = self._client.custom_query_range(
                query=self._query,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(now, UTC),
                step=f"{self._step:g}",
                params=exact,
                timeout=self._timeout,
            )
            return decoded
        return self._get("query_range", {"query": self._query, **exact, "step": f"{self._step:g}"})

    def _get(self, path: str, params: dict[str, str]) -> bytes:
        """The body of one API request on this source's own session; raises on any failure."""
        if self._session is None:  # an injected client asks by itself (_query_range)
            raise RuntimeError("this source has no session of its own")
        # The library's request, decoded by the caller (see _windows).
        response = self._session.get(
            f"{self._client.url}/api/v1/{path}",
            params=params,
            headers=self._client.headers,
            timeout=self._timeout,
        )
        if response.status_code != 200:
            raise PrometheusApiClientException(
                f"HTTP Status Code {response.status_code} ({response.content!r})"
            )
        return response.content

    def _tell_unmatched(self, unmatched: Sequence[str]) -> None:
        """Log each series label that matches no host once, not on every tick."""
        new = [label for label in unmatched if label not in self._told]
        if not new or len(self._told) >= MAX_TOLD:
            return
        new = new[: MAX_TOLD - len(self._told)]
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
        reason = reason[:MAX_REASON]
        if self._outage.begin(now):
            # Once per outage: a dead server must not write a warning every tick.
            log.warning(
                "prometheus unreachable at %s: %s; all hosts UNKNOWN until it answers",
                self._url,
                reason,
            )
        empty: dict[str, tuple[Sample, ...]] = dict.fromkeys(self._hosts, ())
        return MetricsBatch(fetched_at=now, windows=empty, error=reason)


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
