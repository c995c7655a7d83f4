"""Read-side queries for the JSON API: keyset pages of incidents and runs, single rows.

Pages are newest first by id: ``before_id`` is the smallest id of the previous page. Each
page function reads ``limit + 1`` rows to tell whether another page follows, and returns
``(items, next_before)`` with ``next_before`` None on the last page.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.orm import Session, sessionmaker

from engine.read.queries import approval_dict, run_dict
from engine.store.models import ApprovalRow, HostStateRow, PlaybookRun
from engine.timeutil import iso
from engine.types import HostStatus

Page = tuple[list[dict[str, Any]], int | None]


def _page(items: list[dict[str, Any]], limit: int) -> Page:
    if len(items) > limit:
        items = items[:limit]
        return items, items[-1]["id"]
    return items, None


def runs_page(
    sessions: sessionmaker[Session], *, limit: int = 50, before_id: int | None = None
) -> Page:
    """Playbook runs newest first."""
    query = select(PlaybookRun).order_by(PlaybookRun.id.desc()).limit(limit + 1)
    if before_id is not None:
        query = query.where(PlaybookRun.id < before_id)
    with sessions() as session:
        return _page([run_dict(row) for row in session.scalars(query)], limit)


def get_run(sessions: sessionmaker[Session], run_id: int) -> dict[str, Any] | None:
    """One playbook run as a ``run_dict``, or None if no such id."""
    with sessions() as session:
        run = session.get(PlaybookRun, run_id)
        return None if run is None else run_dict(run)


def get_approval(
    sessions: sessionmaker[Session], approval_id: int, *, now: float | None = None
) -> dict[str, Any] | None:
    """One approval as an ``approval_dict`` (as of now), or None if no such id."""
    at = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)
    with sessions() as session:
        row = session.get(ApprovalRow, approval_id)
        return None if row is None else approval_dict(row, at)


def host_states_brief(
    sessions: sessionmaker[Session], *, limit: int | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    """``read_host_states`` without the ``recent`` samples: a tenth of the time for a fleet.

    Same order: high CPU first, then unknown, then normal; by host within each.
    """
    rank = case(
        (HostStateRow.status == HostStatus.HIGH_CPU.value, 0),
        (HostStateRow.status == HostStatus.UNKNOWN.value, 1),
        else_=2,
    )
    columns = (
        HostStateRow.host,
        HostStateRow.status,
        HostStateRow.value,
        HostStateRow.reason,
        HostStateRow.since,
        HostStateRow.sample_ts,
        HostStateRow.updated_at,
    )
    query = select(*columns).order_by(rank, HostStateRow.host)
    if status is not None:
        query = query.where(HostStateRow.status == status)
    if limit is not None:
        query = query.limit(limit)
    with sessions() as session:
        return [
            {
                "host": host,
                "status": state,
                "value": value,
                "reason": reason,
                "since": iso(since),
                "sample_ts": iso(sample_ts),
                "updated_at": iso(updated_at),
            }
            for host, state, value, reason, since, sample_ts, updated_at in session.execute(query)
        ]
