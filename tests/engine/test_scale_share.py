"""A replica's share: a source restricted to its hosts, an evaluator updating only those.

With several replicas each one acts on its own hosts only; these two calls let it pay only
for them: ``PrometheusSource.restrict`` (other replicas' series are skipped unread, never
told as strays) and ``Evaluator.update(..., hosts=...)`` (the others keep their last state).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from engine.evaluate import Evaluator, Thresholds
from engine.metrics.prometheus import PrometheusSource
from engine.metrics.series_map import SeriesMap
from engine.types import HostStatus, MetricsBatch, Sample
from tests.fixtures.prometheus import FakePrometheus, Reply

NOW = 1_700_000_000.0
LABELS = {"10.0.0.1": "web1", "10.0.0.2": "web2", "10.0.0.3": "web3"}


def _answer(*labels: str) -> Reply:
    result = [
        {"metric": {"instance": f"{label}:9100"}, "values": [[NOW - 15, "20"], [NOW, "95"]]}
        for label in labels
    ]
    body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
    return Reply(200, json.dumps(body))


def _start(path: str) -> float:
    return float(parse_qs(urlsplit(path).query)["start"][0])


def test_a_restricted_source_maps_and_keeps_only_its_hosts(fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.script(_answer("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.9.9.9"))
    source = PrometheusSource(
        url=fake_prometheus.url,
        query="up",
        series=SeriesMap.of_labels(LABELS),
        lookback=300.0,
        step=15.0,
        timeout=2.0,
    )
    try:
        whole = source.fetch(NOW)
        source.restrict(frozenset({"web1", "web3", "not-in-inventory"}))
        mine = source.fetch(NOW + 10)
        source.restrict(frozenset({"web1", "web3"}))  # the same share: nothing changes
        again = source.fetch(NOW + 20)
        source.restrict(None)
        every = source.fetch(NOW + 30)
    finally:
        source.close()
    assert set(whole.windows) == {"web1", "web2", "web3"}
    # Only its hosts; another replica's host is no stray; a label of no host still is.
    assert set(mine.windows) == {"web1", "web3"}
    assert [s.value for s in mine.windows["web1"]] == [20.0, 95.0]
    assert mine.unmatched == whole.unmatched == ("10.9.9.9:9100",)
    assert set(again.windows) == {"web1", "web3"}
    assert set(every.windows) == {"web1", "web2", "web3"}
    # A new share is asked in full (nothing of its new hosts is held); the same share and
    # the hosts held, ten seconds later, only for the newest value (an instant query).
    paths = [urlsplit(path).path for path in fake_prometheus.requests]
    assert paths == ["/api/v1/query_range"] * 2 + ["/api/v1/query", "/api/v1/query_range"]
    ats = (NOW, NOW + 10, NOW + 30)
    ranges = [p for p in fake_prometheus.requests if p.startswith("/api/v1/query_range")]
    assert [_start(path) - at for path, at in zip(ranges, ats, strict=True)] == [-300.0] * 3


def test_a_restricted_source_fails_for_its_hosts_only(fake_prometheus: FakePrometheus) -> None:
    fake_prometheus.script(Reply(500, "down"))
    source = PrometheusSource(
        url=fake_prometheus.url,
        query="up",
        series=SeriesMap.of_labels(LABELS),
        lookback=300.0,
        step=15.0,
        timeout=2.0,
    )
    source.restrict(frozenset({"web2"}))
    try:
        batch = source.fetch(NOW)
    finally:
        source.close()
    assert batch.error is not None
    assert dict(batch.windows) == {"web2": ()}


def test_the_evaluator_updates_only_the_hosts_asked() -> None:
    limits = Thresholds(trigger=85, clear=60, sustain=10, step=15, staleness=60)
    evaluator = Evaluator(limits, ["web1", "web2", "web3"])
    normal = {h: (Sample(h, NOW - 15, 20.0), Sample(h, NOW, 30.0)) for h in LABELS.values()}
    first = evaluator.update(MetricsBatch(NOW, normal), NOW)
    assert {s.status for s in first.states.values()} == {HostStatus.NORMAL}
    # Every host is high now, but this replica evaluates web1 and web3 only.
    high = {h: (Sample(h, NOW, 95.0), Sample(h, NOW + 15, 96.0)) for h in LABELS.values()}
    later = evaluator.update(MetricsBatch(NOW + 15, high), NOW + 15, hosts={"web1", "web3", "x"})
    assert {state.host for _, state in later.changes} == {"web1", "web3"}
    assert later.states["web1"].status is HostStatus.HIGH_CPU
    assert later.states["web2"] is first.states["web2"]  # untouched
    assert evaluator.states["web2"].status is HostStatus.NORMAL
    assert "x" not in later.states  # not an inventory host of this evaluator
    # None: every host again.
    last = evaluator.update(MetricsBatch(NOW + 30, high), NOW + 30, hosts=None)
    assert last.states["web2"].status is HostStatus.HIGH_CPU


def test_a_host_back_from_another_replica_is_evaluated_afresh() -> None:
    limits = Thresholds(trigger=85, clear=60, sustain=10, step=15, staleness=60)
    evaluator = Evaluator(limits, ["web1", "web2"])
    high = {h: (Sample(h, NOW, 95.0), Sample(h, NOW + 15, 96.0)) for h in ("web1", "web2")}
    assert evaluator.update(MetricsBatch(NOW + 15, high), NOW + 15).states["web2"].status == (
        HostStatus.HIGH_CPU
    )
    evaluator.update(MetricsBatch(NOW + 30, high), NOW + 30, hosts={"web1"})  # web2 away
    # Back, at 70 %: between clear and trigger. Held over from long ago, hysteresis would
    # keep it HIGH_CPU; evaluated afresh, it is normal (70 is under the trigger).
    mid = {h: (Sample(h, NOW + 600, 70.0),) for h in ("web1", "web2")}
    back = evaluator.update(MetricsBatch(NOW + 600, mid), NOW + 600)
    assert back.states["web2"].status is HostStatus.NORMAL
    assert back.states["web1"].status is HostStatus.HIGH_CPU  # watched all along: hysteresis
