"""Failed sign-ins counted in the store, so limits hold across processes, replicas and restarts.

Three limits apply within one sliding window: failures for this (address, name), for this
address across all names (one password sprayed over many names), and for this name across
all addresses (distributed guessing). Flask-Limiter keeps its counters in memory, Redis,
Memcached or MongoDB and has no SQL storage backend; a table in the store (SQLite or
PostgreSQL) is what every web process and replica already shares.

Check-then-record is not atomic: a burst of concurrent attempts may pass the limit by the
number in flight, which the per-address and per-name limits still bound. The per-name limit
lets anyone lock a name out for a window; that is the price of stopping distributed guessing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, case, delete, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from engine.store.accounts import LoginFailure
from engine.timeutil import to_dt, to_ts

MAX_KEY_LENGTH = 64  # the column width; names and addresses come from the client


@dataclass(frozen=True, slots=True)
class LoginLimits:
    """How many failures each key may have within ``window`` seconds before it is refused."""

    per_address_and_name: int = 5
    per_address: int = 20
    per_name: int = 10
    window: float = 300.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """A sign-in refused before the password is checked: when to retry, and why."""

    retry_after: int  # whole seconds, at least 1
    reason: str


class LoginLimiter:
    """Counts failed sign-ins in the store and refuses keys over a limit."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        limits: LoginLimits,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessions = sessions
        self.limits = limits
        self._clock = clock  # wall time: other processes compare against the same rows

    def check(self, address: str, name: str) -> Refusal | None:
        """A Refusal when any limit is reached for this address or name, else None."""
        address, name = address[:MAX_KEY_LENGTH], name[:MAX_KEY_LENGTH]
        now = self._clock()
        scopes = self._scopes(address, name)
        counts = [func.coalesce(func.sum(case((where, 1), else_=0)), 0) for where, _, _ in scopes]
        recent = LoginFailure.at > to_dt(now - self.limits.window)
        with self.sessions() as session:
            totals = session.execute(
                select(*counts).where(
                    recent, or_(LoginFailure.address == address, LoginFailure.name == name)
                )
            ).one()
            waits = [
                (self._wait(session, where, recent, total - limit, now), reason)
                for (where, limit, reason), total in zip(scopes, totals, strict=True)
                if total >= limit
            ]
        if not waits:
            return None
        wait, reason = max(waits)
        return Refusal(retry_after=max(1, math.ceil(wait)), reason=reason)

    def failed(self, address: str, name: str) -> None:
        """Count one failed sign-in, and forget those older than the window."""
        now = self._clock()
        with self.sessions.begin() as session:
            session.execute(
                delete(LoginFailure).where(LoginFailure.at <= to_dt(now - self.limits.window))
            )
            session.add(
                LoginFailure(
                    at=to_dt(now), address=address[:MAX_KEY_LENGTH], name=name[:MAX_KEY_LENGTH]
                )
            )

    def succeeded(self, address: str, name: str) -> None:
        """Forget this (address, name)'s failures; other addresses' stay counted."""
        with self.sessions.begin() as session:
            session.execute(
                delete(LoginFailure).where(
                    LoginFailure.address == address[:MAX_KEY_LENGTH],
                    LoginFailure.name == name[:MAX_KEY_LENGTH],
                )
            )

    def _scopes(self, address: str, name: str) -> list[tuple[ColumnElement[bool], int, str]]:
        by_address = LoginFailure.address == address
        by_name = LoginFailure.name == name
        limits = self.limits
        return [
            (
                and_(by_address, by_name),
                limits.per_address_and_name,
                "Too many failed sign-ins for this name from your address.",
            ),
            (by_address, limits.per_address, "Too many failed sign-ins from your address."),
            (by_name, limits.per_name, "Too many failed sign-ins for this name."),
        ]

    def _wait(
        self,
        session: Session,
        where: ColumnElement[bool],
        recent: ColumnElement[bool],
        excess: int,
        now: float,
    ) -> float:
        # The scope is under its limit again once this many of its oldest failures age out.
        oldest = session.scalar(
            select(LoginFailure.at)
            .where(where, recent)
            .order_by(LoginFailure.at)
            .offset(excess)
            .limit(1)
        )
        return self.limits.window if oldest is None else to_ts(oldest) + self.limits.window - now
