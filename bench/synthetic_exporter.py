"""A synthetic node_exporter (and blackbox probe) for N hosts, and CPU history for Prometheus.

One process serves, for every host of a fleet, the series the shipped policy's queries read:
``node_cpu_seconds_total{mode="idle"}`` (high_cpu), memory available and total
(memory_pressure), the root filesystem's free and total bytes (disk_full) and
``probe_success`` (service_down), each host with its own ``instance`` label (``10.x.y.z:9100``,
the host's ``ansible_host`` and node_exporter's port; ``:80`` for the probe), so that
Prometheus, scraping it with ``honor_labels: true``, holds the series of N node_exporters.
Every host is healthy: CPU busy between 10 % and 70 %, memory 50 % used, disk 40 % used.
The idle counter is a function of wall time, so that the backfilled history
(``write_history``, for ``promtool tsdb create-blocks-from openmetrics``) and the live
scrapes are one series.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

EPOCH = 1_700_000_000.0  # counters start here: values stay small enough to print exactly
JOB = "node"


def host_name(index: int) -> str:
    """The inventory name of host ``index`` (0-based): web00001, web00002, ..."""
    return f"web{index + 1:05d}"


def host_address(index: int) -> str:
    """The host's address (its ansible_host): 10.a.b.c, unique for up to 16 million hosts."""
    number = index + 1
    return f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"


def busy_percent(index: int) -> float:
    """The host's CPU busy percent: spread over 10-70 %, under every shipped trigger."""
    return 10.0 + (index * 37) % 61


def inventory_text(hosts: int) -> str:
    """An INI inventory as people write it: one line per host, its name and address."""
    lines = ["[web]"]
    lines += [f"{host_name(i)} ansible_host={host_address(i)}" for i in range(hosts)]
    return "\n".join(lines) + "\n"


def _labels(index: int) -> str:
    return f'cpu="0",instance="{host_address(index)}:9100",job="{JOB}",mode="idle"'


def _gauges(index: int) -> list[str]:
    """The host's memory, filesystem and probe series (constant: a healthy host)."""
    node = f'instance="{host_address(index)}:9100",job="{JOB}"'
    disk = f'{node},device="/dev/vda1",fstype="ext4",mountpoint="/"'
    return [
        f"node_memory_MemAvailable_bytes{{{node}}} 4294967296",
        f"node_memory_MemTotal_bytes{{{node}}} 8589934592",
        f"node_filesystem_avail_bytes{{{disk}}} 32212254720",
        f"node_filesystem_size_bytes{{{disk}}} 53687091200",
        f'probe_success{{instance="{host_address(index)}:80",job="{JOB}"}} 1',
    ]


@dataclass(frozen=True)
class Fleet:
    """The idle counters of N hosts as functions of wall time."""

    hosts: int

    def idle(self, index: int, at: float) -> float:
        """Host ``index``'s idle seconds counter at UNIX time ``at``."""
        return round((1.0 - busy_percent(index) / 100.0) * (at - EPOCH), 3)

    def exposition(self, at: float) -> bytes:
        """The Prometheus text format of every host's counter now (no timestamps)."""
        lines: list[str] = []
        for i in range(self.hosts):
            lines.append(f"node_cpu_seconds_total{{{_labels(i)}}} {self.idle(i, at)}")
            lines += _gauges(i)
        return ("\n".join(lines) + "\n").encode()

    def write_history(self, path: Path, start: float, end: float, step: float) -> int:
        """Write the CPU series from ``start`` to ``end`` every ``step`` s as OpenMetrics; the
        number of samples. (The other series start with the scrapes: their queries need at
        most a minute of data to read every host as normal.)"""
        stamps: list[float] = []
        at = start
        while at < end:
            stamps.append(round(at, 3))
            at += step
        with path.open("w") as out:
            for i in range(self.hosts):
                name = f"node_cpu_seconds_total{{{_labels(i)}}}"
                out.writelines(f"{name} {self.idle(i, ts)} {ts}\n" for ts in stamps)
            out.write("# EOF\n")
        return len(stamps) * self.hosts


class SyntheticExporter:
    """Serves /metrics for a fleet on 127.0.0.1 (a free port) from a daemon thread."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.scrapes = 0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.fleet.exposition(time.time())
                exporter.scrapes += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # a scrape every few seconds is not news

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> SyntheticExporter:
        """Start serving; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
