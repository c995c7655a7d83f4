"""The live view: bulk upserts of host states and tick counters, throttled, on both backends.

``sessions`` (tests/engine/conftest.py) is a migrated store: a SQLite file, then a
PostgreSQL schema of its own. The clock is the test's, so throttling is exact.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from engine.read.engine_stats import STORED_AS, read_engine_stats
from engine.read.hosts import read_host_states
from engine.record.live import LivePublisher
from engine.types import HostState, HostStatus, Sample
from tests.engine.test_loop import Lab

NORMAL, HIGH, UNKNOWN = HostStatus.NORMAL, HostStatus.HIGH_CPU, HostStatus.UNKNOWN
T0 = 1_800_000_000.0


class Clock:
    """A hand-moved clock for the publisher."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def fleet(
    statuses: dict[str, HostStatus], *, value: float = 30.0, samples: int = 3, at: float = T0
) -> tuple[dict[str, HostState], dict[str, tuple[Sample, ...]]]:
    """States and windows for hosts with the given statuses, all sampled up to ``at``."""
    states: dict[str, HostState] = {}
    windows: dict[str, tuple[Sample, ...]] = {}
    for host, status in statuses.items():
        window = tuple(Sample(host, at - samples + 1 + k, value + k) for k in range(samples))
        if status is UNKNOWN:
            window = ()
        states[host] = HostState(
            host=host,
            status=status,
            value=window[-1].value if window else None,
            since=at - 60,
            reason=f"{host} is {status}",
            sample_ts=window[-1].ts if window else None,
        )
        windows[host] = window
    return states, windows


def bind(sessions: sessionmaker[Session]) -> Engine:
    engine: Engine = sessions.kw["bind"]
    return engine


def hosts_by_name(sessions: sessionmaker[Session]) -> dict[str, dict[str, Any]]:
    return {row.host: row.model_dump(mode="json") for row in read_host_states(sessions)}


def stats(sessions: sessionmaker[Session]) -> dict[str, float]:
    """The published stats by the names the publisher stores them under."""
    read = read_engine_stats(sessions).model_dump()
    return {STORED_AS[field]: value for field, value in read.items() if value is not None}


