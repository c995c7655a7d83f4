"""The lab's metrics exporter: ``python3 -I -S exporter.py <exporter.json>`` serves, for each
lab host, ``/metrics`` on its own 127.0.0.1 port with node_exporter's metric names (and a
blackbox-style probe of the host's nginx), computed from the host's cgroup and data fs.

One process serves every host (a thread per port): measured on 50 hosts it costs one
Python's memory instead of fifty. Standard library only; it runs on the machine's python3.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

DATA_FS = '{mountpoint="/srv/lab-data",fstype="tmpfs",device="lab"}'


def cgroup_cpu_seconds(cgroup: dict[str, str]) -> float:
    """Seconds of CPU a cgroup (its ``HostCgroup.exporter_paths()``) has used since made."""
    text = Path(cgroup["cpu"]).read_text()
    if cgroup["kind"] == "v1":
        return int(text) / 1e9
    fields = dict(line.split() for line in text.splitlines() if line)
    return int(fields["usage_usec"]) / 1e6


class Host:
    """One host's readings; the CPU counters advance by what the cgroup used, capped so a
    host never shows more busy seconds than its CPUs had (monotone, busy + idle = wall)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.cpus = float(spec["cpus"])
        self.lock = threading.Lock()
        self.last_time = time.monotonic()
        self.last_usage = self.cgroup_cpu_seconds()
        self.busy = 0.0
        self.idle = 0.0

    def cgroup_cpu_seconds(self) -> float:
        """Seconds of CPU the host's cgroup has used since it was made."""
        return cgroup_cpu_seconds(self.spec["cgroup"])

    def cpu(self) -> tuple[float, float]:
        """(idle, busy) seconds, as node_cpu_seconds_total would count them."""
        with self.lock:
            now, usage = time.monotonic(), self.cgroup_cpu_seconds()
            elapsed = (now - self.last_time) * self.cpus
            busy = min(max(usage - self.last_usage, 0.0), elapsed)
            self.busy += busy
            self.idle += elapsed - busy
            self.last_time, self.last_usage = now, usage
            return self.idle, self.busy

    def memory_used(self) -> int:
        """Bytes the host uses, page cache (and its tmpfs files) excluded."""
        cgroup = self.spec["cgroup"]
        usage = int(Path(cgroup["mem"]).read_text())
        lines = Path(cgroup["stat"]).read_text().splitlines()
        stat = dict(line.split() for line in lines if line.strip())
        cache = (
            int(stat.get("total_cache", 0)) if cgroup["kind"] == "v1" else int(stat.get("file", 0))
        )
        return max(usage - cache, 0)

    def probe(self, timeout: float) -> tuple[int, float]:
        """(success, seconds) of one HTTP GET of the host's nginx, as blackbox_exporter."""
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.spec["nginx_port"], timeout=timeout)
        try:
            conn.request("GET", "/")
            ok = 200 <= conn.getresponse().status < 400
        except (OSError, http.client.HTTPException):
            ok = False
        finally:
            conn.close()
        elapsed = time.monotonic() - started
        return int(ok and elapsed <= timeout), elapsed

    def metrics(self, probe_timeout: float) -> str:
        """The Prometheus text exposition for this host."""
        idle, busy = self.cpu()
        total = int(self.spec["memory_bytes"])
        fs = os.statvfs(f"/proc/{self.spec['holder']}/root/srv/lab-data")
        success, took = self.probe(probe_timeout)
        lines = [
            "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.",
            "# TYPE node_cpu_seconds_total counter",
            # As one CPU's seconds (busy + idle advance 1 s/s), whatever share of a core the
            # host has: the rate of idle is then the idle fraction, as for a real CPU.
            f'node_cpu_seconds_total{{cpu="0",mode="idle"}} {idle / self.cpus:.6f}',
            f'node_cpu_seconds_total{{cpu="0",mode="user"}} {busy / self.cpus:.6f}',
            "# TYPE node_memory_MemTotal_bytes gauge",
            f"node_memory_MemTotal_bytes {total}",
            "# TYPE node_memory_MemAvailable_bytes gauge",
            f"node_memory_MemAvailable_bytes {max(total - self.memory_used(), 0)}",
            "# TYPE node_filesystem_size_bytes gauge",
            f"node_filesystem_size_bytes{DATA_FS} {fs.f_blocks * fs.f_frsize}",
            "# TYPE node_filesystem_avail_bytes gauge",
            f"node_filesystem_avail_bytes{DATA_FS} {fs.f_bavail * fs.f_frsize}",
            "# TYPE node_filesystem_free_bytes gauge",
            f"node_filesystem_free_bytes{DATA_FS} {fs.f_bfree * fs.f_frsize}",
            "# TYPE probe_success gauge",
            f"probe_success {success}",
            "# TYPE probe_duration_seconds gauge",
            f"probe_duration_seconds {took:.6f}",
        ]
        return "\n".join(lines) + "\n"


def handler_for(host: Host) -> type[BaseHTTPRequestHandler]:
    """A request handler bound to one host."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.reply(404, "only /metrics here\n")
                return
            # As blackbox_exporter: the probe must end before Prometheus gives up the scrape.
            try:
                budget = float(self.headers.get("X-Prometheus-Scrape-Timeout-Seconds", "1.1"))
            except ValueError:
                budget = 1.1
            try:
                body = host.metrics(max(min(1.0, budget - 0.1), 0.05))
            except OSError as exc:  # the host is gone (its holder, cgroup or data fs)
                self.reply(503, f"lab host {host.spec['name']} is down: {exc}\n")
                return
            self.reply(200, body)

        def reply(self, status: int, body: str) -> None:
            data = body.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the scraper gave up

        def log_message(self, format: str, *args: object) -> None:
            pass  # a line per scrape would fill the log

    return Handler


def main(config_path: str) -> int:
    """Serve every host of the config until killed."""
    config = json.loads(Path(config_path).read_text())
    servers = []
    for spec in config["hosts"]:
        server = ThreadingHTTPServer(("127.0.0.1", spec["port"]), handler_for(Host(spec)))
        server.daemon_threads = True
        servers.append(server)
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("serving", len(servers), flush=True)
    servers[0].serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
