"""Which closed incidents retention may delete, and every row that goes with them.

An incident goes only when it was closed before the cutoff, none of its runs is in
flight, and no host still taken out of automation points at it. It goes with its
decisions, approvals, notifications, alert events and events, and with the runs only
its decisions (among those going) refer to: a run shared with an incident that stays,
stays. Incidents sharing a run are put in the same batch, so each batch is deleted in
one transaction with nothing left pointing at a deleted row, and counting a batch
before deleting it gives the numbers the deletion then reports.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from engine.store.alert_events import AlertEventRow
from engine.store.models import (
    ApprovalRow,
    Decision,
    DisabledHostRow,
    Event,
    Incident,
    PlaybookRun,
)
from engine.store.outbox import NotificationRow

IN_FLIGHT_RUNS = ("pending", "running", "staged")
BATCH = 500  # incidents per transaction: short enough not to hold SQLite's lock for long
# Children first: the order the rows are deleted in (a parent only once nothing points at it).
TABLES = (
    "events",
    "approvals",
    "notifications",
    "alert_events",
    "decisions",
    "playbook_runs",
    "incidents",
)


@dataclass(frozen=True, slots=True)
class Batch:
    """Incidents deleted together, the decisions and runs that go with them."""

    incidents: tuple[int, ...]
    decisions: tuple[int, ...]
    runs: tuple[int, ...]
    run_idents: tuple[str, ...]


def _active_run_ids() -> ColumnElement[bool]:
    """Runs in flight, or referred to by a decision of an incident not closed yet."""
    active_decision_runs = (
        select(Decision.run_id)
        .join(Incident, Decision.incident_id == Incident.id)
        .where(Incident.closed_at.is_(None), Decision.run_id.is_not(None))
    )
    return or_(PlaybookRun.status.in_(IN_FLIGHT_RUNS), PlaybookRun.id.in_(active_decision_runs))


def protected_idents(session: Session) -> set[str]:
    """Idents of the runs whose dirs retention must not touch (in flight, or an active
    incident's)."""
    return set(session.scalars(select(PlaybookRun.ident).where(_active_run_ids())))


def _candidates(session: Session, before: datetime) -> list[int]:
    """Closed-before-cutoff incidents with no run in flight and no host held out by them."""
    held = select(DisabledHostRow.incident_id).where(
        DisabledHostRow.enabled_at.is_(None), DisabledHostRow.incident_id.is_not(None)
    )
    busy = (
        select(Decision.incident_id)
        .join(PlaybookRun, Decision.run_id == PlaybookRun.id)
        .where(PlaybookRun.status.in_(IN_FLIGHT_RUNS))
    )
    query = (
        select(Incident.id)
        .where(
            Incident.closed_at.is_not(None),
            Incident.closed_at < before,
            Incident.id.not_in(held),
            Incident.id.not_in(busy),
        )
        .order_by(Incident.closed_at, Incident.id)
    )
    return list(session.scalars(query))


def _chunks(values: Sequence[int], size: int = BATCH) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _links(session: Session, ids: Sequence[int]) -> list[tuple[int, int, int | None]]:
    """(decision, incident, run) of every decision of the given incidents."""
    found: list[tuple[int, int, int | None]] = []
    for chunk in _chunks(ids):
        rows = session.execute(
            select(Decision.id, Decision.incident_id, Decision.run_id).where(
                Decision.incident_id.in_(chunk)
            )
        )
        found.extend((d, i, r) for d, i, r in rows)
    return found


def _kept_elsewhere(session: Session, runs: set[int], going: set[int]) -> set[int]:
    """Of these runs, those a decision of an incident that stays refers to."""
    kept: set[int] = set()
    ordered = sorted(runs)
    for chunk in _chunks(ordered):
        rows = session.execute(
            select(Decision.run_id, Decision.incident_id).where(Decision.run_id.in_(chunk))
        )
        kept.update(run for run, incident in rows if run is not None and incident not in going)
    return kept


def plan_batches(session: Session, before: datetime) -> list[Batch]:
    """The incidents retention deletes, in batches that share no run with one another."""
    ids = _candidates(session, before)
    links = _links(session, ids)
    going = set(ids)
    shared = _kept_elsewhere(session, {r for _, _, r in links if r is not None}, going)
    # Union-find over incidents joined by a run they share: one group, one batch.
    parent = {i: i for i in ids}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_of_run: dict[int, int] = {}
    for _, incident, run in links:
        if run is None or run in shared:
            continue
        other = first_of_run.setdefault(run, incident)
        parent[root(incident)] = root(other)
    groups: dict[int, list[int]] = {}
    for i in ids:  # oldest first, so the oldest go first when a prune is cut short
        groups.setdefault(root(i), []).append(i)
    decisions_of: dict[int, list[int]] = {}
    runs_of: dict[int, set[int]] = {}
    for decision, incident, run in links:
        decisions_of.setdefault(incident, []).append(decision)
        if run is not None and run not in shared:
            runs_of.setdefault(incident, set()).add(run)
    batches: list[Batch] = []
    current: list[int] = []
    for group in groups.values():
        current.extend(group)
        if len(current) >= BATCH:
            batches.append(_batch(session, current, decisions_of, runs_of))
            current = []
    if current:
        batches.append(_batch(session, current, decisions_of, runs_of))
    return batches


def _batch(
    session: Session,
    incidents: list[int],
    decisions_of: dict[int, list[int]],
    runs_of: dict[int, set[int]],
) -> Batch:
    decisions = tuple(d for i in incidents for d in decisions_of.get(i, ()))
    runs = tuple(sorted({r for i in incidents for r in runs_of.get(i, ())}))
    idents = tuple(session.scalars(select(PlaybookRun.ident).where(PlaybookRun.id.in_(runs))))
    return Batch(tuple(incidents), decisions, runs, idents)


def _where(batch: Batch) -> dict[str, ColumnElement[bool]]:
    """Each table's rows that go with the batch."""
    incidents, decisions, runs = batch.incidents, batch.decisions, batch.runs
    return {
        "events": or_(Event.incident_id.in_(incidents), Event.run_id.in_(runs)),
        "approvals": or_(
            ApprovalRow.incident_id.in_(incidents), ApprovalRow.decision_id.in_(decisions)
        ),
        "notifications": NotificationRow.incident_id.in_(incidents),
        "alert_events": AlertEventRow.incident_id.in_(incidents),
        "decisions": Decision.id.in_(decisions),
        "playbook_runs": PlaybookRun.id.in_(runs),
        "incidents": and_(Incident.id.in_(incidents), Incident.closed_at.is_not(None)),
    }


_MODELS: dict[str, type] = {
    "events": Event,
    "approvals": ApprovalRow,
    "notifications": NotificationRow,
    "alert_events": AlertEventRow,
    "decisions": Decision,
    "playbook_runs": PlaybookRun,
    "incidents": Incident,
}


def count_batch(session: Session, batch: Batch) -> dict[str, int]:
    """How many rows of each table deleting the batch removes."""
    where = _where(batch)
    return {
        table: int(
            session.scalar(select(func.count()).select_from(_MODELS[table]).where(cond)) or 0
        )
        for table, cond in where.items()
    }


def delete_batch(session: Session, batch: Batch) -> dict[str, int]:
    """Delete the batch's rows, children first, in the session's transaction; counts."""
    # A host re-enabled since keeps its row; only its pointer to the incident goes.
    session.execute(
        update(DisabledHostRow)
        .where(DisabledHostRow.incident_id.in_(batch.incidents))
        .values(incident_id=None)
    )
    removed: dict[str, int] = {}
    for table, cond in _where(batch).items():
        statement = delete(_MODELS[table]).where(cond)
        result = session.execute(statement.execution_options(synchronize_session=False))
        removed[table] = int(getattr(result, "rowcount", 0) or 0)
    return removed


def oldest_incident(session: Session, skip: set[int]) -> datetime | None:
    """When the oldest incident not in ``skip`` was opened (None: there is none)."""
    # Among the len(skip) + 1 oldest, one is not skipped, if any incident stays at all.
    query = (
        select(Incident.id, Incident.opened_at)
        .order_by(Incident.opened_at, Incident.id)
        .limit(len(skip) + 1)
    )
    for incident, opened_at in session.execute(query):
        if incident not in skip:
            return opened_at
    return None
