"""The tick's schedule: the regular interval, and polls while a rising window may complete."""

from __future__ import annotations

import threading
import time
from typing import cast

from engine.loop import Engine, TickReport
from engine.scheduler import next_tick_at, run_until


def test_no_host_rising_keeps_the_regular_tick() -> None:
    assert next_tick_at(100.0, 101.0, None, 0.1) is None
    assert next_tick_at(100.0, 101.0, 101.0, 0.1) is None  # the regular tick is soon enough
    assert next_tick_at(100.0, 101.0, 105.0, 0.1) is None


def test_a_window_that_may_complete_before_the_next_tick_is_polled() -> None:
    assert next_tick_at(100.0, 101.0, 100.6, 0.1) == 100.6  # at the earliest moment
    assert next_tick_at(100.0, 101.0, 99.5, 0.1) == 100.1  # already due: every poll
    assert next_tick_at(100.0, 100.05, 99.5, 0.1) == 100.05  # never after the regular one


class ScriptedEngine:
    """Stands in for the engine: reports a rising window due 0.3 s after its first tick."""

    def __init__(self) -> None:
        self.ticks: list[float] = []
        self.done = threading.Event()

    def tick(self) -> TickReport:
        now = time.time()
        self.ticks.append(now)
        if len(self.ticks) >= 3:
            self.done.set()
        due = self.ticks[0] + 0.3 if len(self.ticks) < 3 else None
        return TickReport(now, 0.0, {}, (), due, 0.1)


def test_the_scheduler_ticks_when_the_window_is_due_not_at_the_interval() -> None:
    engine = ScriptedEngine()
    stop = threading.Event()
    runner = threading.Thread(
        target=run_until, args=(cast(Engine, engine),), kwargs={"interval": 30.0, "stop": stop}
    )
    runner.start()
    try:
        # With a 30 s interval, three ticks within 20 s can only be the polls.
        assert engine.done.wait(20), engine.ticks
    finally:
        stop.set()
        runner.join(30)
    first, second, third = engine.ticks[:3]
    assert second >= first + 0.3 - 0.05  # not before the window may complete
    assert third >= second + 0.1 - 0.05  # then one poll at a time
