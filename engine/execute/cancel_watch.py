"""Cancel requests for the runs of this process: one store query a second for all of them.

A person asks to cancel a run in the store (engine/record/run_cancel.py), so the request
reaches whichever process or replica runs it. Each process that runs playbooks (the
engine, the web UI, the CLI) shares one ``CancelWatch`` per store: while it has runs in
flight, a thread reads ``ident IN (...) AND cancel_requested_at IS NOT NULL`` once a
second and sets the cancel event of each run asked for; with none in flight it stops.
The executor polls that event (ansible-runner's cancel_callback, AWX's follow loop).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.store.models import PlaybookRun
from engine.store_outage import describe, store_error
from engine.timeutil import to_ts
from engine.types import RunResult

log = logging.getLogger("autosre.engine")
EVERY = 1.0  # seconds between two reads of the store


class RunCancel:
    """One run's cancel: ``event`` is set when a person asks for it (``by``, ``at``), or
    when its process stops (``stop``)."""

    def __init__(self, ident: str) -> None:
        self.ident = ident
        self.event = threading.Event()
        self.by: str | None = None
        self.at: float | None = None

    def request(self, by: str, at: float) -> None:
        """A person asked: the run stops at the executor's next poll."""
        if self.by is None:
            self.by, self.at = by, at
        self.event.set()

    def stop(self) -> None:
        """The process stops: the run stops too (nobody asked, so no name is given)."""
        self.event.set()

    def labelled(self, result: RunResult) -> RunResult:
        """The result, its error naming who canceled it when a person did."""
        if result.status != "canceled" or self.by is None:
            return result
        detail = f" ({result.error})" if result.error else ""
        return replace(result, error=f"canceled by {self.by}{detail}")


class CancelWatch:
    """Reads the cancel requests of every run in flight in this process, in one query."""

    def __init__(self, sessions: sessionmaker[Session], *, every: float = EVERY) -> None:
        self._sessions = sessions
        self._every = every
        self._runs: dict[str, RunCancel] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()  # set when the last run leaves: the thread ends now
        self._failing = False  # a store outage is told once, not every second

    def add(self, ident: str) -> RunCancel:
        """Watch run ``ident`` from now until ``remove(ident)``; its cancel."""
        cancel = RunCancel(ident)
        with self._lock:
            self._runs[ident] = cancel
            self._idle.clear()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="autosre-cancel-watch", daemon=True
                )
                self._thread.start()
        return cancel

    def remove(self, ident: str) -> RunCancel | None:
        """Stop watching run ``ident`` (it ended); its cancel, if it was watched."""
        with self._lock:
            found = self._runs.pop(ident, None)
            if not self._runs:
                self._idle.set()
            return found

    @contextmanager
    def watching(self, ident: str) -> Iterator[RunCancel]:
        """Watch run ``ident`` for as long as the block runs; its cancel is yielded."""
        try:
            yield self.add(ident)
        finally:
            self.remove(ident)

    def in_flight(self) -> list[str]:
        """The idents watched now."""
        with self._lock:
            return list(self._runs)

    def check(self) -> int:
        """Read the store once; set the event of each run a person asked to cancel (how many)."""
        with self._lock:
            runs = dict(self._runs)
        if not runs:
            return 0
        try:
            with self._sessions() as session:
                rows = session.execute(
                    select(
                        PlaybookRun.ident,
                        PlaybookRun.cancel_requested_by,
                        PlaybookRun.cancel_requested_at,
                    ).where(
                        PlaybookRun.ident.in_(runs),
                        PlaybookRun.cancel_requested_at.is_not(None),
                    )
                ).all()
        except Exception as exc:  # the store may be down: the runs go on, and we ask again
            self._outage(exc)
            return 0
        self._failing = False
        for ident, by, at in rows:
            cancel = runs[ident]
            if not cancel.event.is_set():
                log.info("run %s: %s asked to cancel it; stopping it", ident, by)
            cancel.request(by or "someone", to_ts(at) if at is not None else 0.0)
        return len(rows)

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._runs:
                    self._thread = None  # the next run starts a new thread
                    return
            self.check()
            self._idle.wait(self._every)

    def _outage(self, exc: Exception) -> None:
        if self._failing:
            return
        self._failing = True
        cause = store_error(exc)
        if cause is None:
            log.error("cannot read the runs' cancel requests", exc_info=exc)
        else:
            # The outage itself is told once, as a warning, by the tick (engine/tick_guard.py).
            log.info("cannot read the runs' cancel requests (%s); retrying", describe(cause))


_watches: weakref.WeakKeyDictionary[sessionmaker[Session], CancelWatch] = (
    weakref.WeakKeyDictionary()
)
_watches_lock = threading.Lock()


def watch_for(sessions: sessionmaker[Session]) -> CancelWatch:
    """This process's one watch over the store ``sessions`` opens (made on first use)."""
    with _watches_lock:
        found = _watches.get(sessions)
        if found is None:
            found = _watches[sessions] = CancelWatch(sessions)
        return found
