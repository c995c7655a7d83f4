"""Remediating 1, 10 and 50 lab hosts that need the same playbook: one batched run (the
engine's way: one ansible-runner run, one fork per host) beside one run per host started
together, on the SSH lab (tests/lab: each host its own namespace, cgroup, nginx and sshd).

Per trial: the engine's executor runs `restart_nginx` (built by the whitelist from the
shipped default policy and the lab's inventory, as a new user writes them) on the first N
hosts; the time is launch -> every run ended with every host's nginx restarted. Sizes and
modes alternate; the median of the trials is reported, and N hosts / 1 host within each
mode. Beside the time, where the CPU went: the controller (ansible-playbook, its forks
and ssh: this process's children) and the hosts (their cgroups). Every lab host shares
this machine's cores with the controller, so the hosts' own work is serialised here as it
would not be on a real fleet.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.execute.runner import AnsibleRunnerExecutor
from engine.inventory import load_inventory
from engine.policy.load import load_policy
from engine.policy.whitelist import build_request
from engine.types import RunResult
from tests.integration.harness import ROOT
from tests.lab.exporter import cgroup_cpu_seconds
from tests.lab.lab import Lab

SIZES = (1, 10, 50)
MODES = ("batched", "one run per host")
POLICY = ROOT / "policies" / "default.yaml"


@dataclass(frozen=True)
class Trial:
    """One trial's wall time, CPU split and whether a run hit the action's timeout."""

    seconds: float
    controller_cpu: float
    hosts_cpu: float
    timed_out: bool


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _trial(lab: Lab, executor: AnsibleRunnerExecutor, size: int, mode: str, n: int) -> Trial:
    policy = load_policy(POLICY, playbook_dir=ROOT / "playbooks")
    inventory = load_inventory(lab.inventory_path)
    hosts = sorted(lab.hosts, key=lambda name: int(name.removeprefix("web")))[:size]
    before = {name: lab.hosts[name].nginx_pid() for name in hosts}
    groups = [lab.hosts[name].cgroup.exporter_paths() for name in lab.hosts]

    def hosts_cpu() -> float:
        return sum(cgroup_cpu_seconds(group) for group in groups)

    def run(names: list[str], ident: str) -> RunResult:
        request = build_request(
            policy, inventory, ROOT / "playbooks", action="restart_nginx", hosts=names
        )
        return executor.run(request, ident=ident)

    tag = mode.split(maxsplit=1)[0]
    cpu_before, host_cpu_before = _children_cpu(), hosts_cpu()
    started = time.monotonic()
    if mode == "batched":
        results = [run(hosts, f"b{n}-{size}-{tag}")]
    else:
        with ThreadPoolExecutor(max_workers=size) as pool:
            futures = [pool.submit(run, [h], f"b{n}-{size}-{tag}-{h}") for h in hosts]
            results = [future.result() for future in futures]
    elapsed = time.monotonic() - started
    timed_out = any(r.status == "timeout" for r in results)
    failed = [
        f"{r.ident} ({r.status}, rc {r.rc}: {r.error or ''} {dict(r.host_errors)})"
        for r in results
        if r.status not in ("successful", "timeout")
    ]
    unchanged = [h for h in hosts if lab.hosts[h].nginx_pid() in (None, before[h])]
    if failed or (unchanged and not timed_out):
        raise SystemExit(
            f"bench: {mode} on {size}: failed runs {failed}, not restarted {unchanged}"
        )
    return Trial(elapsed, _children_cpu() - cpu_before, hosts_cpu() - host_cpu_before, timed_out)


def _cell(trials: list[Trial], one: float) -> str:
    seconds = statistics.median(t.seconds for t in trials)
    late = sum(t.timed_out for t in trials)
    note = f" ({late} timed out)" if late else ""
    return f"{seconds:.1f} s{note} | {seconds / one:.1f}x"


def main(argv: list[str] | None = None) -> int:
    """Run the trials and print the table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    trials: dict[tuple[int, str], list[Trial]] = {(s, m): [] for s in SIZES for m in MODES}
    with tempfile.TemporaryDirectory(prefix="autosre-bench-fleet-") as tmp:
        work = Path(tmp)
        with Lab(work / "lab", hosts=max(SIZES)) as lab:
            print(f"lab of {len(lab.hosts)} hosts up", file=sys.stderr)
            executor = AnsibleRunnerExecutor(
                runs_dir=work / "runs",
                inventory_path=lab.inventory_path,
                fact_cache_dir=work / "facts",  # as the engine keeps it
                scratch_dir=work / "scratch",  # the bench's fixed idents meet nobody's
            )
            # One warm-up on every host: the service manager each later run reads from the
            # fact cache, and the known-good snapshot already taken.
            warm = _trial(lab, executor, max(SIZES), "batched", 0)
            print(f"warm-up (cold hosts): {warm.seconds:.1f}s", file=sys.stderr)
            for n in range(1, args.trials + 1):
                for size in SIZES:
                    modes = MODES if n % 2 else tuple(reversed(MODES))
                    for mode in modes:
                        trial = _trial(lab, executor, size, mode, n)
                        trials[(size, mode)].append(trial)
                        print(
                            f"trial {n}: {mode:>16} {size:>3} hosts {trial.seconds:6.1f}s"
                            f" cpu: controller {trial.controller_cpu:5.1f}s"
                            f" hosts {trial.hosts_cpu:5.1f}s",
                            file=sys.stderr,
                        )
    print(
        f"\nmachine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs,"
        f" Python {platform.python_version()}; policy {POLICY.name}, cold warm-up of 50"
        f" hosts {warm.seconds:.1f} s"
    )
    print(
        "| hosts | batched (median) | x 1 host | one run per host (median) | x 1 host"
        " | CPU per trial, batched: controller / hosts |"
    )
    print("|---|---|---|---|---|---|")
    for size in SIZES:
        batched, apart = trials[(size, MODES[0])], trials[(size, MODES[1])]
        one_b = statistics.median(t.seconds for t in trials[(1, MODES[0])])
        one_p = statistics.median(t.seconds for t in trials[(1, MODES[1])])
        controller = statistics.median(t.controller_cpu for t in batched)
        hosts = statistics.median(t.hosts_cpu for t in batched)
        print(
            f"| {size} | {_cell(batched, one_b)} | {_cell(apart, one_p)}"
            f" | {controller:.1f} s / {hosts:.1f} s |"
        )
    if args.json:
        rows: list[dict[str, Any]] = [
            {"hosts": s, "mode": m, **t.__dict__} for (s, m), ts in trials.items() for t in ts
        ]
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
