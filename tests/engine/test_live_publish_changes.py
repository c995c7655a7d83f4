"""The live view of a large fleet: changed hosts at once, the rest refreshed in turn.

``sessions`` (tests/engine/conftest.py) is a migrated store: a SQLite file, then a
PostgreSQL schema of its own. The clock is the test's, so every write is exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from engine.read.hosts import read_host_states
from engine.record.live import LivePublisher
from tests.engine.test_live import HIGH, NORMAL, T0, Clock, fleet, stats

HOSTS = [f"web{i:02d}" for i in range(30)]


def updated(sessions: sessionmaker[Session]) -> dict[str, float]:
    """When each host's row was last written (UNIX seconds)."""
    return {row.host: row.updated_at.timestamp() for row in read_host_states(sessions)}


@contextmanager
def statements(sessions: sessionmaker[Session]) -> Iterator[list[str]]:
    """The verbs of the SQL statements run inside the block."""
    engine: Engine = sessions.kw["bind"]
    seen: list[str] = []

    def executed(*args: Any) -> None:
        seen.append(str(args[2]).split(maxsplit=1)[0].upper())

    event.listen(engine, "before_cursor_execute", executed)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", executed)


def test_a_large_fleet_writes_changes_at_once_and_refreshes_the_rest_in_turn(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    publisher = LivePublisher(sessions, every=5.0, refresh=15.0, min_rows=10, clock=clock)
    statuses = dict.fromkeys(HOSTS, NORMAL)
    publisher.publish(*fleet(statuses), 0.1)  # the first write: every host
    assert set(updated(sessions).values()) == {T0}

    # A second later web07 turns high: its row and the counters are written, nothing else.
    clock.now = T0 + 1
    statuses["web07"] = HIGH
    publisher.publish(*fleet(statuses, value=90.0, at=clock.now), 0.1)
    rows = {row.host: row for row in read_host_states(sessions)}
    assert rows["web07"].status == "HIGH_CPU"
    assert rows["web07"].value == 92.0
    assert {h for h, at in updated(sessions).items() if at == T0 + 1} == {"web07"}
    assert stats(sessions)["ticks_total"] == 2.0
    assert stats(sessions)["last_tick_timestamp_seconds"] == T0 + 1

    # Nothing changed and nothing is due: not one statement.
    clock.now = T0 + 2
    with statements(sessions) as ran:
        publisher.publish(*fleet(statuses, value=91.0, at=clock.now), 0.1)
    assert ran == []

    # On the timer: the counters, and the next slice of the fleet (at least min_rows).
    written_at = []
    for step in range(1, 5):
        clock.now = T0 + 1 + 5 * step
        publisher.publish(*fleet(statuses, value=40.0 + step, at=clock.now), 0.1)
        fresh = {h for h, at in updated(sessions).items() if at == clock.now}
        assert len(fresh) == 10, step
        written_at.append(fresh)
        assert stats(sessions)["ticks_total"] == 3.0 + step
        assert stats(sessions)["last_tick_timestamp_seconds"] == clock.now
    # Three slices cover the fleet once, without overlap; the fourth starts it again.
    assert set().union(*written_at[:3]) == set(HOSTS)
    assert written_at[3] == written_at[0]
    # So every host's value is at most `refresh` seconds old.
    assert all(clock.now - at <= 15.0 for at in updated(sessions).values())
    assert read_host_states(sessions, hosts=["web00"])[0].value is not None


def test_a_host_that_leaves_is_deleted_without_a_full_write(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    publisher = LivePublisher(sessions, every=5.0, refresh=60.0, min_rows=2, clock=clock)
    statuses = dict.fromkeys(HOSTS, NORMAL)
    publisher.publish(*fleet(statuses), 0.1)
    clock.now = T0 + 1
    del statuses["web29"]
    publisher.publish(*fleet(statuses, at=clock.now), 0.1)
    assert set(updated(sessions)) == set(HOSTS) - {"web29"}
    assert set(updated(sessions).values()) == {T0}  # the others were not rewritten


def test_a_small_fleet_is_still_written_whole_on_the_timer(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    publisher = LivePublisher(sessions, every=5.0, clock=clock)  # min_rows 1000 > 30 hosts
    statuses = dict.fromkeys(HOSTS, NORMAL)
    publisher.publish(*fleet(statuses), 0.1)
    clock.now = T0 + 5
    publisher.publish(*fleet(statuses, value=50.0, at=clock.now), 0.1)
    assert set(updated(sessions).values()) == {T0 + 5}
    assert {row.value for row in read_host_states(sessions)} == {52.0}
