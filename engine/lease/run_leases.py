"""Run leases in PostgreSQL: the host locks of several replicas, and of runs by hand.

The same contract as the file locks of one machine (engine/execute/locks.py): all hosts or
none, HostBusyError naming the first busy one. A lease is renewed by its owner's heartbeat
and lapses once both its renewal (the TTL) and its run's own deadline have passed: an owner
that was killed may leave its ``ansible-playbook`` running until the run's timeout, and no
other replica may start on the host before then. The database's clock decides, so the
replicas' clocks need not agree.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import HostBusyError
from engine.lease.owner import dead_here
from engine.record.live import describe_error
from engine.store.leases import RunLeaseRow

log = logging.getLogger("autosre.lease")
LEASES: Table = RunLeaseRow.__table__  # type: ignore[assignment]  # a Table, typed loosely
CHUNK = 500  # hosts per statement: a batched run of hundreds of hosts is a few statements


class HeldLeases:
    """Run leases held on a set of hosts; release() frees them all."""

    def __init__(self, leases: DbHostLocks, hosts: tuple[str, ...]) -> None:
        self._leases = leases
        self._hosts = hosts

    @property
    def hosts(self) -> tuple[str, ...]:
        """The hosts held."""
        return self._hosts

    def release(self) -> None:
        """Free every lease (idempotent); one the store refuses now is retried by the
        heartbeat, and lapses at its deadline anyway."""
        hosts, self._hosts = self._hosts, ()
        if hosts:
            self._leases.release(hosts)


class DbHostLocks:
    """Non-blocking, all-or-nothing run leases on hosts, in the store's ``run_leases``."""

    def __init__(self, sessions: sessionmaker[Session], *, owner: str, ttl: float = 30.0) -> None:
        self.sessions = sessions
        self.owner = owner
        self.ttl = ttl
        self._mutex = threading.Lock()
        self._held: set[str] = set()
        self._unreleased: set[str] = set()  # released while the store was away
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def acquire(
        self, hosts: Iterable[str], holder: str, *, hold_for: float = 0.0, reclaim: bool = False
    ) -> HeldLeases:
        """Lease every host or none for ``hold_for`` seconds at least (the run's timeout);
        ``reclaim``: also take leases whose owner died on this machine (its leftovers are
        then settled by the caller, engine/reconcile.py)."""
        wanted = sorted(set(hosts))
        self._flush()  # a release the store missed while away goes first
        with self.sessions.begin() as session:
            got = self._take(session, wanted, holder, hold_for, only_free=True)
            if reclaim and len(got) < len(wanted):
                got |= self._reclaim(session, [h for h in wanted if h not in got], holder)
            busy = [host for host in wanted if host not in got]
            if busy:
                current = session.scalar(
                    select(RunLeaseRow.holder).where(RunLeaseRow.host == busy[0])
                )
                session.rollback()  # all or none
                raise HostBusyError(busy[0], current or "")
        with self._mutex:
            self._held.update(wanted)
            self._unreleased.difference_update(wanted)
        self._start()
        return HeldLeases(self, tuple(wanted))

    def _take(
        self,
        session: Session,
        hosts: list[str],
        holder: str,
        hold_for: float,
        *,
        only_free: bool,
        owners: Iterable[str] = (),
    ) -> set[str]:
        now = func.now()
        ttl = timedelta(seconds=self.ttl)
        hold = timedelta(seconds=max(hold_for, 0.0))
        row = LEASES
        got: set[str] = set()
        for start in range(0, len(hosts), CHUNK):
            values = [
                {
                    "host": host,
                    "owner": self.owner,
                    "holder": holder[:2000],
                    "acquired_at": now,
                    "expires_at": now + ttl,
                    "hold_until": now + hold,
                }
                for host in hosts[start : start + CHUNK]
            ]
            stmt = insert(row).values(values)
            free = (row.c.expires_at < now) & (row.c.hold_until < now)
            where = free if only_free else row.c.owner.in_(list(owners))
            upsert = stmt.on_conflict_do_update(
                index_elements=["host"],
                set_={name: stmt.excluded[name] for name in values[0] if name != "host"},
                where=where,
            ).returning(row.c.host)
            got.update(session.scalars(upsert))
        return got

    def _reclaim(self, session: Session, hosts: list[str], holder: str) -> set[str]:
        """Take the leases of ``hosts`` whose owner was a process of this machine that died."""
        owners = session.scalars(
            select(RunLeaseRow.owner).where(RunLeaseRow.host.in_(hosts)).distinct()
        ).all()
        dead = [owner for owner in owners if dead_here(owner)]
        if not dead:
            return set()
        return self._take(session, hosts, holder, 0.0, only_free=False, owners=dead)

    def release(self, hosts: Iterable[str]) -> None:
        """Free this owner's leases on ``hosts``."""
        hosts = set(hosts)
        with self._mutex:
            self._held.difference_update(hosts)
            self._unreleased.update(hosts)
        self._flush()

    def held(self) -> int:
        """How many leases this process holds now."""
        with self._mutex:
            return len(self._held)

    def renew(self) -> None:
        """Release what could not be released, and extend every lease this owner holds."""
        self._flush()
        with self._mutex:
            held = len(self._held)
        if not held:
            return
        try:
            with self.sessions.begin() as session:
                renewed = len(
                    session.scalars(
                        update(RunLeaseRow)
                        .where(RunLeaseRow.owner == self.owner)
                        .values(expires_at=func.now() + timedelta(seconds=self.ttl))
                        .returning(RunLeaseRow.host)
                    ).all()
                )
        except SQLAlchemyError as exc:
            self._failed(exc)
            return
        self._failing = False
        if renewed < held:
            log.error(
                "run leases: %d of %d were lost while the store was away", held - renewed, held
            )

    def close(self) -> None:
        """Stop the heartbeat (leases still held lapse at their TTL and deadline)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _flush(self) -> None:
        with self._mutex:
            hosts = sorted(self._unreleased)
        if not hosts:
            return
        try:
            with self.sessions.begin() as session:
                session.execute(
                    delete(RunLeaseRow).where(
                        RunLeaseRow.owner == self.owner, RunLeaseRow.host.in_(hosts)
                    )
                )
        except SQLAlchemyError as exc:
            self._failed(exc)
            return
        with self._mutex:
            self._unreleased.difference_update(hosts)

    def _failed(self, exc: BaseException) -> None:
        if not self._failing:  # once per outage (the tick's guard warns of it), not per beat
            log.info("run leases: the store is unreachable (%s); retrying", describe_error(exc))
        self._failing = True

    def _start(self) -> None:
        with self._mutex:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._beat, name="run-leases", daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            self.renew()
