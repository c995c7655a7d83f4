"""What a failed tick says: a store outage in one line when it begins and one when it ends,
a bug's traceback once per distinct error every few minutes, never one per tick.

A tick that fails is skipped whole: what it decided but could not record is not acted
upon (every side effect is recorded before it starts), and the next tick starts afresh.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Protocol

from engine.loop import TickReport
from engine.store_outage import StoreOutage, describe, store_error

log = logging.getLogger("autosre.scheduler")
REPEAT_AFTER = 300.0  # seconds before the same bug's traceback is shown again


class Ticking(Protocol):
    """What the guard runs: the engine's tick."""

    def tick(self) -> TickReport:
        """Run one pass of the pipeline."""
        ...


def error_key(exc: BaseException) -> tuple[str, str]:
    """What makes two errors the same: their class and where they were raised (their
    messages may differ by a value, a time, an id)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else str(exc)
    return type(exc).__qualname__, where


class RepeatedErrors:
    """Lets the same error be told once per ``every`` seconds, counting the ones held back."""

    def __init__(self, every: float = REPEAT_AFTER, clock: Callable[[], float] = time.monotonic):
        self.every = every
        self.clock = clock
        self._told: dict[tuple[str, str], tuple[float, int]] = {}  # key -> (told at, held back)

    def tell(self, exc: BaseException) -> int | None:
        """None when the same error was told less than ``every`` seconds ago (it is counted);
        else how many like it were held back since it was last told."""
        now = self.clock()
        key = error_key(exc)
        told = self._told.get(key)
        if told is not None and now - told[0] < self.every:
            self._told[key] = (told[0], told[1] + 1)
            return None
        # Forget the others past their window, so that distinct errors cannot pile up.
        self._told = {k: v for k, v in self._told.items() if now - v[0] < self.every}
        self._told[key] = (now, 0)
        return told[1] if told is not None else 0


class TickGuard:
    """Runs the tick; a failure never stops the loop and is told as little as is useful."""

    def __init__(
        self,
        engine: Ticking,
        *,
        store: Callable[[], str],
        clock: Callable[[], float] = time.monotonic,
        repeat_after: float = REPEAT_AFTER,
    ) -> None:
        """``store``: the store's name as shown (its URL without password), asked when an
        outage is told."""
        self.engine = engine
        self.store = store
        self.outage = StoreOutage(clock)
        self.bugs = RepeatedErrors(repeat_after, clock)
        self.skipped = 0  # overlapping ticks skipped while the current one runs
        self.skip_told = False

    def tick(self) -> TickReport | None:
        """The tick's report, or None when it failed (and was told, if it is news)."""
        try:
            report = self.engine.tick()
        except Exception as exc:  # one broken tick must not stop the loop
            self._failed(exc)
            return None
        finally:
            self._tick_ended()
        ended = self.outage.answered()
        if ended is not None:
            lasted, failures = ended
            log.info(
                "store %s answers again after %.1fs (%d tick(s) skipped)",
                self.store(),
                lasted,
                failures,
            )
        return report

    def overlapped(self, interval: float) -> None:
        """A tick came while the previous one still ran: told for the first one only, and
        not at all in a store outage (a store that hangs is what makes ticks slow then)."""
        self.skipped += 1
        if self.skipped == 1 and not self.outage.down:
            self.skip_told = True
            log.warning(
                "tick skipped: the previous tick is still running (interval %.1fs)", interval
            )

    def _tick_ended(self) -> None:
        if self.skip_told and self.skipped > 1:
            log.info("the slow tick ended; %d tick(s) were skipped while it ran", self.skipped)
        self.skipped, self.skip_told = 0, False

    def _failed(self, exc: Exception) -> None:
        cause = store_error(exc)
        if cause is not None:
            if self.outage.failed():
                log.warning(
                    "store %s cannot be reached (%s): ticks are skipped, and nothing is acted "
                    "upon, until it answers",
                    self.store(),
                    describe(cause),
                )
            return
        held = self.bugs.tell(exc)
        if held is None:
            log.debug("tick failed again: %s", describe(exc))
            return
        again = f" ({held} more like it since it was last shown)" if held else ""
        log.error("tick failed%s", again, exc_info=exc)