def test_first_publish_creates_rows_then_a_due_one_updates_and_prunes(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    publisher = LivePublisher(sessions, clock=clock)
    states, windows = fleet({"web1": NORMAL, "web2": HIGH, "web3": UNKNOWN})
    publisher.publish(states, windows, 0.25)

    rows = hosts_by_name(sessions)
    assert set(rows) == {"web1", "web2", "web3"}
    assert rows["web2"] == {
        "host": "web2",
        "status": "HIGH_CPU",
        "value": 32.0,
        "reason": "web2 is HIGH_CPU",
        "since": "2027-01-15T07:59:00Z",
        "sample_ts": "2027-01-15T08:00:00Z",
        "updated_at": "2027-01-15T08:00:00Z",
        "recent": [[T0 - 2, 30.0], [T0 - 1, 31.0], [T0, 32.0]],
    }
    assert rows["web3"]["value"] is None
    assert rows["web3"]["sample_ts"] is None
    assert rows["web3"]["recent"] == []

    clock.now += 5.0
    states, windows = fleet({"web1": NORMAL, "web2": HIGH}, value=70.0, at=clock.now)
    publisher.publish(states, windows, 0.5)
    rows = hosts_by_name(sessions)
    assert set(rows) == {"web1", "web2"}  # web3 left the inventory
    assert rows["web1"]["value"] == 72.0
    assert rows["web1"]["updated_at"] == "2027-01-15T08:00:05Z"
    assert [host.host for host in read_host_states(sessions)] == ["web2", "web1"]
    normal = read_host_states(sessions, status="NORMAL", limit=5)
    assert [host.model_dump(mode="json") for host in normal] == [rows["web1"]]
    assert len(read_host_states(sessions, limit=1)) == 1


def test_writes_are_throttled_and_ticks_counted_in_between(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    publisher = LivePublisher(sessions, every=5.0, clock=clock)
    statuses = {"web1": NORMAL, "web2": NORMAL}
    publisher.publish(*fleet(statuses), 0.1)
    for step in range(1, 5):  # 1..4 s later: not due, same statuses
        clock.now = T0 + step
        publisher.publish(*fleet(statuses, value=50.0 + step, at=clock.now), 0.2)
    assert hosts_by_name(sessions)["web1"]["value"] == 32.0
    assert stats(sessions)["ticks_total"] == 1.0

    clock.now = T0 + 5.0
    publisher.publish(*fleet(statuses, value=60.0, at=clock.now), 0.3)
    assert hosts_by_name(sessions)["web1"]["value"] == 62.0
    written = stats(sessions)
    assert written["ticks_total"] == 6.0  # every tick counted, written with the next write
    assert written["tick_duration_seconds_last"] == pytest.approx(0.3)
    assert written["tick_duration_seconds_sum"] == pytest.approx(0.1 + 4 * 0.2 + 0.3)
    assert written["last_tick_timestamp_seconds"] == T0 + 5.0
    assert written["publish_interval_seconds"] == 5.0


def test_a_status_change_forces_a_write_of_the_changed_hosts(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    publisher = LivePublisher(sessions, clock=clock)
    publisher.publish(*fleet({"web1": NORMAL, "web2": NORMAL}), 0.1)

    clock.now = T0 + 1.0
    publisher.publish(*fleet({"web1": HIGH, "web2": NORMAL}, value=90.0, at=clock.now), 0.1)
    rows = hosts_by_name(sessions)
    assert rows["web1"]["status"] == "HIGH_CPU"
    assert rows["web1"]["value"] == 92.0
    assert rows["web2"]["value"] == 32.0  # unchanged hosts wait for the next full write
    assert stats(sessions)["ticks_total"] == 2.0

    clock.now = T0 + 2.0  # web1 stays high: nothing new to write
    publisher.publish(*fleet({"web1": HIGH, "web2": NORMAL}, value=95.0, at=clock.now), 0.1)
    assert hosts_by_name(sessions)["web1"]["value"] == 92.0


def test_recent_keeps_the_last_samples_only(sessions: sessionmaker[Session]) -> None:
    clock = Clock()
    LivePublisher(sessions, keep=30, clock=clock).publish(*fleet({"web1": NORMAL}, samples=50), 0.1)
    recent = hosts_by_name(sessions)["web1"]["recent"]
    assert len(recent) == 30
    assert recent[0] == [T0 - 29, 50.0]
    assert recent[-1] == [T0, 79.0]

    clock.now += 10
    LivePublisher(sessions, keep=0, clock=clock).publish(*fleet({"web1": NORMAL}), 0.1)
    assert hosts_by_name(sessions)["web1"]["recent"] == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def unreachable(sessions: sessionmaker[Session], tmp_path: Path) -> Iterator[Engine]:
    """An engine of the same backend that cannot connect (a missing folder, a closed port)."""
    if bind(sessions).dialect.name == "sqlite":
        url = f"sqlite:///{tmp_path / 'missing' / 'autosre.db'}"
    else:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/autosre"
    engine = create_engine(url)
    yield engine
    engine.dispose()


def test_a_store_outage_never_raises_is_logged_once_and_retried_on_the_timer(
    sessions: sessionmaker[Session], unreachable: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="autosre.live")
    attempts: list[int] = []
    event.listen(unreachable, "do_connect", lambda *_args: attempts.append(1))
    good = bind(sessions)
    sessions.configure(bind=unreachable)
    try:
        clock = Clock()
        publisher = LivePublisher(sessions, every=5.0, clock=clock)

        publisher.publish(*fleet({"web1": NORMAL}), 0.1)
        assert len(attempts) == 1
        clock.now = T0 + 1  # a status change in an outage waits for the timer
        publisher.publish(*fleet({"web1": HIGH}, at=clock.now), 0.1)
        assert len(attempts) == 1
        clock.now = T0 + 5
        publisher.publish(*fleet({"web1": HIGH}, at=clock.now), 0.1)
        assert len(attempts) == 2
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "live view not written" in warnings[0].getMessage()
        assert "[SQL:" not in warnings[0].getMessage()

        sessions.configure(bind=good)  # the store is back
        clock.now = T0 + 6  # not due yet: the next try is on the timer
        publisher.publish(*fleet({"web1": HIGH}, at=clock.now), 0.1)
        assert read_host_states(sessions) == []
        clock.now = T0 + 10
        publisher.publish(*fleet({"web1": HIGH}, at=clock.now), 0.1)
        assert hosts_by_name(sessions)["web1"]["status"] == "HIGH_CPU"
        assert stats(sessions)["ticks_total"] == 5.0
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO] == [
            "live view written again after 2 failed attempt(s)"
        ]
    finally:
        sessions.configure(bind=good)


def test_two_thousand_hosts_are_one_transaction_of_a_few_statements(
    sessions: sessionmaker[Session],
) -> None:
    engine = bind(sessions)
    statements: list[tuple[str, bool, int]] = []
    commits: list[int] = []

    def executed(
        _conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool
    ) -> None:
        verb = statement.split(maxsplit=1)[0].upper()
        statements.append((verb, many, len(params) if many else 1))

    event.listen(engine, "before_cursor_execute", executed)
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    try:
        statuses = {f"host{i:04d}": HIGH if i % 10 == 0 else NORMAL for i in range(2000)}
        LivePublisher(sessions, clock=Clock()).publish(*fleet(statuses, samples=30), 0.1)
    finally:
        event.remove(engine, "before_cursor_execute", executed)
    assert commits == [1]
    assert statements == [("INSERT", True, 2000), ("DELETE", False, 1), ("INSERT", True, 9)]
    assert len(read_host_states(sessions)) == 2000
    assert len(read_host_states(sessions, status="HIGH_CPU")) == 200


def test_the_engine_publishes_at_the_end_of_each_tick(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    engine = lab.engine()
    try:
        engine.publisher = LivePublisher(lab.sessions, every=60.0)
        lab.values["web3"] = None
        engine.tick()
        engine.tick()
        rows = hosts_by_name(lab.sessions)
        assert {host: row["status"] for host, row in rows.items()} == {
            "web1": "NORMAL",
            "web2": "NORMAL",
            "web3": "UNKNOWN",
        }
        assert rows["web1"]["recent"][-1][1] == 20.0
        assert stats(lab.sessions)["ticks_total"] == 1.0  # the second tick is not due yet
        assert engine.publisher.ticks == 2
    finally:
        engine.shutdown()
        bind(lab.sessions).dispose()
