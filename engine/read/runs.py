"""Playbook runs: keyset pages newest first, one run by id or by ident, and a run's cancel
request (who asked to stop it, and when)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.read.models import ReadModel, Run, RunPage
from engine.read.paging import read_page
from engine.store.models import PlaybookRun


def list_runs(
    sessions: sessionmaker[Session], *, limit: int = 50, before_id: int | None = None
) -> RunPage:
    """One page of playbook runs, newest first, and the ``before_id`` of the next page."""
    with sessions() as session:
        rows, next_before = read_page(
            session, select(PlaybookRun), PlaybookRun.id, limit=limit, before_id=before_id
        )
        return RunPage(items=[Run.from_row(row) for row in rows], next_before=next_before)


def get_run(sessions: sessionmaker[Session], run_id: int) -> Run | None:
    """One playbook run, or None if no such id."""
    with sessions() as session:
        row = session.get(PlaybookRun, run_id)
        return None if row is None else Run.from_row(row)


def find_run(sessions: sessionmaker[Session], ident: str) -> Run | None:
    """The playbook run with this ident (``run-...``), or None."""
    with sessions() as session:
        row = session.scalar(select(PlaybookRun).where(PlaybookRun.ident == ident))
        return None if row is None else Run.from_row(row)


class RunCancelState(ReadModel):
    """A run's cancel request: who asked and when (both None: nobody has), and its status."""

    run_id: int
    ident: str
    status: str = Field(description="running (or staged) until the run stops: then canceled")
    cancel_requested_at: datetime | None
    cancel_requested_by: str | None


def cancel_state(sessions: sessionmaker[Session], run_id: int) -> RunCancelState | None:
    """Run ``run_id``'s cancel request and status, or None if no such id."""
    with sessions() as session:
        row = session.get(PlaybookRun, run_id)
        return None if row is None else RunCancelState.from_row(row, run_id=row.id)
