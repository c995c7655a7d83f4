"""The embedded default source: this machine, read through psutil, one sample per fetch.

Each signal kind that can be read locally has a reader here (``LOCAL_READERS``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence

import psutil

from engine.types import MetricsBatch, Sample


def cpu_percent() -> float:
    """Whole-host CPU use since the previous call, percent."""
    return float(psutil.cpu_percent(interval=None))


class LocalSource:
    """The embedded default: this machine's CPU through psutil, one sample per fetch."""

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
        """Sample the CPU at ``now``; other hosts get empty windows (no data)."""
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


# Signal kind -> how to read it on this machine.
LOCAL_READERS: Mapping[str, Callable[[], float]] = {"high_cpu": cpu_percent}
