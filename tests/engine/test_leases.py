"""Run leases and host shares on the machine's real PostgreSQL: what replicas rely on to
never run twice on one host and to take a dead replica's hosts over."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import HostBusyError
from engine.lease.registry import Registry
from engine.lease.run_leases import DbHostLocks
from engine.lease.share import LeasedShare
from engine.store import open_store
from engine.store.leases import HostLeaseRow, ReplicaRow, RunLeaseRow
from tests.fixtures.postgres import own_database

HOSTS = [f"web{n:02d}" for n in range(30)]


@pytest.fixture
def pg(postgres_template: str) -> Iterator[sessionmaker[Session]]:
    with own_database(postgres_template, "lease") as url:
        factory = open_store(url)
        yield factory
        factory.kw["bind"].dispose()


def _locks(pg: sessionmaker[Session], owner: str, ttl: float = 30.0) -> DbHostLocks:
    return DbHostLocks(pg, owner=owner, ttl=ttl)


def _until(check: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_run_leases_are_all_or_none_and_name_the_holder(pg: sessionmaker[Session]) -> None:
    a, b = _locks(pg, "a@x/1/t"), _locks(pg, "b@y/2/t")
    try:
        held = a.acquire(["web01", "web02"], "engine run r1", hold_for=60)
        with pytest.raises(HostBusyError) as busy:
            b.acquire(["web03", "web02"], "manual run r2 by ann")
        assert busy.value.host == "web02" and busy.value.holder == "engine run r1"
        # All or none: web03 was not left leased by the refused attempt.
        b.acquire(["web03"], "manual run r3 by ann").release()
        held.release()
        again = b.acquire(["web01", "web02"], "manual run r4 by ann")
        assert again.hosts == ("web01", "web02")
        with pg() as session:
            owners = set(session.scalars(select(RunLeaseRow.owner)))
        assert owners == {"b@y/2/t"}
    finally:
        a.close()
        b.close()


def test_a_lease_outlives_a_dead_owner_until_its_run_could_have_ended(
    pg: sessionmaker[Session],
) -> None:
    """An owner killed mid-run may leave its ansible-playbook running: the host stays taken
    until both the TTL and the run's own deadline have passed, then it is free."""
    dead, other = _locks(pg, "dead@elsewhere/1/t", ttl=1.0), _locks(pg, "other@y/2/t")
    try:
        dead.acquire(["web01"], "engine run r1", hold_for=3.0)
        dead.close()  # its heartbeat stops: as if its machine went away
        started = time.monotonic()
        time.sleep(1.5)  # past the TTL, not past the run's deadline
        with pytest.raises(HostBusyError):
            other.acquire(["web01"], "engine run r2")
        assert _until(lambda: _free(other, "web01"), 6.0)
        assert time.monotonic() - started >= 2.9
    finally:
        other.close()


def _free(locks: DbHostLocks, host: str) -> bool:
    try:
        locks.acquire([host], "engine run r2")
    except HostBusyError:
        return False
    return True


def test_the_heartbeat_keeps_a_live_owners_lease(pg: sessionmaker[Session]) -> None:
    live, other = _locks(pg, "live@x/1/t", ttl=1.0), _locks(pg, "other@y/2/t")
    try:
        held = live.acquire(["web01"], "engine run r1")
        for _ in range(6):  # three TTLs
            time.sleep(0.5)
            with pytest.raises(HostBusyError):
                other.acquire(["web01"], "engine run r2")
        held.release()
        other.acquire(["web01"], "engine run r2")
    finally:
        live.close()
        other.close()


def test_reclaim_takes_only_what_a_dead_process_of_this_machine_held(
    pg: sessionmaker[Session],
) -> None:
    import socket

    here = socket.gethostname()
    dead_here, alive_elsewhere = f"r1@{here}/999999999/t", "r1@another-machine/4242/t"
    others = [_locks(pg, owner) for owner in (dead_here, alive_elsewhere)]
    for locks, host in zip(others, ("web01", "web02"), strict=True):
        locks.acquire([host], f"engine run of {locks.owner}", hold_for=600)
        locks.close()  # no heartbeat: the holder is gone (or far away)
    mine = _locks(pg, "r1@x/1/t")
    try:
        with pytest.raises(HostBusyError):
            mine.acquire(["web01"], "engine run r9")  # a plain acquire never reclaims
        mine.acquire(["web01"], "engine reconciling run r1", reclaim=True).release()
        with pytest.raises(HostBusyError):
            mine.acquire(["web02"], "engine reconciling run r2", reclaim=True)
    finally:
        mine.close()


