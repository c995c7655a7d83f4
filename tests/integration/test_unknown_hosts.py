"""A host the inventory names but Prometheus has no series for is UNKNOWN and never touched:
the `autosre` CLI's engine against a real Prometheus scraping a real node_exporter.

Unlike the chaos scenarios this does not depend on how busy the machine is, so it runs
beside the other tests: web1's sustain window is longer than the test, so however high
this host's CPU goes, nothing is acted on (a staged preflight may start, and is discarded)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Store, engine_process, lab_env, wait_for, wait_ticks

pytestmark = pytest.mark.integration
WEB1_NORMAL = re.compile(r"web1 [A-Z_]+ -> NORMAL")


def test_host_without_series_is_never_touched(
    tmp_path: Path, node_exporter: Any, prometheus_factory: Callable[..., Any]
) -> None:
    prometheus = prometheus_factory([node_exporter.address], scrape_interval="1s")
    prometheus.wait_for_series('node_cpu_seconds_total{mode="idle"}', timeout=30)
    env = lab_env(tmp_path, prometheus.url, sustain="10m")
    store = Store(tmp_path / "data")
    log = tmp_path / "engine.log"
    with engine_process(env, log):
        wait_for("web2 UNKNOWN", lambda: "web2 START -> UNKNOWN" in log.read_text() or None, 30)
        # web1 has data (on a busy machine it may first be UNKNOWN, its samples late).
        wait_for("web1 NORMAL", lambda: WEB1_NORMAL.search(log.read_text()), 30)
        wait_ticks(log, 3)  # three more chances to touch web2
        assert "web2 UNKNOWN ->" not in log.read_text(), "web2 left UNKNOWN without series"
    assert store.incidents("web2") == []
    # web1 may rise on a busy machine: its staged preflight is allowed, never a release.
    runs = store.runs()
    assert all(run["hosts"] == ["web1"] for run in runs), runs
    assert {run["status"] for run in runs} <= {"staged", "discarded"}, runs
    store.close()
