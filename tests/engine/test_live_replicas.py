"""The live view written by several replicas on one store: each writes its own hosts and
its own counters, none deletes another's rows, and the counters read back added up."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from engine.read.hosts import read_host_states
from engine.record.live import LivePublisher
from tests.engine.test_live import NORMAL, T0, Clock, fleet, stats


def rows(sessions: sessionmaker[Session]) -> set[str]:
    return {row.host for row in read_host_states(sessions)}


def test_replicas_keep_each_others_rows_and_add_up_their_ticks(
    sessions: sessionmaker[Session],
) -> None:
    clock = Clock()
    first = LivePublisher(sessions, every=5.0, refresh=10.0, replica="r0", clock=clock)
    second = LivePublisher(sessions, every=5.0, refresh=10.0, replica="r1", clock=clock)
    mine = {"web1": NORMAL, "web2": NORMAL, "web3": NORMAL}
    theirs = {"web4": NORMAL, "web5": NORMAL}
    first.publish(*fleet(mine), 0.2)
    second.publish(*fleet(theirs), 0.4)
    clock.now = T0 + 6  # both due for a full write: neither prunes the other's hosts
    first.publish(*fleet(mine, at=clock.now), 0.2)
    assert rows(sessions) == {"web1", "web2", "web3", "web4", "web5"}
    # web3 is handed over to r1: r0 stops publishing it, and does not delete its row.
    del mine["web3"]
    theirs["web3"] = NORMAL
    clock.now = T0 + 7
    first.publish(*fleet(mine, at=clock.now), 0.2)
    assert "web3" in rows(sessions)
    second.publish(*fleet(theirs, at=clock.now), 0.4)
    read = stats(sessions)
    assert read["ticks_total"] == 3 + 2  # r0's three ticks and r1's two
    assert read["tick_duration_seconds_sum"] == 3 * 0.2 + 2 * 0.4
    assert read["last_tick_timestamp_seconds"] == T0 + 7
    # A host no replica publishes any more (it left the inventory) goes after three
    # refresh rounds without a write.
    del theirs["web5"]
    for later in (20, 30, 45):
        clock.now = T0 + later
        first.publish(*fleet(mine, at=clock.now), 0.2)
        second.publish(*fleet(theirs, at=clock.now), 0.4)
    assert rows(sessions) == {"web1", "web2", "web3", "web4"}


def test_the_longest_replica_id_allowed_is_published(sessions: sessionmaker[Session]) -> None:
    # AUTOSRE_REPLICA_ID takes up to 100 characters, and each stat is stored as
    # "<stat>@<replica>" (migration 0015; PostgreSQL refused it at 64 characters).
    longest = "r" * 100
    clock = Clock()
    LivePublisher(sessions, every=5.0, refresh=10.0, replica=longest, clock=clock).publish(
        *fleet({"web1": NORMAL}), 0.2
    )
    assert rows(sessions) == {"web1"}
    assert stats(sessions)["ticks_total"] == 1
