"""The tick's schedule: the regular interval, and polls while a rising window may complete."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy.exc import OperationalError

from engine.components import Components
from engine.loop import Engine, TickReport
from engine.plan.rules import RulesPlanner
from engine.scheduler import next_tick_at, run_until
from engine.settings import load_settings
from engine.store import open_store
from engine.store_outage import store_label
from engine.tick_guard import TickGuard
from tests.fixtures.ansible import local_inventory
from tests.fixtures.postgres import own_database
from tests.fixtures.scripted import ScriptedSource
from tests.fixtures.tcp_proxy import TcpProxy


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


# -- failed ticks: a store outage told once, a bug's traceback once per few minutes --------

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "not-for-logs"  # trust auth takes any: the URL's password must never be shown


def told(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Every line the engine's loggers said at INFO or above."""
    return [r for r in caplog.records if r.name.startswith("autosre") and r.levelno >= logging.INFO]


@pytest.fixture
def store_engine(
    tcp_proxy: TcpProxy, postgres_template: str, tmp_path: Path
) -> Iterator[tuple[Engine, str]]:
    """An engine on its own PostgreSQL database, reached through the proxy (with the URL
    shown in its logs)."""
    inventory = local_inventory(tmp_path / "inventory.yml", "web1")
    settings = load_settings(
        {
            "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
            "AUTOSRE_POLICY": str(ROOT / "policies" / "lab.yaml"),
            "AUTOSRE_INVENTORY": str(inventory),
            "AUTOSRE_PLAYBOOK_DIR": str(ROOT / "playbooks"),
        }
    )
    with own_database(postgres_template, "s") as url:
        proxied = tcp_proxy.url(url).replace("postgres@", f"postgres:{PASSWORD}@")
        components = Components(settings, sessions=open_store(proxied))
        engine = Engine(
            components,
            metrics=ScriptedSource(lambda _h, _t: 20.0, ("web1",)),
            planner=RulesPlanner(),
        )
        try:
            yield engine, store_label(components.sessions)
        finally:
            engine.shutdown()
            components.close()


def test_a_store_outage_is_told_once_and_its_end_once(
    store_engine: tuple[Engine, str], tcp_proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    engine, shown = store_engine
    assert PASSWORD not in shown and f":{tcp_proxy.port}/" in shown
    guard = TickGuard(engine, store=lambda: shown)
    assert guard.tick() is not None  # the store answers
    caplog.set_level(logging.DEBUG)
    caplog.clear()

    tcp_proxy.stop()  # the pool's connections break, new ones are refused
    assert [guard.tick() for _ in range(20)] == [None] * 20

    (down,) = told(caplog)
    assert down.levelno == logging.WARNING and down.exc_info is None
    # The store by its address (its password masked, or redacted when a redacting log
    # filter of the engine's is installed), never the password itself.
    assert shown.split("@", 1)[1] in down.getMessage() and PASSWORD not in down.getMessage()
    assert "cannot be reached" in down.getMessage()
    assert "OperationalError" in down.getMessage()  # the reason, in one line
    assert "\n" not in down.getMessage()
    assert not [r for r in caplog.records if r.exc_info], "no traceback for an outage"

    tcp_proxy.start()
    caplog.clear()
    assert guard.tick() is not None
    assert guard.tick() is not None
    (back,) = told(caplog)
    message = back.getMessage()
    assert back.levelno == logging.INFO and shown.split("@", 1)[1] in message
    assert "answers again after" in message
    assert "(20 tick(s) skipped)" in message
    assert PASSWORD not in caplog.text


class FailingEngine:
    """Stands in for the engine: each tick raises what the test says."""

    def __init__(self) -> None:
        self.error: Exception = ValueError("bad")

    def tick(self) -> TickReport:
        raise self.error


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bug_shows_its_traceback_once_per_few_minutes(caplog: pytest.LogCaptureFixture) -> None:
    engine, clock = FailingEngine(), Clock()
    guard = TickGuard(engine, store=lambda: "unused", clock=clock, repeat_after=300.0)
    caplog.set_level(logging.INFO)
    for n in range(20):
        engine.error = ValueError(f"bad value {n}")  # the message varies; the bug does not
        assert guard.tick() is None
        clock.now += 1.0
    (first,) = told(caplog)
    assert first.levelno == logging.ERROR and first.exc_info is not None
    assert "bad value 0" in caplog.text and "bad value 1" not in caplog.text

    engine.error = KeyError("other")  # another bug is told at once
    assert guard.tick() is None
    assert len(told(caplog)) == 2

    clock.now += 300.0  # a few minutes on, the first bug is shown again, with its count
    engine.error = ValueError("bad value again")
    assert guard.tick() is None
    again = told(caplog)[-1]
    assert again.exc_info is not None and "19 more like it" in again.getMessage()
    assert len(told(caplog)) == 3


def test_overlapping_ticks_are_told_once_per_slow_tick(caplog: pytest.LogCaptureFixture) -> None:
    guard = TickGuard(ScriptedEngine(), store=lambda: "unused")
    caplog.set_level(logging.INFO)
    for _ in range(5):
        guard.overlapped(1.0)
    assert guard.tick() is not None
    warned, ended = told(caplog)
    assert warned.levelno == logging.WARNING and "still running" in warned.getMessage()
    assert "5 tick(s) were skipped" in ended.getMessage()
    guard.overlapped(1.0)  # the next slow tick is told again
    assert len(told(caplog)) == 3


def test_in_a_store_outage_overlapping_ticks_are_not_told(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = FailingEngine()
    engine.error = OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
    guard = TickGuard(engine, store=lambda: "sqlite:///x.db")
    caplog.set_level(logging.INFO)
    assert guard.tick() is None
    for _ in range(5):  # a store that hangs makes every tick slow
        guard.overlapped(1.0)
    assert guard.tick() is None
    (down,) = told(caplog)
    assert "sqlite:///x.db cannot be reached (ConnectionRefusedError: refused)" in down.getMessage()
