"""One host as its page shows it: whether it is known at all, its runs (keyset pages),
its pending approvals, what keeps automation off it, and its failure memory.

"Failure memory" is what the policy gate remembers of the host (engine/policy/gate.py):
actions that failed to cure it within ``failure_memory.window``; once an action has failed
``max_failures`` times there, the gate escalates instead of trying it again.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, String, cast, exists, or_, select
from sqlalchemy.orm import Session, sessionmaker

from engine.read.approvals import approval_model
from engine.read.incidents import LIKE_ESCAPE, escape_like
from engine.read.maintenance import DisabledHost, MaintenanceWindow, list_windows
from engine.read.models import Approval, Run, RunPage
from engine.read.paging import read_page
from engine.record.memory import EngineMemory
from engine.store.models import ApprovalRow, DisabledHostRow, HostStateRow, Incident, PlaybookRun
from engine.types import ApprovalStatus


@dataclass(frozen=True, slots=True)
class RememberedFailure:
    """An action that failed to cure the host within the policy's memory window."""

    action: str
    failures: int
    last_at: float
    incident_ids: tuple[int, ...]
    blocked: bool  # the gate escalates rather than try it again


def host_recorded(sessions: sessionmaker[Session], host: str) -> bool:
    """True when the store knows the host: a published state or an incident."""
    with sessions() as session:
        state = select(HostStateRow.host).where(HostStateRow.host == host)
        incident = select(Incident.id).where(Incident.host == host)
        return bool(session.scalar(select(or_(exists(state), exists(incident)))))


def touches(host: str) -> ColumnElement[bool]:
    """Runs whose hosts may include ``host``: a narrowing test; check ``host in run.hosts``."""
    # hosts is a JSON list: its text holds the name JSON-quoted, so the closing quote keeps
    # web1 from matching web10.
    pattern = f"%{escape_like(json.dumps(host))}%"
    return cast(PlaybookRun.hosts, String).like(pattern, escape=LIKE_ESCAPE)


def host_runs(
    sessions: sessionmaker[Session], host: str, *, limit: int = 20, before_id: int | None = None
) -> RunPage:
    """A page of the runs that touched the host, newest first (by the engine or by hand)."""
    query = select(PlaybookRun).where(touches(host))
    with sessions() as session:
        rows, next_before = read_page(
            session, query, PlaybookRun.id, limit=limit, before_id=before_id
        )
        items = [Run.from_row(row) for row in rows if host in (row.hosts or ())]
    return RunPage(items=items, next_before=next_before)


def pending_approvals(sessions: sessionmaker[Session], host: str, now: datetime) -> list[Approval]:
    """The host's approvals still waiting for a human (not past their time), oldest first."""
    query = (
        select(ApprovalRow)
        .where(
            ApprovalRow.host == host,
            ApprovalRow.status == ApprovalStatus.PENDING,
            ApprovalRow.expires_at > now,
        )
        .order_by(ApprovalRow.requested_at, ApprovalRow.id)
        .limit(50)
    )
    with sessions() as session:
        return [approval_model(row, now) for row in session.scalars(query)]


def host_holds(
    sessions: sessionmaker[Session], host: str, groups: Collection[str], now: float
) -> tuple[list[MaintenanceWindow], DisabledHost | None]:
    """The maintenance windows on the host or its groups (active or scheduled), and its
    flapping take-out if a human has not re-enabled it since."""
    windows = [
        w
        for w in list_windows(sessions, current=True, now=now)
        if w.host == host or (w.group is not None and w.group in groups)
    ]
    with sessions() as session:
        row = session.get(DisabledHostRow, host)
        disabled = None if row is None or row.enabled_at is not None else DisabledHost.from_row(row)
    return windows, disabled


def failure_memory(
    sessions: sessionmaker[Session],
    host: str,
    *,
    now: float,
    window: float,
    max_failures: int,
) -> list[RememberedFailure]:
    """The actions that failed on the host within ``window`` seconds, most failures first,
    as the gate counts them (a verified failure to cure; a crash-cut run does not count)."""
    history = EngineMemory(sessions).host_history(host, since=now - window)
    found: dict[str, list[tuple[float, int]]] = {}
    for attempt in history.attempts:
        if attempt.succeeded is False:
            found.setdefault(attempt.action, []).append((attempt.started_at, attempt.incident_id))
    return sorted(
        (
            RememberedFailure(
                action=action,
                failures=len(tries),
                last_at=max(at for at, _ in tries),
                incident_ids=tuple(sorted({i for _, i in tries})),
                blocked=len(tries) >= max_failures,
            )
            for action, tries in found.items()
        ),
        key=lambda f: (-f.failures, f.action),
    )
