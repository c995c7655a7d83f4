"""What Prometheus alone takes for a fleet's queries, beside the shapes the engine could ask.

For the shipped policy at one fleet size, the median of 3 of each (wall ms, answer bytes):

- ``range``: the high_cpu range query exactly as the engine sends it (a window per host);
- ``instant``: the windowing done by Prometheus instead, an instant query of the sustain
  window's minimum (``min_over_time`` over a subquery), one value per host;
- ``stored``: a range query over a stored series (the raw idle counter), which is what a
  shipped recording rule would leave the engine to read: no rate() at query time;
- ``kinds_serial`` and ``kinds_parallel``: every watched kind's range query, one after
  another (as a tick asks today) and all at once;
- ``kinds_instant``: every watched kind's query at one instant (the newest value alone),
  one after another: what a tick would ask if the engine built windows itself;
- ``floor``: the lightest question that still names every host, an instant query of one
  raw stored gauge (no function, one point per host): what any way of reading the whole
  fleet from this Prometheus costs at least, once per kind.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from engine.policy.load import load_policy
from engine.policy.schema import SignalRule

TRIES = 3


def _range(rule: SignalRule, now: float, query: str | None = None) -> dict[str, str]:
    return {
        "query": query or rule.promql,
        "start": f"{now - rule.lookback:.3f}",
        "end": f"{now:.3f}",
        "step": f"{rule.step:g}",
    }


def _ask(url: str, path: str, params: dict[str, str]) -> int:
    answer = requests.get(f"{url}/api/v1/{path}", params=params, timeout=60)
    answer.raise_for_status()
    return len(answer.content)


def _timed(run: Any) -> dict[str, float]:
    spent, size = [], 0
    for _ in range(TRIES):
        started = time.perf_counter()
        size = run()
        spent.append((time.perf_counter() - started) * 1000)
    return {"ms": statistics.median(spent), "bytes": size}


def query_costs(url: str, policy: Path, playbooks: Path) -> dict[str, Any]:
    """The costs above, measured now against the Prometheus at ``url``."""
    rules = load_policy(policy, playbook_dir=playbooks).signals
    cpu = rules["high_cpu"]
    now = time.time()
    window = f"{cpu.sustain:g}s:{cpu.step:g}s"
    instant = {"query": f"min_over_time(({cpu.promql})[{window}])", "time": f"{now:.3f}"}
    stored = _range(cpu, now, 'node_cpu_seconds_total{mode="idle"}')
    floor = {"query": "node_memory_MemTotal_bytes", "time": f"{now:.3f}"}

    def kinds_serial() -> int:
        return sum(_ask(url, "query_range", _range(rule, now)) for rule in rules.values())

    def kinds_instant() -> int:
        return sum(
            _ask(url, "query", {"query": rule.promql, "time": f"{now:.3f}"})
            for rule in rules.values()
        )

    def kinds_parallel() -> int:
        with ThreadPoolExecutor(len(rules)) as pool:
            asks = [pool.submit(_ask, url, "query_range", _range(r, now)) for r in rules.values()]
            return sum(ask.result() for ask in asks)

    return {
        "range": _timed(lambda: _ask(url, "query_range", _range(cpu, now))),
        "instant": _timed(lambda: _ask(url, "query", instant)),
        "stored": _timed(lambda: _ask(url, "query_range", stored)),
        "kinds_serial": _timed(kinds_serial),
        "kinds_parallel": _timed(kinds_parallel),
        "kinds_instant": _timed(kinds_instant),
        "floor": _timed(lambda: _ask(url, "query", floor)),
    }


def describe(size: int, costs: dict[str, Any]) -> str:
    """One line per fleet size for the bench's report."""

    def cell(name: str) -> str:
        return f"{costs[name]['ms']:.0f} ms ({costs[name]['bytes'] / 1e6:.1f} MB)"

    return (
        f"  {size:,} hosts: high_cpu range {cell('range')}; instant min_over_time"
        f" {cell('instant')}; stored series range {cell('stored')}; every kind one after"
        f" another {cell('kinds_serial')}, all at once {cell('kinds_parallel')}; every"
        f" kind's newest value alone (instant, one after another) {cell('kinds_instant')};"
        " the floor"
        f" (one raw gauge, instant) {cell('floor')}"
    )
