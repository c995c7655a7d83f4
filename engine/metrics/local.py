"""The embedded default source: this machine, read through psutil, one sample per fetch.

Each signal kind that can be read locally has a reader here (``local_reader``), which reads
what its Prometheus query would: "higher is worse", percent. A reader that cannot read
returns NaN, which the source drops (no data, never "normal").
"""

from __future__ import annotations

import http.client
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from engine.policy.schema import SignalRule
from engine.types import MetricsBatch, Sample

NGINX_URL = "http://127.0.0.1/"
NGINX_PIDFILE = Path("/run/nginx.pid")
PROBE_TIMEOUT = 1.0  # seconds: a probe runs inside the tick


def cpu_percent() -> float:
    """Whole-host CPU use since the previous call, percent."""
    return float(psutil.cpu_percent(interval=None))


class LocalSource:
    """The embedded default: one kind on this machine through a reader, one sample per fetch
    (``cpu_percent`` is the reader, named after the first kind)."""

    def __init__(
        self,
        *,
        host: str,
        lookback: float,
        cpu_percent: Callable[[], float] = cpu_percent,
        other_hosts: Sequence[str] = (),
    ) -> None:
        self._host = host
        self._lookback = lookback
        self._cpu_percent = cpu_percent
        self._others = tuple(h for h in dict.fromkeys(other_hosts) if h != host)
        self._samples: deque[Sample] = deque()
        self._primed = False

    def prime(self) -> None:
        """Take the meaningless first reading now, so the first fetch already has data."""
        self._cpu_percent()
        self._primed = True

    def fetch(self, now: float) -> MetricsBatch:
        """Read the kind at ``now``; other hosts get empty windows (no data)."""
        value = self._cpu_percent()
        # psutil's first interval=None reading compares against nothing and is
        # meaningless; each later one averages the time since the previous call.
        if self._primed and math.isfinite(value):
            self._samples.append(Sample(self._host, now, value))
        self._primed = True
        while self._samples and self._samples[0].ts < now - self._lookback:
            self._samples.popleft()
        windows: dict[str, tuple[Sample, ...]] = dict.fromkeys(self._others, ())
        windows[self._host] = tuple(self._samples)
        return MetricsBatch(fetched_at=now, windows=windows)


def memory_used_percent() -> float:
    """Memory in use, percent: 100 * (1 - available / total), as node_exporter's query."""
    memory = psutil.virtual_memory()
    return 100.0 * (1.0 - memory.available / memory.total) if memory.total else math.nan


def disk_used_percent(path: str) -> float:
    """Used space of the filesystem holding ``path``, percent of its size (reserved blocks
    count as used, as ``1 - avail / size`` does); NaN when it cannot be read."""
    try:
        usage = psutil.disk_usage(path)
    except OSError:
        return math.nan
    return 100.0 * (1.0 - usage.free / usage.total) if usage.total else math.nan


def service_down_percent(url: str = NGINX_URL, pidfile: Path = NGINX_PIDFILE) -> float:
    """100 when nginx's master (from its pid file) is gone or its HTTP probe fails, else 0."""
    return 0.0 if _master_alive(pidfile) and _answers(url) else 100.0


def _master_alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text().strip())
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (OSError, ValueError, psutil.Error):
        return False


def _answers(url: str) -> bool:
    # http.client, not urllib: no proxy from the environment, no redirect followed elsewhere.
    parts = urlsplit(url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    try:
        connection = connection_class(parts.hostname or "", parts.port, timeout=PROBE_TIMEOUT)
        try:
            connection.request("GET", parts.path or "/")
            return connection.getresponse().status < 500
        finally:
            connection.close()
    except (OSError, ValueError, http.client.HTTPException):
        return False


def local_reader(kind: str, rule: SignalRule) -> Callable[[], float] | None:
    """How to read a kind on this machine, with its rule's settings; None if it cannot be."""
    if kind == "disk_full":
        return partial(disk_used_percent, rule.path)
    return LOCAL_READERS.get(kind)


# Signal kind -> how to read it on this machine (disk_full needs its rule: local_reader).
LOCAL_READERS: Mapping[str, Callable[[], float]] = {
    "high_cpu": cpu_percent,
    "memory_pressure": memory_used_percent,
    "service_down": service_down_percent,
}
