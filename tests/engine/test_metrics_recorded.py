"""The shipped recording rules (examples/prometheus/autosre-recording-rules.yml) evaluated by a
real Prometheus that scrapes a real node_exporter: a source reading a kind's record sees the
same host and about the same value as one asking the kind's query, as docs/prometheus.md
says. (The exporter here has CPU and memory; disk and probes are checked by promtool's unit
tests, tests/deploy/test_recording_rules.py.)"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from engine.metrics.prometheus import PrometheusSource
from engine.metrics.series_map import SeriesMap
from engine.policy.load import load_policy
from tests.fixtures.prometheus import NodeExporter, PrometheusServer

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "examples" / "prometheus" / "autosre-recording-rules.yml"
POLICY = load_policy(ROOT / "policies" / "default.yaml", playbook_dir=ROOT / "playbooks")
# How far a record (computed at the group's last evaluation, a second ago here) may be from
# the query asked now: memory moves slowly; CPU busy over a minute moves a little more.
TOLERANCE = {"memory_pressure": 2.0, "high_cpu": 15.0}


def _with_rules(server: PrometheusServer, work: Path) -> None:
    """Load the shipped rules, evaluated every second (their expressions unchanged)."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
    (work / "rules.yml").write_text(yaml.safe_dump(rules))
    config_path = server.workdir / "prometheus.yml"
    config = json.loads(config_path.read_text())
    config["rule_files"] = [str(work / "rules.yml")]
    config_path.write_text(json.dumps(config))
    server.stop()
    server.start()


def _source(url: str, query: str, kind: str, label: str) -> PrometheusSource:
    rule = POLICY.signal(kind)
    return PrometheusSource(
        url=url,
        query=query,
        series=SeriesMap.of_labels({label: "web1"}),
        lookback=rule.lookback,
        step=rule.step,
        stale_after=rule.stale_after,
        timeout=5.0,
    )


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["memory_pressure", "high_cpu"])
def test_a_record_reads_as_its_query(
    kind: str,
    node_exporter: NodeExporter,
    prometheus_factory: Callable[..., PrometheusServer],
    tmp_path: Path,
) -> None:
    server = prometheus_factory([node_exporter.address])
    _with_rules(server, tmp_path)
    record = f"instance:autosre_{kind}:percent"
    server.wait_for_series(record, timeout=90.0)  # the rate needs two scrapes, then a rule run
    by_query = _source(server.url, POLICY.signal(kind).promql, kind, node_exporter.address)
    by_record = _source(server.url, record, kind, node_exporter.address)
    try:
        for _ in range(3):  # the first fetch asks in full, the next ones the newest value
            now = time.time()
            asked, recorded = by_query.fetch(now), by_record.fetch(now)
            assert asked.error is None and recorded.error is None
            assert asked.unmatched == () and recorded.unmatched == ()
            newest, read = asked.windows["web1"][-1], recorded.windows["web1"][-1]
            assert now - read.ts <= POLICY.signal(kind).staleness  # fresh: not UNKNOWN
            assert 0.0 <= read.value <= 100.0
            assert abs(read.value - newest.value) <= TOLERANCE[kind], (read, newest)
            time.sleep(1.0)
    finally:
        by_query.close()
        by_record.close()
