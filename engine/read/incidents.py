"""Incidents: the one lister (filters, free text, sorts, keyset pages) and its count, one
incident's full story, and which hosts have an incident in flight.

Every list is a keyset page, so it stays fast on 100,000 incidents, on SQLite and
PostgreSQL: by id alone (the API's and the dashboard's lists), or by (sort column, id) for
the web UI's sorts. A sorted page's cursor is the id of the previous page's last row; its
sort value is read from that row in the same query, so no value typed by a person is
compared as a cursor. Opened, host and kind never change once recorded; a status does,
so a row that changes status between two pages may move past the cursor (shown twice or
not at all), which every live keyset or offset list has too.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, Select, func, literal, or_, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from engine.incident.life import ACTIVE_STATUSES
from engine.read.approvals import approval_model
from engine.read.models import Decision, Incident, IncidentDetail, IncidentPage, Run, TimelineEntry
from engine.read.needs_you import needs_you_condition
from engine.read.paging import cut, read_page
from engine.store import models as store

LIKE_ESCAPE = "\\"
# The sorts a list may ask for, by name: a fixed map, never a column named by the caller.
SORT_COLUMNS: dict[str, InstrumentedAttribute[str] | InstrumentedAttribute[datetime]] = {
    "opened": store.Incident.opened_at,
    "host": store.Incident.host,
    "status": store.Incident.status,
    "kind": store.Incident.kind,
}


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (``%``, ``_`` and the escape escaped)."""
    for char in (LIKE_ESCAPE, "%", "_"):
        text = text.replace(char, LIKE_ESCAPE + char)
    return text


def _conditions(
    status: str | Collection[str] | None,
    host: str | None,
    kind: str | None,
    since: datetime | None,
    until: datetime | None,
    q: str | None,
    needs_you: bool,
) -> list[ColumnElement[bool]]:
    """The WHERE conditions of the filters, shared by the list and its count."""
    row = store.Incident
    where: list[ColumnElement[bool]] = []
    if isinstance(status, str):
        where.append(row.status == str(status))
    elif status is not None:
        where.append(row.status.in_([str(s) for s in status]))
    if needs_you:
        where.append(needs_you_condition())  # the dashboard's definition: one for both
    if host:
        where.append(row.host == host)
    if kind:
        where.append(row.kind == kind)
    if since is not None:
        where.append(row.opened_at >= since)
    if until is not None:
        where.append(row.opened_at < until)
    if q:
        pattern = f"%{escape_like(q)}%"
        where.append(
            or_(
                row.host.ilike(pattern, escape=LIKE_ESCAPE),
                row.summary.ilike(pattern, escape=LIKE_ESCAPE),
            )
        )
    return where


def count_incidents(
    sessions: sessionmaker[Session],
    *,
    status: str | Collection[str] | None = None,
    host: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: str | None = None,
    needs_you: bool = False,
) -> int:
    """How many incidents match the filters of ``list_incidents`` (one COUNT)."""
    where = _conditions(status, host, kind, since, until, q, needs_you)
    query = select(func.count()).select_from(store.Incident).where(*where)
    with sessions() as session:
        return int(session.execute(query).scalar_one())


def _sorted(
    query: Select[store.Incident],
    sort: str,
    descending: bool,
    limit: int,
    before_id: int | None,
) -> Select[store.Incident]:
    """The query ordered by (sort column, id), past the cursor row, one row longer."""
    if limit < 1:
        raise ValueError(f"a page holds at least one row, not {limit}")
    column = SORT_COLUMNS[sort]  # KeyError: the caller checks against SORT_COLUMNS
    row = store.Incident
    if before_id is not None:
        # The cursor row's own value: a row that does not exist makes an empty page.
        pivot = select(column).where(row.id == before_id).scalar_subquery()
        key, bound = tuple_(column, row.id), tuple_(pivot, literal(before_id))
        query = query.where(key < bound if descending else key > bound)
    if descending:
        return query.order_by(column.desc(), row.id.desc()).limit(limit + 1)
    return query.order_by(column.asc(), row.id.asc()).limit(limit + 1)


def list_incidents(
    sessions: sessionmaker[Session],
    *,
    status: str | Collection[str] | None = None,
    host: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    q: str | None = None,
    needs_you: bool = False,
    sort: str | None = None,
    descending: bool = True,
    before_id: int | None = None,
    limit: int = 50,
) -> IncidentPage:
    """One page of incidents and the ``before_id`` of the next page (or None).

    Without ``sort``: newest first by id, ``before_id`` the smallest id seen. With ``sort``
    (a key of SORT_COLUMNS): by that column then id, ``before_id`` the id of the previous
    page's last row. ``status`` is one status or several; ``needs_you`` keeps what needs a
    human (engine/read/needs_you.py); ``since`` is inclusive and ``until`` exclusive (on
    opened_at); ``q`` matches host or summary, case-insensitively, as a plain
    substring.
    """
    row = store.Incident
    query = select(row).where(*_conditions(status, host, kind, since, until, q, needs_you))
    with sessions() as session:
        if sort is None:
            rows, next_before = read_page(session, query, row.id, limit=limit, before_id=before_id)
        else:
            found = session.scalars(_sorted(query, sort, descending, limit, before_id)).all()
            rows, next_before = cut(found, limit, lambda r: r.id)
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
