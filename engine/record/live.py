"""The engine's live view: every host's latest state and the tick counters, for the UI and /metrics.

The engine process owns these rows; the web UI reads them through engine/read (hosts.py,
engine_stats.py). Writes are bulk upserts, throttled so a fleet of thousands of hosts
costs one transaction every few seconds, and for a large fleet only a slice of its rows.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.dml import Insert

from engine.store.models import Base, EngineStat, HostStateRow
from engine.timeutil import to_dt
from engine.types import HostState, HostStatus, Sample

log = logging.getLogger("autosre.live")

HOSTS: Table = Base.metadata.tables[HostStateRow.__tablename__]
STATS: Table = Base.metadata.tables[EngineStat.__tablename__]

# The names under which the engine's counters are stored in engine_stats.
TICKS_TOTAL = "ticks_total"
TICK_DURATION_LAST = "tick_duration_seconds_last"
TICK_DURATION_SUM = "tick_duration_seconds_sum"
LAST_TICK = "last_tick_timestamp_seconds"
PUBLISH_EVERY = "publish_interval_seconds"  # how stale the stats may be, for /healthz
UNMATCHED_SERIES = "unmatched_series_last"  # series of the latest tick that matched no host
# The heartbeat: the last tick whose every metrics query was answered, the last write this
# publisher got into the store, and the writes it could not (told on the next one that works).
# At most 40 characters: "@<replica>" (at most 100) is appended, and a name holds 160.
METRICS_READ_OK = "last_read_ok_timestamp"
STORE_WRITE_OK = "last_write_ok_timestamp"
STORE_WRITE_FAILURES = "write_failures_total"


def describe_error(exc: BaseException, limit: int = 200) -> str:
    """A short, one-line account of a database error (no SQL, no parameters)."""
    # SQLAlchemy's message appends the statement and its parameters (host data):
    # the driver's own message says what went wrong.
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    text = lines[0].strip() if lines else ""
    summary = f"{type(cause).__name__}: {text}" if text else type(cause).__name__
    return summary[:limit]


def _upsert(dialect: str, table: Table, key: str) -> Insert:
    """INSERT ... ON CONFLICT (key) DO UPDATE every other column, for SQLite or PostgreSQL."""
    columns = [c.name for c in table.columns if c.name != key]
    if dialect == "postgresql":
        pg = postgresql.insert(table)
        return pg.on_conflict_do_update(
            index_elements=[key], set_={name: pg.excluded[name] for name in columns}
        )
    if dialect == "sqlite":
        lite = sqlite.insert(table)
        return lite.on_conflict_do_update(
            index_elements=[key], set_={name: lite.excluded[name] for name in columns}
        )
    raise ValueError(f"live view: no upsert for the {dialect} dialect (SQLite or PostgreSQL)")


class LivePublisher:
    """Publishes host states and tick counters; never raises into the tick.

    A host whose status changed is written at once; the tick counters every ``every``
    seconds. On the same timer the other hosts' rows (value, reason, samples) are
    refreshed: all of them while the fleet has at most ``min_rows`` hosts, else the next
    slice of the fleet in turn, sized so that every host is rewritten within ``refresh``
    seconds. A fleet of 10,000 hosts then costs a few thousand rows a tick, not all of them.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        every: float = 5.0,
        keep: int = 30,
        refresh: float = 30.0,
        min_rows: int = 1000,
        replica: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``replica``: this engine's name when replicas share the store; it publishes its
        own hosts and its own counters (named ``ticks_total@<replica>``, summed on read),
        and never deletes another replica's rows."""
        self.sessions = sessions
        self.replica = replica
        self.every = every
        self.keep = keep
        self.refresh = max(refresh, every)
        self.min_rows = min_rows
        self.clock = clock
        self.ticks = 0
        self.duration_sum = 0.0
        self.duration_last = 0.0
        self.last_tick: float | None = None
        self.written: dict[str, HostStatus] = {}  # status per host as last written
        self.full_at: float | None = None  # when every host was last written (or tried)
        self.stats_at: float | None = None  # when the counters were last written
        self.failures = 0  # consecutive failed writes; > 0 during an outage
        self.unmatched = 0
        self.read_ok_at: float | None = None  # the last tick every metrics query answered
        self.write_failures = 0  # failed writes since the engine started
        self._cursor = 0  # where the next rolling refresh starts, in the fleet's order

    def publish(
        self,
        states: Mapping[str, HostState],
        windows: Mapping[str, Sequence[Sample]],
        tick_duration: float,
        *,
        unmatched: int = 0,
        read_ok: bool = True,
    ) -> None:
        """Count the tick; write the hosts whose status changed, and on the timer the
        counters and the hosts due for a refresh (every host when the fleet is small).
        ``read_ok``: every metrics query of the tick was answered."""
        now = self.clock()
        self.unmatched = unmatched
        if read_ok:
            self.read_ok_at = now
        self.ticks += 1
        self.duration_sum += tick_duration
        self.duration_last = tick_duration
        self.last_tick = now
        if self.failures and self.full_at is not None and now - self.full_at < self.every:
            return  # in an outage, retry on the timer only: a down database must not slow ticks
        due = self.stats_at is None or now - self.stats_at >= self.every
        refreshed = self._due_slice(states, now) if due and not self.failures else None
        if refreshed is None and due:
            hosts, full = list(states), True
        else:
            changed = [h for h, s in states.items() if self.written.get(h) is not s.status]
            hosts, full = list(dict.fromkeys([*changed, *(refreshed or ())])), False
        gone = [] if full else [h for h in self.written if h not in states]
        if not (due or hosts or gone):
            return
        try:
            self._write(states, windows, hosts, now, prune=full, gone=gone)
        except Exception as exc:  # the tick must go on whatever the store does
            self._failed(exc, now)
            return
        if self.failures:
            log.info("live view written again after %d failed attempt(s)", self.failures)
            self.failures = 0
        self.stats_at = now
        if full:
            self.full_at = now
            self.written = {h: s.status for h, s in states.items()}
            return
        self.written.update((h, states[h].status) for h in hosts)
        for host in gone:
            del self.written[host]

    def _due_slice(self, states: Mapping[str, HostState], now: float) -> list[str] | None:
        """The hosts whose turn it is to be refreshed; None when it is every host's turn."""
        fleet = list(states)
        since = now - (self.stats_at if self.stats_at is not None else now)
        count = max(self.min_rows, math.ceil(len(fleet) * since / self.refresh))
        if self.full_at is None or not self.written or count >= len(fleet):
            return None
        start = self._cursor % len(fleet)
        self._cursor = start + count
        return fleet[start : start + count] + fleet[: max(0, start + count - len(fleet))]

    def _failed(self, exc: Exception, now: float) -> None:
        if not self.failures:
            log.warning(
                "live view not written (%s); retrying every %gs", describe_error(exc), self.every
            )
        self.failures += 1
        self.write_failures += 1
        # The next write must be a full one: what is on disk is unknown now.
        self.full_at = now
        self.stats_at = None
        self.written = {}

    def _write(
        self,
        states: Mapping[str, HostState],
        windows: Mapping[str, Sequence[Sample]],
        hosts: Sequence[str],
        now: float,
        *,
        prune: bool,
        gone: Sequence[str] = (),
    ) -> None:
        at = to_dt(now)
        keep = self.keep
        rows: list[dict[str, Any]] = []
        for host in hosts:
            state = states[host]
            window = windows.get(host, ())
            recent = window[-keep:] if keep > 0 else ()
            rows.append(
                {
                    "host": host,
                    "status": state.status.value,
                    "value": state.value,
                    "reason": state.reason,
                    "since": to_dt(state.since),
                    "sample_ts": to_dt(state.sample_ts) if state.sample_ts is not None else None,
                    "updated_at": at,
                    "recent": [(s.ts, s.value) for s in recent],
                }
            )
        suffix = f"@{self.replica}" if self.replica else ""
        stats = [
            {"name": f"{name}{suffix}", "value": float(value), "updated_at": at}
            for name, value in (
                (TICKS_TOTAL, self.ticks),
                (TICK_DURATION_LAST, self.duration_last),
                (TICK_DURATION_SUM, self.duration_sum),
                (LAST_TICK, now),
                (PUBLISH_EVERY, self.every),
                (UNMATCHED_SERIES, self.unmatched),
                (STORE_WRITE_OK, now),  # true once this transaction commits
                (STORE_WRITE_FAILURES, self.write_failures),
                *(() if self.read_ok_at is None else ((METRICS_READ_OK, self.read_ok_at),)),
            )
        ]
        with self.sessions() as session, session.begin():
            dialect = session.get_bind().dialect.name
            if rows:
                session.execute(_upsert(dialect, HOSTS, "host"), rows)
            if prune and self.replica:
                # Other replicas' rows are theirs: a row nobody refreshed for three rounds
                # is a host no replica holds, one that left the inventory.
                stale = to_dt(now - 3 * self.refresh)
                session.execute(delete(HOSTS).where(HOSTS.c.updated_at < stale))
            elif prune:
                # Every current host was just stamped with `at`: older rows are hosts that
                # left the inventory.
                session.execute(delete(HOSTS).where(HOSTS.c.updated_at < at))
            elif gone and not self.replica:  # a host handed over is its new holder's row
                session.execute(delete(HOSTS).where(HOSTS.c.host.in_(list(gone))))
            session.execute(_upsert(dialect, STATS, "name"), stats)
