"""The garbage collector's full passes, run between ticks instead of inside them.

At 10,000 hosts the engine holds close to a million sample tuples (named tuples stay
tracked by the collector, unlike plain ones), and each tick replaces a share of them. Left
automatic, the collector starts a full pass whenever a quarter of the heap is new, about
every fourth tick, and walks everything in the middle of a tick: measured, full passes
took over a third of the engine's CPU. While the engine runs, the young generations are
still collected automatically (cyclic garbage is freed as soon as before); the full pass
runs only after a tick, every ``full_every`` seconds.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("autosre.collector")
FULL_EVERY = 300.0  # seconds between full passes
NEVER = 2**30  # a threshold for the oldest generation that automatic collection never reaches


@dataclass
class CollectorSchedule:
    """Owns the collector's full passes while the engine runs: ``start``, ``after_tick``,
    ``stop``."""

    full_every: float = FULL_EVERY
    clock: Callable[[], float] = time.monotonic
    spent: float = 0.0  # seconds spent in full passes so far
    _last_full: float = 0.0
    _thresholds: tuple[int, int, int] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        """Collect once, then leave the full passes to ``after_tick`` until ``stop``."""
        with self._lock:
            if self._thresholds is not None:
                return
            self._thresholds = gc.get_threshold()
            young, middle, _ = self._thresholds
            gc.collect()
            gc.set_threshold(young, middle, NEVER)
            self._last_full = self.clock()

    def after_tick(self) -> None:
        """A full pass when ``full_every`` has passed since the last one."""
        with self._lock:
            now = self.clock()
            if self._thresholds is None or now - self._last_full < self.full_every:
                return
            started = time.perf_counter()
            gc.collect()
            self._last_full = now
            took = time.perf_counter() - started
            self.spent += took
        log.debug("full collection took %.3fs", took)

    def stop(self) -> None:
        """Give the collector its thresholds back."""
        with self._lock:
            if self._thresholds is not None:
                gc.set_threshold(*self._thresholds)
                self._thresholds = None
