"""Incremental fetches against a real Prometheus, side by side with full ones.

Prometheus (the Debian binary) holds a backfilled history of a few hosts (promtool): runs
high and low, and holes longer than the query's range. Two sources read it, one asking only
for the newest value or steps, one asking in full every tick; at each tick the first's
windows are compared with the second's. Then the server restarts with its data gone: the
incremental source keeps what it holds while it asks for the newest value, notices when it
next asks for the newest steps, and then answers what a full query answers.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from engine.evaluate import Thresholds, evaluate_host
from engine.metrics.prometheus import PrometheusSource
from engine.metrics.series_map import SeriesMap
from engine.types import HostStatus, Sample
from tests.fixtures.prometheus import PrometheusServer, free_port

PROMTOOL = Path("/usr/bin/promtool")
HOSTS = 8
STEP, LOOKBACK, STALE = 15.0, 345.0, 60.0
QUERY = "max by (instance) (avg_over_time(load[30s]))"
LIMITS = Thresholds(trigger=85, clear=60, sustain=300, step=STEP, staleness=STALE)
LABELS = {f"10.0.0.{i + 1}": f"h{i}" for i in range(HOSTS)}


def _history(path: Path, start: float, end: float) -> None:
    """Every 5 s per host: runs of 20 s to 7 min, high, low, or missing."""
    rng = random.Random(12)
    lines: list[str] = []
    for index in range(HOSTS):
        at = start
        while at < end:
            length = rng.choice([20, 60, 200, 420])
            kind = rng.random()
            value = None if kind < 0.15 else (rng.uniform(86, 100) if kind < 0.55 else 30.0)
            for ts in range(int(at), int(min(at + length, end)), 5):
                if value is not None:
                    lines.append(f'load{{instance="10.0.0.{index + 1}:9100"}} {value:.2f} {ts}')
            at += length
    # OpenMetrics wants each series' samples together, in time order.
    lines.sort(key=lambda line: (line.split(" ")[0], int(line.rsplit(" ", 1)[1])))
    path.write_text("\n".join(lines) + "\n# EOF\n")


def _fill(work: Path, start: float | None, end: float) -> None:
    """A fresh TSDB, with the history from ``start`` to ``end`` (None: empty)."""
    tsdb = work / "tsdb"
    shutil.rmtree(tsdb, ignore_errors=True)
    tsdb.mkdir()
    if start is not None:
        history = work / "history.om"
        _history(history, start, end)
        command = [str(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics"]
        subprocess.run([*command, str(history), str(tsdb)], check=True, capture_output=True)
    config = {"global": {"scrape_interval": "15s"}, "scrape_configs": []}
    (work / "prometheus.yml").write_text(json.dumps(config))


@pytest.fixture
def history(tmp_path: Path) -> Iterator[tuple[PrometheusServer, float]]:
    if not PROMTOOL.exists():
        pytest.skip("promtool is missing (apt-get install prometheus)")
    end = float(int(time.time()) - 600)
    _fill(tmp_path, end - 3000, end)
    server = PrometheusServer(workdir=tmp_path, port=free_port())
    server.start()
    try:
        # Blocks are loaded at start: wait until a query sees them.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not server.query("count(load)"):
            time.sleep(0.2)
        yield server, end
    finally:
        server.stop()


def _source(url: str, *, incremental: bool) -> PrometheusSource:
    return PrometheusSource(
        url=url,
        query=QUERY,
        series=SeriesMap.of_labels(LABELS),
        lookback=LOOKBACK,
        step=STEP,
        stale_after=STALE,
        timeout=5.0,
        incremental=incremental,
    )


def _decision(window: tuple[Sample, ...], now: float) -> tuple[object, ...]:
    state = evaluate_host("h", window, None, LIMITS, now)
    known = state.status is not HostStatus.UNKNOWN
    start = state.since if state.status is HostStatus.HIGH_CPU else state.rising_since
    return state.status, state.value, state.sample_ts if known else None, start


def test_incremental_windows_match_full_ones(
    history: tuple[PrometheusServer, float], tmp_path: Path
) -> None:
    server, end = history
    part, full = _source(server.url, incremental=True), _source(server.url, incremental=False)
    seen: dict[str, dict[float, float]] = {host: {} for host in LABELS.values()}
    asked = requests.Session()
    rng = random.Random(3)
    now = end - 2400 + 0.123
    merges: list[bool] = []  # per incremental fetch: merged (True) or asked in full again
    merge = part._held.merge

    def counted(*args: Any) -> Any:
        merged = merge(*args)
        merges.append(merged is not None)
        return merged

    part._held.merge = counted  # type: ignore[method-assign]
    newest_only = 0
    fetch_newest = part._fetch_newest

    def newest(now: float) -> Any:
        nonlocal newest_only
        newest_only += 1
        return fetch_newest(now)

    part._fetch_newest = newest  # type: ignore[method-assign]
    try:
        for _ in range(120):
            now += rng.choice([0.5, 4.0, 10.0, 10.0, 10.0, 10.0, 19.0, 35.0])
            got, want = part.fetch(now), full.fetch(now)
            assert got.error is None and want.error is None
            for host, window in want.windows.items():
                seen[host].update((s.ts, s.value) for s in window)
            for host, window in got.windows.items():
                stamps = [s.ts for s in window]
                assert stamps == sorted(set(stamps))
                # Each point is one a full query gave at its time.
                assert all(seen[host].get(s.ts) == s.value for s in window), host
                # The newest point (the value at now) is the full query's own.
                newest = [s for s in window if s.ts >= now - 0.001]
                assert newest == [s for s in want.windows[host] if s.ts >= now - 0.001]
                mine, theirs = _decision(window, now), _decision(want.windows[host], now)
                if mine[:2] != theirs[:2]:
                    # A run's start seen at a tick or on the grid (sustained in one, not yet
                    # in the other); or one is stale and the other not yet: their last
                    # samples before a hole are a tick's and a step's, less than a step apart.
                    starts = (mine[3], theirs[3])
                    last = [w[-1].ts for w in (window, want.windows[host]) if w]
                    assert (
                        None not in starts and abs(starts[0] - starts[1]) < STEP + 0.001
                    ) or any(abs(now - t - STALE) < STEP + 0.001 for t in last), (
                        host,
                        mine,
                        theirs,
                    )
                    continue
                for a, b in (mine[2:], theirs[2:]), (mine[3:], theirs[3:]):
                    # The newest sample, and a run's start: seen at ticks or on the grid.
                    if a[0] is not None or b[0] is not None:
                        assert a[0] is not None and b[0] is not None, (host, mine, theirs)
                        assert abs(a[0] - b[0]) < STEP + 0.001, (host, mine, theirs)
        assert merges.count(True) > 80
        assert newest_only > 40  # most ticks asked for the newest value alone
        assert sum(map(len, want.windows.values())) > 20  # data to compare, not holes only
        # It asked for a few steps a tick, not the whole window.
        sizes = [
            len(asked.get(f"{server.url}/api/v1/query_range", params=p, timeout=5).content)
            for p in (
                {"query": QUERY, "start": now - LOOKBACK, "end": now, "step": STEP},
                {"query": QUERY, "start": now - 75, "end": now, "step": STEP},
            )
        ]
        assert sizes[1] * 2 < sizes[0]

        # The server restarts with its data gone. The newest value alone adds nothing to what
        # is held (each a value it gave); the newest steps notice, and ask in full.
        server.stop()
        _fill(tmp_path, None, end)
        server.start()
        merges.clear()
        held = part.fetch(now + 0.5).windows
        assert all(
            w == tuple(s for s in got.windows[h] if s.ts >= now + 0.5 - LOOKBACK)
            for h, w in held.items()
        )
        after = part.fetch(now + 20)
        assert merges == [True, False]  # noticed: asked in full
        assert after.error is None
        assert after.windows == full.fetch(now + 20).windows == dict.fromkeys(LABELS.values(), ())
    finally:
        part.close()
        full.close()
        asked.close()
