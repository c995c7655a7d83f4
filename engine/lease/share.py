"""Which hosts this replica watches: all of them on one machine, or a fair share of the
fleet, leased in PostgreSQL, when several replicas share the store.

A replica heartbeats its row in ``replicas`` and renews its host leases every third of the
TTL, from a thread of its own, so a slow tick never loses them. At most that often, the
tick balances: a replica with more than its share (hosts / live replicas) lets the extra
quiet hosts go, one with less claims hosts nobody holds, or whose lease lapsed because
their replica died. Each replica ranks hosts by a hash of its own name and the host's, so
replicas claiming at once mostly ask for different hosts; a claim that loses a race simply
gets fewer this time. A replica acts on its hosts only while its leases are surely valid:
if it cannot renew (the store is away), it stops acting before they can lapse.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.lease.registry import Registry
from engine.record.live import describe_error
from engine.store.leases import HostLeaseRow

log = logging.getLogger("autosre.lease")
HOST_LEASES: Table = HostLeaseRow.__table__  # type: ignore[assignment]
CHUNK = 1000  # hosts per claim statement
SAFE = 0.8  # of the TTL: how long after a renewal this replica still trusts its leases


@dataclass(frozen=True, slots=True)
class ShareChange:
    """Hosts this replica took on, and hosts it no longer holds, since the last sync."""

    gained: frozenset[str] = frozenset()
    lost: frozenset[str] = frozenset()


class WholeFleet:
    """One replica on one machine (SQLite): every host is its own; the registry still says
    it is alive, for /healthz."""

    def __init__(self, registry: Registry, hosts: Iterable[str]) -> None:
        self.registry = registry
        self.replica = registry.replica
        self._all = frozenset(hosts)
        self._synced = False
        self._next = 0.0

    @property
    def everything(self) -> frozenset[str]:
        """The whole fleet, which this replica holds."""
        return self._all

    def hosts(self) -> frozenset[str]:
        """The hosts this replica may act on now."""
        return self._all

    def sync(self, keep: Collection[str] = (), *, force: bool = False) -> ShareChange:
        """The first call hands every host over; later ones only heartbeat."""
        if force or time.monotonic() >= self._next:
            self._next = time.monotonic() + self.registry.ttl / 3
            with self.registry.sessions.begin() as session:
                self.registry.beat(session, hosts=len(self._all))
        if self._synced:
            return ShareChange()
        self._synced = True
        return ShareChange(gained=self._all)

    def close(self) -> None:
        """Leave the registry (a clean stop is not a dead replica)."""
        self.registry.leave()


class LeasedShare:
    """A fair share of the fleet, leased in PostgreSQL's ``host_leases``."""

    def __init__(
        self,
        registry: Registry,
        hosts: Iterable[str],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.replica = registry.replica
        self.sessions: sessionmaker[Session] = registry.sessions
        self.ttl = registry.ttl
        self.clock = clock
        self._all = frozenset(hosts)
        self._rank = {host: _rank(self.replica, host) for host in self._all}
        self._mutex = threading.Lock()
        self._mine: frozenset[str] = frozenset()
        self._reported: frozenset[str] = frozenset()  # what the last sync handed the engine
        self._valid_until = 0.0
        self._next = 0.0
        self._failing = False
        self._generation = 0  # bumped by each sync: a renewal that raced one is not taken
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="host-leases", daemon=True)
        self._thread.start()

    def hosts(self) -> frozenset[str]:
        """The hosts this replica may act on now: none once its leases may have lapsed."""
        with self._mutex:
            return self._reported if self.clock() < self._valid_until else frozenset()

    def sync(self, keep: Collection[str] = (), *, force: bool = False) -> ShareChange:
        """Renew, then balance toward this replica's share, keeping the hosts in ``keep``
        (an incident in hand is never handed over); what changed for the engine."""
        if not force and self.clock() < self._next:
            return self._changes()
        self._next = self.clock() + self.ttl / 3
        started = self.clock()
        with self._mutex:
            self._generation += 1
        with self.sessions.begin() as session:
            mine = self._renew(session)
            live = self.registry.live(session)
            live[self.replica] = len(mine)
            taken = set(
                session.scalars(
                    select(HostLeaseRow.host).where(
                        HostLeaseRow.replica != self.replica,
                        HostLeaseRow.expires_at >= func.now(),
                    )
                )
            )
            target = _target(len(self._all), live, self.replica)
            if len(mine) > target:
                mine -= self._let_go(session, mine, keep, len(mine) - target)
            elif len(mine) < target:
                free = [h for h in self._all if h not in mine and h not in taken]
                free.sort(key=self._rank.__getitem__)
                mine |= self._claim(session, free[: target - len(mine)])
            self.registry.beat(session, hosts=len(mine))
        with self._mutex:
            self._mine = frozenset(mine)
            self._valid_until = started + self.ttl * SAFE
            self._failing = False
        return self._changes()

    def close(self) -> None:
        """Stop renewing and hand every host back at once (a clean stop is not a death:
        the other replicas need not wait for the TTL)."""
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            with self.sessions.begin() as session:
                session.execute(delete(HostLeaseRow).where(HostLeaseRow.replica == self.replica))
        except SQLAlchemyError as exc:
            log.warning("host leases: not handed back (%s); they lapse", describe_error(exc))
        self.registry.leave()

    def _changes(self) -> ShareChange:
        with self._mutex:
            mine = self._mine
            change = ShareChange(gained=mine - self._reported, lost=self._reported - mine)
            self._reported = mine
        return change

    def _renew(self, session: Session) -> set[str]:
        """Extend every lease this replica holds; the hosts it still holds."""
        return set(
            session.scalars(
                update(HostLeaseRow)
                .where(HostLeaseRow.replica == self.replica)
                .values(expires_at=func.now() + timedelta(seconds=self.ttl))
                .returning(HostLeaseRow.host)
            )
        )

    def _let_go(self, session: Session, mine: set[str], keep: Collection[str], n: int) -> set[str]:
        """Release up to ``n`` quiet hosts, the ones this replica ranks last."""
        spare = sorted((h for h in mine if h not in keep), key=self._rank.__getitem__)[-n:]
        spare.sort()  # locked in name order, as claims are
        for start in range(0, len(spare), CHUNK):
            chunk = spare[start : start + CHUNK]
            session.execute(
                delete(HostLeaseRow).where(
                    HostLeaseRow.replica == self.replica, HostLeaseRow.host.in_(chunk)
                )
            )
        if spare:
            log.info("handed %d host(s) over to the other replicas", len(spare))
        return set(spare)

    def _claim(self, session: Session, hosts: list[str]) -> set[str]:
        """Lease those of ``hosts`` nobody holds, or whose lease lapsed."""
        # Rows are locked in name order by every replica: two claiming at once (a fresh
        # store, both starting) wait for each other instead of deadlocking.
        hosts = sorted(hosts)
        now = func.now()
        got: set[str] = set()
        for start in range(0, len(hosts), CHUNK):
            values = [
                {
                    "host": host,
                    "replica": self.replica,
                    "acquired_at": now,
                    "expires_at": now + timedelta(seconds=self.ttl),
                }
                for host in hosts[start : start + CHUNK]
            ]
            stmt = insert(HOST_LEASES).values(values)
            upsert = stmt.on_conflict_do_update(
                index_elements=["host"],
                set_={
                    "replica": stmt.excluded.replica,
                    "acquired_at": now,
                    "expires_at": stmt.excluded.expires_at,
                },
                where=HOST_LEASES.c.expires_at < now,
            ).returning(HOST_LEASES.c.host)
            got.update(session.scalars(upsert))
        return got

    def _beat(self) -> None:
        """Between ticks: renew the leases and the heartbeat, so a slow tick loses nothing."""
        while not self._stop.wait(self.ttl / 3):
            started = self.clock()
            with self._mutex:
                generation = self._generation
            try:
                with self.sessions.begin() as session:
                    mine = self._renew(session)
                    self.registry.beat(session, hosts=len(mine))
            except SQLAlchemyError as exc:
                if not self._failing:  # the tick's guard warns of the outage itself
                    log.info(
                        "host leases: cannot renew (%s); acting on no host until they are",
                        describe_error(exc),
                    )
                self._failing = True
                continue
            with self._mutex:
                if generation == self._generation:  # else a sync's claims are newer
                    self._mine = frozenset(mine)
                    self._valid_until = started + self.ttl * SAFE
                self._failing = False


def _target(total: int, live: dict[str, int], me: str) -> int:
    """How many hosts this replica should hold: the ceiling of a fair share, or only its
    floor while another replica holds less than the floor, so that the hosts handed over
    go to the one short of them (4 hosts on 3 replicas settle as 2, 1, 1, not 2, 2, 0)."""
    high, low = math.ceil(total / len(live)), total // len(live)
    short = any(hosts < low for name, hosts in live.items() if name != me)
    return low if short else high


def _rank(replica: str, host: str) -> bytes:
    """This replica's preference for a host (rendezvous hashing)."""
    return hashlib.blake2b(f"{replica}\0{host}".encode(), digest_size=8).digest()
