"""MTTR of the standard CPU scenario, end to end on real Prometheus, nginx and Ansible.

Per trial: start `autosre run` (lab policy, 1 s ticks) on a fresh data dir, start a CPU
burn that ends when nginx restarts, and read the incident's recorded timeline. MTTR is
burn start -> verified recovery; the floor the lab policy allows is
sustain window + playbook duration + settle. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.policy.load import load_policy
from engine.read.incidents import incident_detail, list_incidents
from engine.store import open_store
from tests.fixtures.prometheus import (
    PrometheusServer,
    _stop,
    _write_config,
    free_port,
    start_node_exporter,
)
from tests.integration.harness import AUTOSRE, ROOT, lab_env

PIDFILE = Path("/run/nginx.pid")


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _nginx_pid() -> int | None:
    try:
        return int(PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return None


def _wait(what: str, probe: Any, timeout: float, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"bench: timed out after {timeout:.0f}s waiting for {what}")


def trial(
    workdir: Path,
    prometheus_url: str,
    extra_env: Mapping[str, str],
    *,
    inventory: Path | None = None,
    facts: Path | None = None,
) -> dict[str, float]:
    """One run of the scenario; returns its phases in seconds from burn start.
    ``inventory`` replaces the lab one; ``facts`` seeds the engine's fact cache (as an
    engine that acted on the host before would have it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = lab_env(workdir, prometheus_url, **extra_env)
    if inventory is not None:
        env["AUTOSRE_INVENTORY"] = str(inventory)
    if facts is not None:
        shutil.copytree(facts, workdir / "data" / "facts")
    log = workdir / "engine.log"
    # As a user would: the store is made by `autosre db upgrade`, then the engine starts.
    subprocess.run([str(AUTOSRE), "db", "upgrade"], env=env, check=True, capture_output=True)
    with log.open("wb") as out:
        engine = subprocess.Popen([str(AUTOSRE), "run"], env=env, stdout=out, stderr=out)
    sessions = open_store(f"sqlite:///{workdir / 'data' / 'autosre.db'}")
    try:
        _wait(
            "the engine to see web1 NORMAL", lambda: "web1 START -> NORMAL" in log.read_text(), 60
        )
        old_pid = _wait("nginx's pid", _nginx_pid, 10)
        burn_start = time.time()
        burn = subprocess.Popen(
            [str(AUTOSRE), "chaos", "cpu", "--seconds", "120"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait("nginx's old master to go", lambda: _nginx_pid() != old_pid, 120, every=0.02)
        acted = time.time()

        def closed() -> dict[str, Any] | None:
            rows = list_incidents(sessions, host="web1", limit=1).items
            return rows[0].model_dump(mode="json") if rows and rows[0].closed_at else None

        incident = _wait("the incident to close", closed, 120, every=0.2)
        burn.wait(timeout=30)
        found = incident_detail(sessions, incident["id"])
        assert found is not None
        detail = found.model_dump(mode="json")
        if incident["status"] != "resolved":
            raise SystemExit(f"bench: incident ended {incident['status']}: {detail['summary']}")
        events = {e["kind"]: _ts(e["at"]) for e in reversed(detail["timeline"])}
        run = detail["runs"][0]
        started, ended = _ts(run["started_at"]), _ts(run["ended_at"])
        return {
            "detected": events["detected"] - burn_start,
            "decided": events["decided"] - burn_start,
            "run_started": started - burn_start,
            "old_pid_gone": acted - burn_start,
            "run_ended": ended - burn_start,
            # From the verdict: a staged run started earlier and held until its release.
            "playbook": ended - max(started, events["decided"]),
            "verified": events["verified"] - burn_start,
        }
    finally:
        engine.terminate()
        engine.wait(timeout=60)
        sessions.kw["bind"].dispose()


def print_trial(number: int, label: str, result: Mapping[str, float]) -> None:
    """One line of progress: a trial's phases in seconds from burn start."""
    phases = ", ".join(f"{k} {v:.1f}s" for k, v in result.items())
    print(f"trial {number + 1} ({label}): {phases}", flush=True)


def run_trials(trials: int, *, envs: Sequence[Mapping[str, str]]) -> list[list[dict[str, float]]]:
    """Start Prometheus once; run ``trials`` trials per environment, alternating them."""
    if _nginx_pid() is None:
        subprocess.run(["service", "nginx", "start"], check=False, capture_output=True)
    if _nginx_pid() is None:
        raise SystemExit("bench: nginx must be running (service nginx start) as root")
    results: list[list[dict[str, float]]] = [[] for _ in envs]
    with tempfile.TemporaryDirectory(prefix="autosre-bench-") as tmp:
        root = Path(tmp)
        exporter = start_node_exporter(root)
        prom = PrometheusServer(workdir=root / "prom", port=free_port())
        prom.workdir.mkdir()
        _write_config(prom.workdir / "prometheus.yml", [exporter.address], "1s")
        prom.start()
        try:
            prom.wait_for_series('node_cpu_seconds_total{mode="idle"}', timeout=60)
            for number in range(trials):
                for which, env in enumerate(envs):
                    time.sleep(8)  # let CPU and the rate window settle between trials
                    result = trial(root / f"trial{number}-{which}", prom.url, env)
                    results[which].append(result)
                    print_trial(number, env.get("AUTOSRE_PLANNER", "rules"), result)
        finally:
            prom.stop()
            _stop(exporter.proc)
    return results


def main() -> int:
    """Run the trials and print the comparison with the floor."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "mttr.json")
    args = parser.parse_args()
    policy = load_policy(ROOT / "policies" / "lab.yaml")
    rule = policy.signal("high_cpu")
    (results,) = run_trials(args.trials, envs=[{}])
    median = {key: statistics.median(r[key] for r in results) for key in results[0]}
    settle = policy.settle("high_cpu")
    floor = rule.sustain + median["playbook"] + settle
    report = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "policy": {"sustain": rule.sustain, "settle": settle, "step": rule.step},
        "trials": results,
        "median": median,
        "floor": floor,
        "mttr": median["verified"],
        "ratio": median["verified"] / floor,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(
        f"\nMTTR (burn start -> verified recovery), median of {args.trials}: "
        f"{median['verified']:.1f}s"
    )
    print(f"  detection (first high sample + sustain {rule.sustain:g}s): {median['detected']:.1f}s")
    print(f"  decision: {median['decided'] - median['detected']:.2f}s")
    print(
        f"  decision -> run start: {median['run_started'] - median['decided']:.2f}s "
        "(negative: the run was staged ahead of its verdict)"
    )
    print(f"  burn start -> old nginx master gone: {median['old_pid_gone']:.1f}s")
    print(f"  playbook run from the verdict: {median['playbook']:.1f}s")
    print(
        f"  run end -> verified: {median['verified'] - median['run_ended']:.1f}s "
        f"(settle {settle:g}s)"
    )
    print(
        f"floor (sustain + playbook + settle): {floor:.1f}s; ratio {report['ratio']:.2f} "
        "(target <= 1.3)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
