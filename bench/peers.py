"""Time to act, side by side: AutoSRE and Monit on the same CPU burn, runs alternating.

Time to act is burn start -> nginx's old master process gone. The rule is the same for
both: CPU above 80 % for 10 s restarts nginx.

- Monit 5.33, tuned: ``set daemon 1``, ``if cpu usage > 80% for 10 cycles then exec
  "/usr/sbin/service nginx restart"``. Installed from Debian when missing (root only).
- AutoSRE as a new user runs it: the lab policy (sustain 10 s, 1 s ticks, 1 s scrapes),
  the plain inventory line ``web1 ansible_connection=local
  ansible_python_interpreter=/usr/bin/python3``; Prometheus labels node_exporter's series
  ``instance="web1"``. Measured with a fresh data dir (the first incident on a host:
  Ansible detects its service manager), with the fact cache an earlier run filled (every
  later incident on that host), and, beside them, with staged runs turned off
  (``remediation.stage_runs: false``, facts cached) to show what staging buys.

After time to act: nginx answering again, and (AutoSRE) the recovery verified on fresh data.
Prints a table (median, min, max, ratio to Monit) and writes bench/results/peers.json.
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
from collections.abc import Callable
from functools import partial
from pathlib import Path

import yaml

from bench.mttr import _nginx_pid, _wait, print_trial, trial
from tests.fixtures.nginx import NginxService
from tests.fixtures.prometheus import PrometheusServer, _stop, free_port, start_node_exporter
from tests.integration.harness import AUTOSRE, ROOT

PLAIN_INVENTORY = "web1 ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n"
MONITRC = """\
set daemon 1
set logfile {dir}/monit.log
set pidfile {dir}/monit.pid
set idfile {dir}/monit.id
set statefile {dir}/monit.state
check system autosre_bench
    if cpu usage > 80% for 10 cycles then exec "/usr/sbin/service nginx restart"
