"""Incidents: the one lister (filters, free text, keyset pages), one incident's full story,
and which hosts have an incident in flight.

Every list is a keyset page on an indexed column, so it stays fast on 100,000 incidents,
on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from engine.incident.life import ACTIVE_STATUSES
from engine.read.approvals import approval_model
from engine.read.models import Decision, Incident, IncidentDetail, IncidentPage, Run, TimelineEntry
from engine.read.paging import read_page
from engine.store import models as store

LIKE_ESCAPE = "\\"


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (``%``, ``_`` and the escape escaped)."""
    for char in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(char, LIKE_ESCAPE + char)
    return text


def list_incidents(
    sessions: sessionmaker[Session],
    *,
    status: str | Collection[str] | None = None,
    host: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> IncidentPage:
    """One page of incidents, newest first, and the ``before_id`` of the next page (or None).

    ``status`` is one status or several; ``since`` is inclusive and ``until`` exclusive (on
    opened_at); ``q`` matches host or summary, case-insensitively, as a plain substring.
    """
    row = store.Incident
    query = select(row)
    if isinstance(status, str):
        query = query.where(row.status == str(status))
    elif status is not None:
        query = query.where(row.status.in_([str(s) for s in status]))
    if host:
        query = query.where(row.host == host)
    if kind:
        query = query.where(row.kind == kind)
    if since is not None:
        query = query.where(row.opened_at >= since)
    if until is not None:
        query = query.where(row.opened_at < until)
    if q:
        pattern = f"%{escape_like(q)}%"
        query = query.where(
            or_(
                row.host.ilike(pattern, escape=LIKE_ESCAPE),
                row.summary.ilike(pattern, escape=LIKE_ESCAPE),
            )
        )
    with sessions() as session:
        rows, next_before = read_page(session, query, row.id, limit=limit, before_id=before_id)
        items = [Incident.from_row(r) for r in rows]
    return IncidentPage(items=items, next_before=next_before)


def incident_detail(
    sessions: sessionmaker[Session], incident_id: int, *, now: datetime | None = None
) -> IncidentDetail | None:
    """One incident with its decisions, approvals (as of now), runs and timeline, or None."""
    at = datetime.now(tz=UTC) if now is None else now
    with sessions() as session:
        incident = session.get(store.Incident, incident_id)
        if incident is None:
            return None
        decisions = session.scalars(
            select(store.Decision)
            .where(store.Decision.incident_id == incident_id)
            .order_by(store.Decision.id)
        ).all()
        run_ids = [d.run_id for d in decisions if d.run_id is not None]
        runs = session.scalars(
            select(store.PlaybookRun)
            .where(store.PlaybookRun.id.in_(run_ids))
            .order_by(store.PlaybookRun.id)
        ).all()
        events = session.scalars(
            select(store.Event)
            .where(store.Event.incident_id == incident_id)
            .order_by(store.Event.at, store.Event.id)
        ).all()
        approvals = session.scalars(
            select(store.ApprovalRow)
            .where(store.ApprovalRow.incident_id == incident_id)
            .order_by(store.ApprovalRow.id)
        ).all()
        return IncidentDetail.from_row(
            incident,
            decisions=[Decision.from_row(d, at=d.created_at) for d in decisions],
            approvals=[approval_model(a, at) for a in approvals],
            runs=[Run.from_row(r) for r in runs],
            timeline=[TimelineEntry.from_row(e) for e in events],
        )


def active_incident_status(sessions: sessionmaker[Session]) -> dict[str, str]:
    """Host -> the status of its newest active incident (at most one row per active host)."""
    row = store.Incident
    query = (
        select(row.host, row.status, func.max(row.id))
        .where(row.status.in_(ACTIVE_STATUSES))
        .group_by(row.host, row.status)
    )
    newest: dict[str, tuple[int, str]] = {}
    with sessions() as session:
        for host, status, top in session.execute(query):
            if host not in newest or top > newest[host][0]:
                newest[host] = (int(top), str(status))
    return {host: status for host, (_, status) in newest.items()}
