"""A person asks to cancel a run in flight: the request is written to the store, where the
process running it (the engine, any replica, the web UI, the CLI) reads it within a second
(engine/execute/cancel_watch.py) and stops the run; its end is then recorded as canceled.

One conditional UPDATE, so a request never races the run's end: a run that ended is refused
with how it ended; a second request while the first one is pending changes nothing and
answers with the first (idempotent). Each accepted request is one timeline event on the run
and on each incident it works on (and their audit lines), naming who asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from engine.errors import InputError
from engine.record.events import Journal
from engine.record.runs import RUNNING_RUN, STAGED_RUN
from engine.store.models import Decision, PlaybookRun
from engine.timeutil import to_dt

CANCELABLE = (*RUNNING_RUN, STAGED_RUN)


class CancelError(InputError):
    """A cancel that cannot be asked for; ``status``: 404 no such run, 409 it has ended."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """A run's cancel request as the pages, the API and the CLI show it."""

    run_id: int
    ident: str
    status: str
    requested_at: datetime
    requested_by: str
    already: bool  # True: someone had asked before; this request changed nothing


def request_cancel(journal: Journal, run_id: int, *, by: str, at: float) -> CancelRequest:
    """Ask for run ``run_id`` to be canceled, as ``by``; CancelError when there is no such
    run (404) or it has ended (409, saying how)."""
    with journal.sessions() as session:
        asked = session.execute(
            update(PlaybookRun)
            .where(
                PlaybookRun.id == run_id,
                PlaybookRun.status.in_(CANCELABLE),
                PlaybookRun.cancel_requested_at.is_(None),
            )
            .values(cancel_requested_at=to_dt(at), cancel_requested_by=by)
            .execution_options(synchronize_session=False)
        )
        run = session.get(PlaybookRun, run_id, populate_existing=True)
        if run is None:
            raise CancelError(f"no run with id {run_id}", 404)
        if asked.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return _refused_or_pending(run)
        message = f"{by} asked to cancel run {run.ident} ({run.action} on {', '.join(run.hosts)})"
        events = [
            journal.add(
                session, at, "run_cancel_requested", message, run_id=run.id, data={"by": by}
            )
        ]
        for incident_id, host in session.execute(
            select(Decision.incident_id, Decision.host).where(Decision.run_id == run.id)
        ).all():
            events.append(
                journal.add(
                    session,
                    at,
                    "run_cancel_requested",
                    message,
                    host=host,
                    incident_id=incident_id,
                    run_id=run.id,
                )
            )
        journal.commit(session, events)
        return CancelRequest(run.id, run.ident, run.status, to_dt(at), by, already=False)


def _refused_or_pending(run: PlaybookRun) -> CancelRequest:
    """The pending request someone made before; CancelError (409) for a run that ended."""
    if run.status in CANCELABLE and run.cancel_requested_at is not None:
        by = run.cancel_requested_by or "someone"
        return CancelRequest(run.id, run.ident, run.status, run.cancel_requested_at, by, True)
    ended = f" at {run.ended_at.isoformat(timespec='seconds')}" if run.ended_at else ""
    raise CancelError(f"run {run.id} ({run.ident}) has already ended: {run.status}{ended}", 409)