"""
SETTLE = 8.0  # seconds between trials, for the CPU and the rate window to calm down


def ensure_monit() -> str | None:
    """The monit binary, installed from Debian when missing and root; None when absent."""
    found = shutil.which("monit")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench: installing monit from Debian", flush=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "monit"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            capture_output=True,
            check=False,
        )
        found = shutil.which("monit")
    return found


def _burn(workdir: Path) -> subprocess.Popen[bytes]:
    # The engine's own chaos command: burns every core until nginx's master changes.
    return subprocess.Popen(
        [str(AUTOSRE), "chaos", "cpu", "--seconds", "120"],
        env={**os.environ, "AUTOSRE_DATA_DIR": str(workdir / "data")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def monit_trial(workdir: Path, monit: str) -> dict[str, float]:
    """One Monit run on the burn; its phases in seconds from burn start."""
    workdir.mkdir(parents=True, exist_ok=True)
    control = workdir / "monitrc"
    control.write_text(MONITRC.format(dir=workdir))
    control.chmod(0o600)  # monit refuses a control file others can read
    daemon = subprocess.Popen(
        [monit, "-I", "-c", str(control)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        time.sleep(3)  # a few cycles: monit's CPU usage is a difference of two samples
        if daemon.poll() is not None:
            raise SystemExit(f"bench: monit exited: {(workdir / 'monit.log').read_text()}")
        old_pid = _wait("nginx's pid", _nginx_pid, 10)
        burn_start = time.time()
        burn = _burn(workdir)
        _wait("nginx's old master to go", lambda: _nginx_pid() != old_pid, 120, every=0.02)
        acted = time.time()
        NginxService().wait_until_answering(timeout=30)
        answering = time.time()
        burn.wait(timeout=30)
        return {"old_pid_gone": acted - burn_start, "answering": answering - burn_start}
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


def _prometheus(root: Path, exporter_address: str) -> PrometheusServer:
    """Prometheus scraping node_exporter every second, its series labelled instance=web1."""
    server = PrometheusServer(workdir=root / "prom", port=free_port())
    server.workdir.mkdir()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "node",
                "static_configs": [{"targets": [exporter_address], "labels": {}}],
                "relabel_configs": [{"target_label": "instance", "replacement": "web1"}],
            }
        ],
    }
    (server.workdir / "prometheus.yml").write_text(json.dumps(config))
    server.start()
    server.wait_for_series('node_cpu_seconds_total{mode="idle",instance="web1"}', timeout=60)
    return server


def _summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> int:
    """Run the trials, alternating systems, and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "peers.json")
    args = parser.parse_args()
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    if _nginx_pid() is None:
        subprocess.run(["service", "nginx", "start"], check=False, capture_output=True)
    if _nginx_pid() is None:
        raise SystemExit("bench: nginx must be running (service nginx start) as root")
    monit = ensure_monit()
    if monit is None:
        print("bench: monit is not installed (apt-get install monit, as root): AutoSRE alone")
    results: dict[str, list[dict[str, float]]] = {
        "autosre": [],
        "autosre-warm": [],
        "autosre-unstaged": [],
    }
    if monit is not None:
        results["monit"] = []
    with tempfile.TemporaryDirectory(prefix="autosre-peers-") as tmp:
        root = Path(tmp)
        inventory = root / "inventory.ini"
        inventory.write_text(PLAIN_INVENTORY)
        lab = yaml.safe_load((ROOT / "policies" / "lab.yaml").read_text(encoding="utf-8"))
        lab.setdefault("remediation", {})["stage_runs"] = False
        unstaged = root / "unstaged.yaml"
        unstaged.write_text(yaml.safe_dump(lab, sort_keys=False), encoding="utf-8")
        exporter = start_node_exporter(root)
        prom = _prometheus(root, exporter.address)
        try:
            for number in range(args.trials):
                cold = root / f"cold{number}"
                runs: list[tuple[str, Callable[[], dict[str, float]]]] = [
                    ("autosre", partial(trial, cold, prom.url, {}, inventory=inventory)),
                    (
                        "autosre-warm",
                        partial(
                            trial,
                            root / f"warm{number}",
                            prom.url,
                            {},
                            inventory=inventory,
                            facts=cold / "data" / "facts",
                        ),
                    ),
                    (
                        "autosre-unstaged",
                        partial(
                            trial,
                            root / f"unstaged{number}",
                            prom.url,
                            {"AUTOSRE_POLICY": str(unstaged)},
                            inventory=inventory,
                            facts=cold / "data" / "facts",
                        ),
                    ),
                ]
                if monit is not None:
                    runs.append(("monit", partial(monit_trial, root / f"monit{number}", monit)))
                for name, run in runs:
                    time.sleep(SETTLE)
                    result = run()
                    results[name].append(result)
                    print_trial(number, name, result)
        finally:
            prom.stop()
            _stop(exporter.proc)
    act = {name: _summary([r["old_pid_gone"] for r in rs]) for name, rs in results.items()}
    report = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        "trials": results,
        "time_to_act": act,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\ntime to act (burn start -> old nginx master gone), {args.trials} trial(s) each:")
    print(f"{'system':<40} {'median':>8} {'min':>8} {'max':>8} {'x Monit':>8}")
    labels = {
        "monit": "Monit 5.33 (daemon 1, 10 cycles)",
        "autosre": "AutoSRE, plain inventory, first incident",
        "autosre-warm": "AutoSRE, plain inventory, facts cached",
        "autosre-unstaged": "AutoSRE, facts cached, staging off",
    }
    for name, figures in act.items():
        ratio = figures["median"] / act["monit"]["median"] if "monit" in act else None
        print(
            f"{labels[name]:<40} {figures['median']:>7.1f}s {figures['min']:>7.1f}s "
            f"{figures['max']:>7.1f}s {'' if ratio is None else f'{ratio:.2f}':>8}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
