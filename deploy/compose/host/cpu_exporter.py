#!/usr/bin/python3
"""This container's own CPU time, from its cgroup, as node_exporter's ``node_cpu_seconds_total``.

In a container /proc/stat is the whole machine's: a burn in web1 would show on every demo
host, or, under a CPU limit on a large machine, hardly anywhere. This serves one pseudo-CPU
whose ``user`` seconds are the cgroup's CPU time divided by the CPUs it may use, and whose
``idle`` seconds make up the rest of the wall time, so the shipped policy's and alert
rules' query (100 * (1 - avg by (instance) (rate(...{mode="idle"}[...])))) reads this
container's busy percent unchanged. Standard library only (Debian's python3).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Lock

CGROUP = Path("/sys/fs/cgroup")
# cgroup v1 mounts the CPU accounting controller under one of these names.
V1_CPUACCT = ("cpuacct", "cpu,cpuacct", "cpuacct,cpu")
V1_CPU = ("cpu", "cpu,cpuacct", "cpuacct,cpu")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def usage_seconds(cgroup: Path = CGROUP) -> float:
    """CPU seconds the cgroup's processes have used (v2 ``cpu.stat``, else v1 cpuacct)."""
    stat = cgroup / "cpu.stat"
    if stat.is_file():
        for line in stat.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "usage_usec":
                return int(value) / 1e6
    for name in V1_CPUACCT:
        usage = cgroup / name / "cpuacct.usage"
        if usage.is_file():
            return int(usage.read_text()) / 1e9
    raise FileNotFoundError(f"no CPU accounting under {cgroup} (cpu.stat or cpuacct.usage)")


def allowed_cpus(cgroup: Path = CGROUP, online: int | None = None) -> float:
    """The CPUs the cgroup may use: its quota (v2 ``cpu.max``, v1 CFS), at most ``online``."""
    if online is None:
        online = len(os.sched_getaffinity(0))
    quota, period = _quota(cgroup)
    if quota is None or quota <= 0 or period <= 0:
        return float(online)
    return min(quota / period, float(online))


def _quota(cgroup: Path) -> tuple[float | None, float]:
    limit = cgroup / "cpu.max"
    if limit.is_file():
        quota, _, period_text = limit.read_text().strip().partition(" ")
        return (None if quota == "max" else float(quota)), float(period_text or 100000)
    for name in V1_CPU:
        quota_file = cgroup / name / "cpu.cfs_quota_us"
        if quota_file.is_file():
            period = float((cgroup / name / "cpu.cfs_period_us").read_text())
            return float(quota_file.read_text()), period
    return None, 1.0


class CpuCounters:
    """The pseudo-CPU's ``user`` and ``idle`` seconds since start; both only ever grow."""

    def __init__(
        self,
        *,
        cgroup: Path = CGROUP,
        online: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cgroup = cgroup
        self.online = online
        self.clock = clock
        self.started = clock()
        self.base = usage_seconds(cgroup)
        self.idle = 0.0
        self.lock = Lock()

    def read(self) -> tuple[float, float]:
        """(user, idle) seconds now: user is CPU time over allowed CPUs, idle the rest."""
        with self.lock:
            elapsed = self.clock() - self.started
            user = (usage_seconds(self.cgroup) - self.base) / allowed_cpus(self.cgroup, self.online)
            # Quota is enforced per period, so usage can run a hair ahead of wall time
            # between two reads: idle holds still then rather than going back (a reset).
            self.idle = max(self.idle, elapsed - user)
            return user, self.idle


def render(user: float, idle: float) -> str:
    """The counters in Prometheus' text format, named as node_exporter names them."""
    if not (math.isfinite(user) and math.isfinite(idle)):
        raise ValueError(f"counters must be finite, got {user=} {idle=}")
    return (
        "# HELP node_cpu_seconds_total Seconds this container's CPUs spent in each mode "
        "(one pseudo-CPU, from its cgroup).\n"
        "# TYPE node_cpu_seconds_total counter\n"
        f'node_cpu_seconds_total{{cpu="0",mode="idle"}} {idle:.6f}\n'
        f'node_cpu_seconds_total{{cpu="0",mode="user"}} {user:.6f}\n'
    )


def serve(counters: CpuCounters, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server answering GET /metrics from ``counters`` (not yet serving)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            body = render(*counters.read()).encode()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # a scrape every two seconds is not news

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> None:
    """Serve until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    # Every address by default: Prometheus scrapes it from another container.
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104
    parser.add_argument("--port", type=int, default=9101)
    parser.add_argument("--cgroup", type=Path, default=CGROUP)
    args = parser.parse_args(argv)
    server = serve(CpuCounters(cgroup=args.cgroup), args.host, args.port)
    print(f"serving this container's CPU on {args.host}:{args.port}/metrics", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
