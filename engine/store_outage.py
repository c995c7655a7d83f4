"""Store outages: which errors say the store cannot be reached, and telling an outage once.

A database that is down, restarting or out of disk fails every write the same way; the
engine says so in one line when the outage begins and in one when the store answers
again, never with a traceback per attempt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from engine.record.live import describe_error

# PEP 249 names every driver's errors alike (sqlite3, psycopg): these two mean the
# database could not be reached or could not do the work, not that the statement is wrong.
DRIVER_OUTAGES = frozenset({"OperationalError", "InterfaceError"})


def store_error(exc: BaseException) -> BaseException | None:
    """The error in ``exc``'s chain (itself, its cause or context) that says the store
    cannot be reached or written; None when the failure is something else (a bug)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OperationalError | InterfaceError):
            return current
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return current  # a connection that broke mid-statement, whatever its class
        if type(current).__name__ in DRIVER_OUTAGES:
            return current
        current = current.__cause__ or current.__context__
    return None


def describe(exc: BaseException) -> str:
    """One short line on a store error: the driver's own first line (no SQL, no values)."""
    return describe_error(exc)


def store_label(sessions: sessionmaker[Session]) -> str:
    """The store's URL as it may be shown: without its password."""
    return str(sessions.kw["bind"].url.render_as_string(hide_password=True))


class StoreOutage:
    """One store's outage, told once: ``failed`` is True for its first failure only and
    ``answered`` gives its length when it just ended."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()  # the tick and the runs' threads both write
        self._since: float | None = None
        self.failures = 0  # failures during the current outage

    @property
    def down(self) -> bool:
        """True from a failure until the store answers again."""
        return self._since is not None

    def failed(self) -> bool:
        """Note a failure; True only for the first one of an outage."""
        with self._lock:
            self.failures += 1
            if self._since is not None:
                return False
            self._since = self.clock()
            return True

    def answered(self) -> tuple[float, int] | None:
        """Note an answer; (how long the outage lasted, how many failures it saw) when one
        just ended, else None."""
        with self._lock:
            since, self._since = self._since, None
            failures, self.failures = self.failures, 0
        return None if since is None else (self.clock() - since, failures)
