"""The lab's shared services, each a detached process: the metrics exporter (one for every
host) and Prometheus, with the query the lab and its tests read Prometheus through."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.lab.errors import LabError
from tests.lab.host import LabHost, wait_for_port
from tests.lab.processes import start_detached, tail

HERE = Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"  # the machine's: holder and exporter need only its stdlib
PROMETHEUS = "/usr/bin/prometheus"


# Monitoring stands for other machines (each host's exporter, a Prometheus server): on
# this shared machine it must not starve behind the hosts' burns, or data goes stale.
MONITORING_PRIORITY = ["nice", "-n", "-15"]


def start_holder(
    directory: Path, spec: dict[str, Any], cgroup_procs: Sequence[Path], data_mb: int
) -> subprocess.Popen[bytes]:
    """The holder of one host (tests/lab/holder.py) in a new mount namespace; it writes
    ``hosts/<name>/ready.json`` once nginx and sshd run."""
    host_dir = directory / "hosts" / spec["name"]
    config = {
        "name": spec["name"], "nginx_port": spec["nginx_port"], "ssh_port": spec["ssh_port"],
        "cgroup_procs": [str(p) for p in cgroup_procs], "data_mb": data_mb,
        "nginx_template": str(directory / "nginx-template" / "nginx"),
        "host_key": str(host_dir / "ssh_host_ed25519_key"),
        "authorized_keys": str(directory / "authorized_keys"),
        "sshd_config": str(directory / "sshd_config"), "ready": str(host_dir / "ready.json"),
    }  # fmt: skip
    (host_dir / "host.json").write_text(json.dumps(config))
    holder = [PYTHON, "-I", "-S", str(HERE / "holder.py"), str(host_dir / "host.json")]
    argv = ["unshare", "--mount", "--propagation", "private", "--", *holder]
    return start_detached(argv, host_dir / "holder.log")


def prometheus_marker(directory: Path) -> str:
    """The argument that names the lab's Prometheus among the machine's processes."""
    return f"--config.file={directory / 'prometheus' / 'prometheus.yml'}"


def start_prometheus(
    directory: Path, port: int, exporter_ports: Sequence[int]
) -> subprocess.Popen[bytes]:
    """Prometheus on 127.0.0.1:port scraping each exporter port every second (JSON is YAML)."""
    work = directory / "prometheus"
    work.mkdir()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "900ms", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "node",
                "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in exporter_ports]}],
            }
        ],
    }
    (work / "prometheus.yml").write_text(json.dumps(config, indent=2))
    argv = [
        PROMETHEUS, prometheus_marker(directory), f"--storage.tsdb.path={work / 'tsdb'}",
        "--log.level=warn", f"--web.listen-address=127.0.0.1:{port}",
    ]  # fmt: skip
    return start_detached([*MONITORING_PRIORITY, *argv], work / "prometheus.log")


def start_exporter(
    directory: Path, hosts: Sequence[LabHost], cpus: float, memory_bytes: int
) -> subprocess.Popen[bytes]:
    """The exporter serving every host, once it listens on each host's port."""
    specs = [
        {"name": h.name, "port": h.exporter_port, "nginx_port": h.nginx_port, "cpus": cpus,
         "memory_bytes": memory_bytes, "holder": h.holder_pid, "cgroup": h.cgroup.exporter_paths()}
        for h in hosts
    ]  # fmt: skip
    config = directory / "exporter.json"
    config.write_text(json.dumps({"hosts": specs}))
    log = directory / "exporter.log"
    argv = [*MONITORING_PRIORITY, PYTHON, "-I", "-S", str(HERE / "exporter.py"), str(config)]
    proc = start_detached(argv, log)
    for host in hosts:
        if not wait_for_port(host.exporter_port, 15.0):
            proc.kill()
            proc.wait(timeout=5)
            raise LabError(f"the lab exporter does not listen on {host.exporter_port}: {tail(log)}")
    return proc


def query(url: str, promql: str) -> list[dict[str, Any]]:
    """The series an instant query yields now ([] while Prometheus does not answer)."""
    address = f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(address, timeout=2.0) as response:
            result: list[dict[str, Any]] = json.load(response)["data"]["result"]
    except (OSError, ValueError, KeyError):
        return []
    return result
