"""Big inventories and run waves (issue 12, "What else breaks at this size"), before and
after side by side, on INI inventories as a new user writes them (one line per host,
``web00001 ansible_host=10.0.0.1``).

1. Start: ``ansible-inventory`` on 1, 1,000 and 10,000 hosts, split into ansible's own
   start (1 host), parsing (``--list --export``: no per-host vars merge) and the full
   ``--list`` the engine runs; then ``load_inventory`` without a cache (before), on a cache
   miss (first start, writes the cache) and on a hit (every later start).
2. Runs against the 10,000-host inventory, ``--limit`` of 1 and of 200 hosts: time to the
   first event and to the end, with the full inventory (before) and with the run's own
   minimal inventory (after); the export a minimal inventory needs is taken once per
   inventory content, and reported apart.
3. A wave of 200 hosts saturated in one tick with ``max_concurrent: 5``: hosts acted on.

Trials alternate before/after; medians are printed, with min-max. Bounded by --budget:
what did not fit is reported as skipped. Writes bench/results/waves.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from engine.execute.results import read_events
from engine.execute.run_inventory import RunInventories
from engine.execute.runner import AnsibleRunnerExecutor
from engine.inventory import load_inventory
from engine.settings import child_environment
from engine.types import RunRequest
from tests.engine.test_inventory_wave import decide_wave
from tests.integration.harness import ROOT

SIZES = (1, 1_000, 10_000)
WAVES = (1, 200)
PLAYBOOK = (
    "- name: Probe\n  hosts: all\n  gather_facts: false\n  tasks:\n"
    "    - name: Say where\n      ansible.builtin.debug:\n        msg: '{{ ansible_host }}'\n"
)
Timings = dict[str, list[float]]


def write_inventory(path: Path, hosts: int) -> Path:
    """An INI inventory of ``hosts`` lines like ``web00001 ansible_host=10.0.0.1``."""
    lines = (
        f"web{i:05d} ansible_host=10.{i >> 16}.{(i >> 8) & 255}.{i & 255}\n" for i in range(hosts)
    )
    path.write_text("".join(lines))
    return path


def ansible_inventory(path: Path, *flags: str) -> float:
    """Seconds one ``ansible-inventory --list`` takes (the environment the engine gives it)."""
    tool = Path(sys.executable).parent / "ansible-inventory"
    started = time.perf_counter()
    subprocess.run(
        [str(tool), "--list", *flags, "-i", str(path)],
        env=child_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def start_trial(work: Path, inventories: dict[int, Path], n: int, seen: Timings) -> None:
    """One round of every start measurement, every size."""
    start = ansible_inventory(inventories[1])
    seen.setdefault("ansible-inventory of 1 host (ansible's own start)", []).append(start)
    for size, path in inventories.items():
        if size == 1:
            continue
        seen.setdefault(f"{size}: --list --export", []).append(ansible_inventory(path, "--export"))
        seen.setdefault(f"{size}: --list", []).append(ansible_inventory(path))
        before = timed(partial(load_inventory, path))
        seen.setdefault(f"{size}: load_inventory, no cache (before)", []).append(before)
        cache = work / f"cache-{size}-{n}"
        miss = timed(partial(load_inventory, path, cache_dir=cache))
        seen.setdefault(f"{size}: load_inventory, cache miss (first start)", []).append(miss)
        hit = timed(partial(load_inventory, path, cache_dir=cache))
        seen.setdefault(f"{size}: load_inventory, cache hit (after)", []).append(hit)


def first_event_seconds(artifact_dir: Path, launched: float) -> float:
    """Seconds from launch to the run's first event."""
    created = [e["created"] for e in read_events(artifact_dir) if e.get("created")]
    stamps = [datetime.fromisoformat(str(c)).replace(tzinfo=UTC) for c in created]
    return min(stamps).timestamp() - launched


def run_trial(
    executors: dict[str, AnsibleRunnerExecutor], playbook: Path, n: int, seen: Timings
) -> None:
    """One round of runs: each wave size, full and minimal inventory, order alternating."""
    modes = list(executors) if n % 2 else list(reversed(executors))
    for wave in WAVES:
        hosts = tuple(f"web{i:05d}" for i in range(0, 10_000, 10_000 // wave))[:wave]
        for mode in modes:
            launched = time.time()
            result = executors[mode].run(
                RunRequest("probe", str(playbook), hosts), ident=f"w{wave}-{mode[:4]}-{n}"
            )
            if result.status != "successful":
                raise SystemExit(
                    f"bench: run {mode} of {wave} hosts: {result.status} {result.error}"
                )
            first = first_event_seconds(Path(result.artifact_dir), launched)
            seen.setdefault(f"{wave} hosts, {mode}: first event", []).append(first)
            seen.setdefault(f"{wave} hosts, {mode}: end", []).append(result.ended_at - launched)


def cell(values: list[float]) -> str:
    if not values:
        return "skipped"
    return f"{statistics.median(values):.2f} s ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    """Run the trials within the budget and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds, roughly")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "waves.json")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.budget
    starts: Timings = {}
    runs: Timings = {}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="autosre-bench-waves-") as tmp:
        work = Path(tmp)
        inventories = {size: write_inventory(work / f"hosts-{size}", size) for size in SIZES}
        playbook = work / "books" / "probe.yml"
        playbook.parent.mkdir()
        playbook.write_text(PLAYBOOK)
        big = inventories[10_000]
        minimal = RunInventories(big)
        (work / "warm").mkdir(mode=0o700)
        export = timed(lambda: minimal.write(playbook, ("web00000",), work / "warm"))
        executors = {
            mode: AnsibleRunnerExecutor(
                runs_dir=work / "runs",
                inventory_path=big,
                scratch_dir=work / "scratch",
                run_inventories=RunInventories(big, min_hosts=10**9) if mode == "full" else minimal,
            )
            for mode in ("full", "minimal")
        }
        for n in range(1, args.trials + 1):
            if time.monotonic() > deadline:
                break
            start_trial(work, inventories, n, starts)
            print(f"trial {n}: starts done", file=sys.stderr)
            if time.monotonic() > deadline:
                break
            run_trial(executors, playbook, n, runs)
            print(f"trial {n}: runs done", file=sys.stderr)
        wave = decide_wave(work / "wave") if time.monotonic() < deadline else None
    load = os.getloadavg()[0]
    print(
        f"\nmachine: {platform.node()}, {os.cpu_count()} CPUs, load {load:.1f};"
        f" trials: {len(next(iter(starts.values()), []))}"
    )
    print("\n| start, INI inventory | median (min-max) |\n|---|---|")
    for name, values in starts.items():
        print(f"| {name} | {cell(values)} |")
    print(f"\nexport for minimal inventories, once per inventory content: {export:.2f} s")
    print("\n| run against 10,000 hosts | median (min-max) |\n|---|---|")
    for name, values in runs.items():
        print(f"| {name} | {cell(values)} |")
    if wave is not None:
        acted = len(wave.acted_on)
        print(
            f"\nwave: {wave.hosts} hosts saturated in one tick, max_concurrent"
            f" {wave.max_concurrent}: {acted} acted on, {wave.waiting} waiting;"
            f" tick {wave.tick_seconds:.1f} s"
        )
        results["wave"] = {"hosts": wave.hosts, "acted_on": acted, "waiting": wave.waiting}
    results |= {"starts": starts, "runs": runs, "export_seconds": export, "load": load}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    if wave is not None and len(wave.acted_on) > wave.max_concurrent:
        print("bench: max_concurrent did not hold", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
