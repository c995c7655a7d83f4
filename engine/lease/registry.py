"""The ``replicas`` table: each engine process's heartbeat, read for the fair share of hosts
and shown by /healthz and /metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.record.live import describe_error
from engine.store.leases import ReplicaRow

log = logging.getLogger("autosre.lease")
FORGET_AFTER = timedelta(days=1)  # a replica silent this long leaves the list


class Registry:
    """One replica's row: its heartbeat, its hosts and its run leases."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        replica: str,
        *,
        ttl: float = 30.0,
        run_leases: Callable[[], int] = lambda: 0,
    ) -> None:
        self.sessions = sessions
        self.replica = replica
        self.ttl = ttl
        self.run_leases = run_leases
        # PostgreSQL's clock rules when replicas on several machines compare heartbeats;
        # SQLite is one machine's, and has no now() of the right type.
        bind = sessions.kw["bind"]
        self._db_clock = bind.dialect.name == "postgresql"
        self._joined = False

    def now(self) -> Any:
        """The clock leases are measured by (an SQL expression on PostgreSQL)."""
        return func.now() if self._db_clock else datetime.now(UTC)

    def beat(self, session: Session, *, hosts: int) -> None:
        """Say this replica is alive, with how many hosts and run leases it holds."""
        now = self.now()
        values: dict[str, Any] = {
            "heartbeat_at": now,
            "hosts": hosts,
            "run_leases": self.run_leases(),
            "ttl": self.ttl,
        }
        if not self._joined:
            values["started_at"] = now
        found = session.scalars(
            update(ReplicaRow)
            .where(ReplicaRow.id == self.replica)
            .values(**values)
            .returning(ReplicaRow.id)
        ).all()
        if not found:
            values["started_at"] = now
            session.execute(insert(ReplicaRow).values(id=self.replica, **values))
        if not self._joined:
            # Rows of replicas long gone are forgotten when one joins.
            session.execute(
                delete(ReplicaRow).where(ReplicaRow.heartbeat_at < self._ago(FORGET_AFTER))
            )
        self._joined = True

    def live(self, session: Session) -> dict[str, int]:
        """The replicas that beat within the TTL (this one included once it has), with the
        hosts each held at its last beat."""
        rows = session.execute(
            select(ReplicaRow.id, ReplicaRow.hosts).where(
                ReplicaRow.heartbeat_at >= self._ago(timedelta(seconds=self.ttl))
            )
        )
        return {str(name): int(hosts) for name, hosts in rows}

    def leave(self) -> None:
        """Remove this replica's row (a clean stop); a store that is away keeps it, stale."""
        try:
            with self.sessions.begin() as session:
                session.execute(delete(ReplicaRow).where(ReplicaRow.id == self.replica))
        except SQLAlchemyError as exc:
            log.warning(
                "replica %s: not removed from the registry (%s)", self.replica, describe_error(exc)
            )

    def _ago(self, span: timedelta) -> Any:
        return self.now() - span
