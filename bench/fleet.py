"""Remediating 1, 10 and 50 lab hosts that need the same playbook: one batched run (the
engine's way: one ansible-runner run, one fork per host) beside one run per host started
together, on the SSH lab (tests/lab: each host its own namespace, cgroup, nginx and sshd).

Per trial: the engine's executor runs `restart_nginx` (built by the whitelist from the lab
policy and the lab's inventory, as a new user writes it) on the first N hosts; the time is
launch -> every run ended with every host's nginx restarted. Sizes and modes alternate;
the median of the trials is reported, and N hosts / 1 host within each mode.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from engine.execute.runner import AnsibleRunnerExecutor
from engine.inventory import load_inventory
from engine.policy.load import load_policy
from engine.policy.whitelist import build_request
from engine.types import RunResult
from tests.integration.harness import ROOT
from tests.lab.lab import Lab

SIZES = (1, 10, 50)
MODES = ("batched", "one run per host")


def _trial(lab: Lab, executor: AnsibleRunnerExecutor, size: int, mode: str, n: int) -> float:
    policy = load_policy(ROOT / "policies" / "lab.yaml", playbook_dir=ROOT / "playbooks")
    inventory = load_inventory(lab.inventory_path)
    hosts = sorted(lab.hosts, key=lambda name: int(name.removeprefix("web")))[:size]
    before = {name: lab.hosts[name].nginx_pid() for name in hosts}

    def run(names: list[str], ident: str) -> RunResult:
        request = build_request(
            policy, inventory, ROOT / "playbooks", action="restart_nginx", hosts=names
        )
        return executor.run(request, ident=ident)

    tag = mode.split(maxsplit=1)[0]
    started = time.monotonic()
    if mode == "batched":
        results = [run(hosts, f"b{n}-{size}-{tag}")]
    else:
        with ThreadPoolExecutor(max_workers=size) as pool:
            futures = [pool.submit(run, [h], f"b{n}-{size}-{tag}-{h}") for h in hosts]
            results = [future.result() for future in futures]
    elapsed = time.monotonic() - started
    failed = [r.ident for r in results if r.status != "successful"]
    unchanged = [h for h in hosts if lab.hosts[h].nginx_pid() in (None, before[h])]
    if failed or unchanged:
        raise SystemExit(
            f"bench: {mode} on {size}: failed runs {failed}, not restarted {unchanged}"
        )
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the trials and print the table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    times: dict[tuple[int, str], list[float]] = {(s, m): [] for s in SIZES for m in MODES}
    with tempfile.TemporaryDirectory(prefix="autosre-bench-fleet-") as tmp:
        work = Path(tmp)
        with Lab(work / "lab", hosts=max(SIZES)) as lab:
            print(f"lab of {len(lab.hosts)} hosts up", file=sys.stderr)
            executor = AnsibleRunnerExecutor(
                runs_dir=work / "runs",
                inventory_path=lab.inventory_path,
                fact_cache_dir=work / "facts",  # as the engine keeps it
            )
            # One warm-up on every host: the facts each later run reads from the cache.
            _trial(lab, executor, max(SIZES), "batched", 0)
            for n in range(1, args.trials + 1):
                for size in SIZES:
                    modes = MODES if n % 2 else tuple(reversed(MODES))
                    for mode in modes:
                        took = _trial(lab, executor, size, mode, n)
                        times[(size, mode)].append(took)
                        print(
                            f"trial {n}: {mode:>16} {size:>3} hosts {took:6.1f}s", file=sys.stderr
                        )
    medians = {key: statistics.median(values) for key, values in times.items()}
    print(f"\nmachine: {platform.node()} {platform.machine()}, Python {platform.python_version()}")
    print("| hosts | batched (median) | x 1 host | one run per host (median) | x 1 host |")
    print("|---|---|---|---|---|")
    for size in SIZES:
        b, p = medians[(size, MODES[0])], medians[(size, MODES[1])]
        b1, p1 = medians[(1, MODES[0])], medians[(1, MODES[1])]
        print(f"| {size} | {b:.1f} s | {b / b1:.2f} | {p:.1f} s | {p / p1:.2f} |")
    if args.json:
        rows: list[dict[str, Any]] = [
            {"hosts": s, "mode": m, "seconds": v} for (s, m), v in times.items()
        ]
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