def _share(pg: sessionmaker[Session], name: str, ttl: float = 2.0) -> LeasedShare:
    return LeasedShare(Registry(pg, name, ttl=ttl), HOSTS)


def _settle(shares: list[LeasedShare], rounds: int = 8) -> None:
    for _ in range(rounds):
        for share in shares:
            share.sync(force=True)


def test_replicas_split_the_fleet_and_take_a_dead_ones_hosts(pg: sessionmaker[Session]) -> None:
    shares = [_share(pg, f"r{n}") for n in range(3)]
    try:
        _settle(shares)
        held = [share.hosts() for share in shares]
        assert [len(h) for h in held] == [10, 10, 10]
        assert frozenset().union(*held) == frozenset(HOSTS)
        with pg() as session:
            rows = {r.id: r.hosts for r in session.scalars(select(ReplicaRow))}
        assert rows == {"r0": 10, "r1": 10, "r2": 10}
        # r2 dies: no heartbeat, no hand-back. Its hosts stay its own until the TTL passes.
        dead = shares.pop()
        dead._stop.set()
        _settle(shares, 2)
        assert sum(len(s.hosts()) for s in shares) == 20
        time.sleep(2.2)
        _settle(shares)
        taken = [share.hosts() for share in shares]
        assert [len(h) for h in taken] == [15, 15] and not taken[0] & taken[1]
        assert frozenset().union(*taken) == frozenset(HOSTS)
    finally:
        for share in shares:
            share.close()


def test_a_clean_stop_hands_hosts_over_at_once_and_a_busy_host_is_kept(
    pg: sessionmaker[Session],
) -> None:
    first = _share(pg, "first", ttl=30.0)
    try:
        first.sync(force=True)
        assert first.hosts() == frozenset(HOSTS)  # alone: the whole fleet
        second = _share(pg, "second", ttl=30.0)
        second.sync(force=True)
        assert second.hosts() == frozenset()  # all taken, none lapsed
        busy = sorted(first.hosts())[:20]  # incidents in hand: never handed over
        change = first.sync(busy, force=True)
        assert len(first.hosts()) == 20 and set(busy) <= first.hosts()
        assert len(change.lost) == 10
        second.sync(force=True)
        assert second.hosts() == frozenset(HOSTS) - first.hosts()
        second.close()  # a clean stop: its hosts are free now, not in 30 s
        first.sync(force=True)
        assert first.hosts() == frozenset(HOSTS)
    finally:
        first.close()


def test_a_replica_that_cannot_renew_stops_acting_before_its_leases_lapse(
    pg: sessionmaker[Session],
) -> None:
    share = _share(pg, "lonely", ttl=1.0)
    try:
        share.sync(force=True)
        assert share.hosts() == frozenset(HOSTS)
        share._stop.set()  # no more renewals (as when the store is away)
        time.sleep(0.9)  # before the lease lapses in the store (1 s), it acts on nothing
        assert share.hosts() == frozenset()
        with pg.begin() as session:  # another replica took one over
            session.execute(
                update(HostLeaseRow)
                .where(HostLeaseRow.host == "web00")
                .values(replica="other", expires_at=datetime.now(UTC) + timedelta(minutes=1))
            )
        change = share.sync(force=True)
        assert change.lost == {"web00"}
        assert share.hosts() == frozenset(HOSTS) - {"web00"}
    finally:
        share.close()


def test_four_hosts_on_three_replicas_settle_two_one_one(pg: sessionmaker[Session]) -> None:
    shares = [
        LeasedShare(Registry(pg, f"r{n}", ttl=30.0), ["web1", "web2", "web3", "web4"])
        for n in range(3)
    ]
    try:
        _settle(shares)
        held = [share.hosts() for share in shares]
        assert sorted(len(h) for h in held) == [1, 1, 2]
        assert frozenset().union(*held) == {"web1", "web2", "web3", "web4"}
        _settle(shares)  # and stays there
        assert [share.hosts() for share in shares] == held
    finally:
        for share in shares:
            share.close()
