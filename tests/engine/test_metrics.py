"""Metrics sources against a real Prometheus + node_exporter, a hostile fake, and psutil."""

from __future__ import annotations

import gzip
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from engine.metrics.local import LocalSource
from engine.metrics.prometheus import PrometheusSource, strip_port
from engine.metrics.series_map import HostKeys, SeriesMap
from tests.fixtures.prometheus import (
    FakePrometheus,
    NodeExporter,
    PrometheusServer,
    Reply,
    free_port,
)

CPU_QUERY = '100 * (1 - avg by (instance) (irate(node_cpu_seconds_total{mode="idle"}[5s])))'
ALIASES = {"127.0.0.1": "web1", "127.0.0.2": "web2"}
HOSTS = {"web1", "web2"}
NOW = 1_700_000_000.0


class CountingSession(requests.Session):
    """A requests session that counts the HTTP requests it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        self.count += 1
        return super().request(method, url, *args, **kwargs)


@pytest.fixture
def counting_session() -> Iterator[CountingSession]:
    session = CountingSession()
    yield session
    session.close()


def _source(url: str, **overrides: Any) -> PrometheusSource:
    options: dict[str, Any] = {
        "url": url,
        "query": CPU_QUERY,
        "series": SeriesMap.of_labels(ALIASES),
        "lookback": 15.0,
        "step": 1.0,
        "timeout": 2.0,
    }
    options.update(overrides)
    return PrometheusSource(**options)


def _matrix(*series: tuple[dict[str, str], list[list[object]]]) -> str:
    result = [{"metric": metric, "values": values} for metric, values in series]
    return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})


def _assert_error_batch(batch: Any) -> None:
    assert batch.error
    assert dict(batch.windows) == {"web1": (), "web2": ()}


# --- strip_port ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("web1:9100", "web1"),
        ("web1", "web1"),
        ("127.0.0.1:9100", "127.0.0.1"),
        ("[::1]:9100", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),  # bare IPv6: the last group is not a port
        ("fe80::1:9100", "fe80::1:9100"),
        ("web1:http", "web1:http"),
        ("web1:", "web1:"),
        (":9100", ":9100"),
        ("[::1]:x", "[::1]:x"),
        ("", ""),
    ],
)
def test_strip_port(label: str, expected: str) -> None:
    assert strip_port(label) == expected


# --- real Prometheus + node_exporter -----------------------------------------


@pytest.mark.integration
def test_prometheus_real_cpu_windows_and_outage(
    node_exporter: NodeExporter,
    prometheus_factory: Callable[..., PrometheusServer],
    counting_session: CountingSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    prom = prometheus_factory([node_exporter.address])
    prom.wait_for_series(CPU_QUERY, timeout=15.0)
    client = PrometheusConnect(url=prom.url, session=counting_session, retry=Retry(total=0))
    source = _source(prom.url, client=client)

    now = time.time()
    batch = source.fetch(now)
    assert counting_session.count == 1
    assert batch.error is None
    assert batch.unmatched == ()
    assert set(batch.windows) == HOSTS
    assert batch.windows["web2"] == ()
    window = batch.windows["web1"]
    assert window
    assert all(s.host == "web1" and 0.0 <= s.value <= 100.0 for s in window)
    stamps = [s.ts for s in window]
    assert stamps == sorted(stamps)
    assert now - 15.0 - 0.001 <= stamps[0] and stamps[-1] <= now + 0.001

    # The source's own session (a deadline per answer, a size cap) reads the real server
    # too, twice over one kept-alive connection.
    own = _source(prom.url)
    try:
        assert own.fetch(time.time()).windows["web1"]
        assert own.fetch(time.time()).windows["web1"]
    finally:
        own.close()

    caplog.set_level(logging.INFO, logger="autosre.metrics")
    prom.stop()
    for _ in range(3):
        _assert_error_batch(source.fetch(time.time()))
    assert counting_session.count == 4
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "prometheus unreachable at" in warnings[0].getMessage()
    assert "all hosts UNKNOWN until it answers" in warnings[0].getMessage()

    prom.start()
    assert source.fetch(time.time()).error is None
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1
    assert "answers again" in infos[0].getMessage()


# --- scripted fake Prometheus -------------------------------------------------

HOSTILE = {
    "http 500": Reply(500, "internal error"),
    "http 400 prometheus error": Reply(400, '{"status":"error","error":"parse error"}'),
    "html 200": Reply(200, "<html>hi</html>", content_type="text/html"),
    "empty 200": Reply(200, ""),
    "json list": Reply(200, "[]"),
    "json string": Reply(200, '"success"'),
    "no data": Reply(200, '{"status":"success"}'),
    "data null": Reply(200, '{"status":"success","data":null}'),
    "result object": Reply(200, '{"status":"success","data":{"result":{"a":1}}}'),
    "series not object": Reply(200, '{"status":"success","data":{"result":[1]}}'),
    "values missing": Reply(200, '{"status":"success","data":{"result":[{"metric":{}}]}}'),
    "garbage point": Reply(200, _matrix(({}, [["x", "y"]]))),
    "non-numeric value": Reply(200, _matrix(({"instance": "127.0.0.1:9100"}, [[NOW, "abc"]]))),
    "null value": Reply(200, _matrix(({"instance": "127.0.0.1:9100"}, [[NOW, None]]))),
    "bool value": Reply(200, _matrix(({"instance": "127.0.0.1:9100"}, [[NOW, True]]))),
    "triple point": Reply(200, _matrix(({"instance": "127.0.0.1:9100"}, [[NOW, "1", "2"]]))),
    "string ts": Reply(200, _matrix(({"instance": "127.0.0.1:9100"}, [["now", "1"]]))),
    "deep nesting": Reply(200, "[" * 100_000 + "]" * 100_000),
}


@pytest.mark.parametrize("reply", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_answers_become_error_batch(fake_prometheus: FakePrometheus, reply: Reply) -> None:
    fake_prometheus.script(reply)
    source = _source(fake_prometheus.url)
    try:
        batch = source.fetch(NOW)
    finally:
        source.close()
    _assert_error_batch(batch)
    assert batch.fetched_at == NOW
    assert len(fake_prometheus.requests) == 1  # no retries: a failed tick is just "no data"


def _vector(result: object, kind: str = "vector") -> str:
    return json.dumps({"status": "success", "data": {"resultType": kind, "result": result}})


WEB1 = {"instance": "127.0.0.1:9100"}
HOSTILE_INSTANT = HOSTILE | {
    "value not a pair": Reply(200, _vector([{"metric": WEB1, "value": "50"}])),
    "value text": Reply(200, _vector([{"metric": WEB1, "value": [NOW + 1, "abc"]}])),
    "value bool": Reply(200, _vector([{"metric": WEB1, "value": [NOW + 1, True]}])),
    "value missing": Reply(200, _vector([{"metric": WEB1}])),
    "values, not value": Reply(200, _vector([{"metric": WEB1, "values": [[NOW + 1, "1"]]}])),
    "scalar": Reply(200, _vector([NOW + 1, "1"], kind="scalar")),
    "metric not object": Reply(200, _vector([{"metric": "web1", "value": [NOW + 1, "1"]}])),
}


@pytest.mark.parametrize("reply", HOSTILE_INSTANT.values(), ids=HOSTILE_INSTANT.keys())
def test_hostile_answers_to_the_newest_value_become_error_batch(
    fake_prometheus: FakePrometheus, reply: Reply
) -> None:
    good = Reply(200, _matrix((WEB1, [[NOW - 1, "10"], [NOW, "20"]])))
    fake_prometheus.script(good, reply, good)
    source = _source(fake_prometheus.url)
    try:
        assert [s.value for s in source.fetch(NOW).windows["web1"]] == [10.0, 20.0]
        batch = source.fetch(NOW + 1)  # a step later: the newest value alone
        after = source.fetch(NOW + 2)
    finally:
        source.close()
    _assert_error_batch(batch)
    # Nothing held survives a bad answer: the next tick asks for whole windows again.
    paths = [urlsplit(path).path for path in fake_prometheus.requests]
    assert paths == ["/api/v1/query_range", "/api/v1/query", "/api/v1/query_range"]
    assert after.error is None


def test_a_newest_value_stamped_elsewhere_is_not_taken(fake_prometheus: FakePrometheus) -> None:
    """A value claiming another time than the one asked is not put in the window."""
    good = Reply(200, _matrix((WEB1, [[NOW, "20"]])))
    elsewhere = [{"metric": WEB1, "value": [t, "99"]} for t in (NOW + 10**6, NOW - 5)]
    fake_prometheus.script(good, *(Reply(200, _vector([point])) for point in elsewhere))
    source = _source(fake_prometheus.url)
    try:
        windows = [source.fetch(NOW + n).windows["web1"] for n in range(3)]
    finally:
        source.close()
    assert windows == [windows[0]] * 3 and [s.value for s in windows[0]] == [20.0]


def test_series_mapping_merge_and_filtering(fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.script(
        Reply(
            200,
            _matrix(
                # Two series for web1 (e.g. two jobs): the max per timestamp wins.
                ({"instance": "127.0.0.1:9100"}, [[NOW - 1, "10"], [NOW, "50"]]),
                ({"instance": "127.0.0.1:9200"}, [[NOW, "70"], [NOW - 1, "5"], [NOW - 2, "NaN"]]),
                ({"instance": "[::1]:9100"}, [[NOW - 1, "+Inf"], [NOW, "33.5"], [NOW + 60, "1"]]),
                # An idle counter's rate a hair above 100 % reads as 0 % busy, not -0.3 %.
                ({"instance": "127.0.0.2:9100"}, [[NOW - 1, "-0.3"]]),
                ({"instance": "db9:9100"}, [[NOW, "1"]]),
                ({"job": "node"}, [[NOW, "1"]]),
            ),
        )
    )
    aliases = {**ALIASES, "::1": "web2"}
    source = _source(fake_prometheus.url, series=SeriesMap.of_labels(aliases))
    try:
        batch = source.fetch(NOW)
    finally:
        source.close()
    assert batch.error is None
    assert [(s.ts, s.value) for s in batch.windows["web1"]] == [(NOW - 1, 10.0), (NOW, 70.0)]
    assert [(s.ts, s.value) for s in batch.windows["web2"]] == [(NOW - 1, 0.0), (NOW, 33.5)]
    assert batch.unmatched == ("db9:9100", '{job="node"}')
    assert all(math.isfinite(s.value) for w in batch.windows.values() for s in w)
    (path,) = fake_prometheus.requests
    assert path.startswith("/api/v1/query_range?")
    # Exact start/end, not whole seconds: the newest half second matters.
    assert f"start={NOW - 15.0:.3f}" in path
    assert f"end={NOW:.3f}" in path


def test_timeout_is_bounded(fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.script(Reply(200, _matrix(), delay=0.8))
    source = _source(fake_prometheus.url, timeout=0.2)
    started = time.monotonic()
    try:
        batch = source.fetch(NOW)
    finally:
        source.close()
    assert time.monotonic() - started < 0.7
    _assert_error_batch(batch)
    assert batch.error == "no answer within 0.2s"


@pytest.mark.parametrize("drip_headers", [False, True], ids=["body", "headers"])
def test_dribbled_answer_is_cut_at_the_deadline(
    fake_prometheus: FakePrometheus, drip_headers: bool
) -> None:
    # One byte every 0.2 s: each socket read is quick, the answer would take seconds.
    fake_prometheus.script(Reply(200, _matrix(), drip=0.2, drip_headers=drip_headers))
    source = _source(fake_prometheus.url, timeout=1.0)
    started = time.monotonic()
    try:
        batch = source.fetch(NOW)
    finally:
        source.close()
    assert time.monotonic() - started < 1.5
    _assert_error_batch(batch)
    assert batch.error == "no answer within 1s"
    # The socket is closed, not left to a reader in the background: the server's next
    # bytes find nobody.
    assert fake_prometheus.hung_up.wait(2.0)
    assert len(fake_prometheus.requests) == 1


OVERSIZED = {
    "declared body": (1024, Reply(200, _matrix(({"instance": "x"}, [[NOW, "1"]] * 300)))),
    "headers": (1024, Reply(200, _matrix(), headers=(("X-Padding", "p" * 2000),))),
    "gzip bomb": (
        64 * 1024,
        Reply(200, gzip.compress(b" " * (1 << 20)), headers=(("Content-Encoding", "gzip"),)),
    ),
}


@pytest.mark.parametrize(("limit", "reply"), OVERSIZED.values(), ids=OVERSIZED.keys())
def test_answer_over_the_size_limit_is_refused(
    fake_prometheus: FakePrometheus, limit: int, reply: Reply
) -> None:
    fake_prometheus.script(
        reply, Reply(200, _matrix(({"instance": "127.0.0.1:9100"}, [[NOW, "7"]])))
    )
    source = _source(fake_prometheus.url, max_answer=limit)
    try:
        refused, small = source.fetch(NOW), source.fetch(NOW)
    finally:
        source.close()
    _assert_error_batch(refused)
    expected = "1 KiB" if limit == 1024 else "64 KiB"
    assert refused.error == f"answer larger than the {expected} limit"
    # The limit refuses only what exceeds it: an answer under it is read as before.
    assert small.error is None
    assert [s.value for s in small.windows["web1"]] == [7.0]


def test_connection_refused_is_fast_and_named() -> None:
    source = _source(f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    try:
        batch = source.fetch(NOW)
    finally:
        source.close()
    assert time.monotonic() - started < 1.0
    _assert_error_batch(batch)
    assert batch.error is not None
    assert batch.error.startswith("connection failed")
    assert "refused" in batch.error.lower()


def test_outage_logged_once_and_recovery_once(
    fake_prometheus: FakePrometheus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="autosre.metrics")
    fake_prometheus.script(Reply(503), Reply(200, "nope"), Reply(500), Reply(200, _matrix()))
    # Credentials in the URL must not reach the logs.
    url = fake_prometheus.url.replace("http://", "http://admin:s3cret@")
    source = _source(url)
    try:
        batches = [source.fetch(NOW + i) for i in range(5)]
    finally:
        source.close()
    assert [b.error is None for b in batches] == [False, False, False, True, True]
    assert "invalid JSON" in (batches[1].error or "")
    records = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in records] == [logging.WARNING, logging.INFO]
    assert "HTTP Status Code 503" in records[0][1]
    assert "after 3.0s of outage" in records[1][1]
    assert not any("s3cret" in message for _, message in records)
    assert len(fake_prometheus.requests) == 5


# --- LocalSource ----------------------------------------------------------------


def test_local_source_primes_trims_and_reports_others() -> None:
    readings = iter([0.0, 10.0, 20.0, float("nan"), 40.0, 50.0])
    source = LocalSource(
        host="web1",
        lookback=2.0,
        cpu_percent=lambda: next(readings),
        other_hosts=("web2", "web1", "web3"),
    )

    first = source.fetch(100.0)
    assert dict(first.windows) == {"web1": (), "web2": (), "web3": ()}
    assert first.error is None

    def values(now: float) -> list[tuple[float, float]]:
        return [(s.ts, s.value) for s in source.fetch(now).windows["web1"]]

    assert values(101.0) == [(101.0, 10.0)]
    assert values(102.0) == [(101.0, 10.0), (102.0, 20.0)]
    assert values(103.0) == [(101.0, 10.0), (102.0, 20.0)]  # NaN reading skipped
    assert values(104.0) == [(102.0, 20.0), (104.0, 40.0)]  # 101 fell out of [102, 104]
    assert values(110.0) == [(110.0, 50.0)]


def test_local_source_default_uses_psutil() -> None:
    source = LocalSource(host="here", lookback=5.0)
    assert source.fetch(time.time()).windows["here"] == ()
    (sample,) = source.fetch(time.time()).windows["here"]
    assert 0.0 <= sample.value <= 100.0


def test_local_source_primed_has_data_on_the_first_fetch() -> None:
    readings = iter([0.0, 33.0])
    source = LocalSource(host="web1", lookback=5.0, cpu_percent=lambda: next(readings))
    source.prime()
    assert [s.value for s in source.fetch(100.0).windows["web1"]] == [33.0]


def test_ports_tell_hosts_on_one_address_apart_and_strays_are_told_once(
    fake_prometheus: FakePrometheus, caplog: pytest.LogCaptureFixture
) -> None:
    # The lab's shape: every host on 127.0.0.1, one exporter port each.
    series = SeriesMap.build(
        [
            HostKeys("web1", "127.0.0.1", "127.0.0.1:9101"),
            HostKeys("web2", "127.0.0.1", "127.0.0.1:9102"),
        ]
    )
    answer = _matrix(
        ({"instance": "127.0.0.1:9101"}, [[NOW, "5"]]),
        ({"instance": "127.0.0.1:9102"}, [[NOW, "95"]]),
        ({"instance": "127.0.0.1:9999"}, [[NOW, "50"]]),
    )
    fake_prometheus.script(Reply(200, answer), Reply(200, answer))
    source = _source(fake_prometheus.url, series=series)
    caplog.set_level(logging.WARNING, logger="autosre.metrics")
    try:
        first, second = source.fetch(NOW), source.fetch(NOW + 1)
    finally:
        source.close()
    # The second fetch asks for the newest value alone, which it appends.
    for batch, points in ((first, 1), (second, 2)):
        assert [s.value for s in batch.windows["web1"]] == [5.0] * points
        assert [s.value for s in batch.windows["web2"]] == [95.0] * points
        assert batch.unmatched == ("127.0.0.1:9999",)
    told = [r.getMessage() for r in caplog.records if "match no inventory host" in r.getMessage()]
    assert len(told) == 1
    assert "'127.0.0.1:9999'" in told[0]
