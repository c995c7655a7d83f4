"""The collector's full passes run between ticks: never automatically while the engine
runs, once ``full_every`` has passed after a tick; young generations stay automatic, and the
thresholds are given back as found."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from engine.collector import CollectorSchedule


class Cycle:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def collector_on() -> Iterator[None]:
    was_on, thresholds = gc.isenabled(), gc.get_threshold()
    gc.enable()
    yield
    gc.set_threshold(*thresholds)
    if not was_on:
        gc.disable()


def _collections(generation: int) -> int:
    return int(gc.get_stats()[generation]["collections"])


def test_no_automatic_full_pass_while_young_cycles_are_still_freed(collector_on: None) -> None:
    schedule = CollectorSchedule(full_every=3600.0, clock=lambda: 0.0)
    schedule.start()
    try:
        full, middle = _collections(2), _collections(1)
        garbage = Cycle()
        freed = weakref.ref(garbage)
        del garbage
        # Far more than the allocations (and middle-generation passes) that would start a
        # full pass: 700 allocations a young pass, 10 young a middle one, 10 middle a full.
        for _ in range(200_000):
            Cycle()
        assert freed() is None  # a young pass freed it, as before
        assert _collections(1) >= middle + 10
        assert _collections(2) == full
        schedule.after_tick()  # not due yet
        assert _collections(2) == full
    finally:
        schedule.stop()
    assert gc.get_threshold()[2] < 1000


def test_a_full_pass_after_the_tick_once_full_every_has_passed(collector_on: None) -> None:
    now = [0.0]
    schedule = CollectorSchedule(full_every=300.0, clock=lambda: now[0])
    schedule.start()
    try:
        full = _collections(2)
        now[0] = 299.0
        schedule.after_tick()
        assert _collections(2) == full
        now[0] = 300.0
        schedule.after_tick()
        assert _collections(2) == full + 1
        now[0] = 310.0
        schedule.after_tick()  # the next one is 300 s after the last
        assert _collections(2) == full + 1
        assert schedule.spent > 0.0
    finally:
        schedule.stop()


def test_thresholds_are_given_back_as_found(collector_on: None) -> None:
    gc.set_threshold(1000, 20, 30)
    schedule = CollectorSchedule()
    schedule.start()
    schedule.start()  # twice: still the first thresholds to give back
    assert gc.get_threshold()[:2] == (1000, 20)
    schedule.stop()
    assert gc.get_threshold() == (1000, 20, 30)
