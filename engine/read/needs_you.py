"""What needs a human: the incidents the engine will not finish on its own.

An incident needs you while it is not closed and it is escalated, failed or awaiting
approval, or its host was taken out of automatic remediation (flapping; see
engine/record/maintenance.py). ``count_needs_you`` is one COUNT for the menu's badge;
``read_needs_you`` is one query for the dashboard's list (newest first, bounded) and its
total; ``needs_you_by_host`` marks the host table's rows; the incident list's ``needs_you``
filter is ``needs_you_condition`` too (engine/read/incidents.py). All walk
``ix_incidents_status_id``: the filter starts with the status.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from sqlalchemy import ColumnElement, ScalarSelect, and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from engine.incident.life import ACTIVE_STATUSES, IncidentStatus
from engine.read.models import Incident, Items, ReadModel
from engine.store.models import ApprovalRow, DisabledHostRow
from engine.store.models import Incident as IncidentRow
from engine.types import ApprovalStatus

NeedReason = Literal["escalated", "failed", "awaiting_approval", "automation_off"]

# Statuses that wait for a human by themselves; any unclosed one on a host out of automation.
WAITING = (IncidentStatus.ESCALATED, IncidentStatus.FAILED, IncidentStatus.AWAITING_APPROVAL)
UNCLOSED = (*ACTIVE_STATUSES, IncidentStatus.ESCALATED, IncidentStatus.FAILED)
DEFAULT_LIMIT = 50
HOST_LIMIT = 1000  # incidents read to mark the host table's rows


class NeedsYouItem(Incident):
    """An incident that needs a human, and why."""

    reason: NeedReason = Field(description="why: its status, or its host is out of automation")
    automation_off: bool = Field(description="its host is out of automatic remediation")
    approval_id: int | None = Field(description="the pending approval it waits on, if any")
    acknowledged_by: str | None = Field(description="who said they are on it, if anyone")
    assigned_to: str | None = Field(description="the web user it is assigned to, if any")


class NeedsYou(Items[NeedsYouItem]):
    """The newest incidents that need a human, and how many there are in all."""

    total: int


def _out_of_automation() -> ColumnElement[bool]:
    hosts = select(DisabledHostRow.host).where(DisabledHostRow.enabled_at.is_(None))
    return IncidentRow.host.in_(hosts.scalar_subquery())


def needs_you_condition() -> ColumnElement[bool]:
    """The one definition of "needs you" as a WHERE condition on incidents: the dashboard's
    list, the menu's count and the incident list's filter all use it."""
    return and_(
        IncidentRow.status.in_([s.value for s in UNCLOSED]),
        IncidentRow.closed_at.is_(None),  # an escalated incident whose host recovered: done
        or_(IncidentRow.status.in_([s.value for s in WAITING]), _out_of_automation()),
    )


def _pending_approval() -> ScalarSelect[int | None]:
    """The incident's pending approval (ix_approvals_incident_id), for a link to it."""
    return (
        select(func.max(ApprovalRow.id))
        .where(
            ApprovalRow.incident_id == IncidentRow.id,
            ApprovalRow.status == ApprovalStatus.PENDING,
        )
        .scalar_subquery()
    )


def count_needs_you(sessions: sessionmaker[Session]) -> int:
    """How many incidents need a human (one COUNT, for the menu's badge)."""
    with sessions() as session:
        query = select(func.count()).select_from(IncidentRow).where(needs_you_condition())
        return int(session.execute(query).scalar_one())


def _reason(status: str, off: bool) -> NeedReason:
    if status == IncidentStatus.ESCALATED:
        return "escalated"
    if status == IncidentStatus.FAILED:
        return "failed"
    if status == IncidentStatus.AWAITING_APPROVAL:
        return "awaiting_approval"
    return "automation_off" if off else "escalated"


def read_needs_you(sessions: sessionmaker[Session], *, limit: int = DEFAULT_LIMIT) -> NeedsYou:
    """The newest ``limit`` incidents that need a human, with the pending approval each waits
    on, and the total (a window count: one query)."""
    if limit < 1:
        raise ValueError(f"a list holds at least one row, not {limit}")
    query = (
        select(
            IncidentRow,
            _out_of_automation().label("off"),
            _pending_approval().label("approval_id"),
            func.count().over().label("total"),
        )
        .where(needs_you_condition())
        .order_by(IncidentRow.id.desc())
        .limit(limit)
    )
    with sessions() as session:
        rows = session.execute(query).all()
        items = [
            NeedsYouItem.from_row(
                row,
                reason=_reason(row.status, bool(off)),
                automation_off=bool(off),
                approval_id=approval_id,
            )
            for row, off, approval_id, _ in rows
        ]
    return NeedsYou(items=items, total=int(rows[0].total) if rows else 0)


class HostNeed(ReadModel):
    """The newest incident on a host that needs a human: what the host table shows."""

    incident_id: int
    status: IncidentStatus
    reason: NeedReason
    approval_id: int | None


def needs_you_by_host(
    sessions: sessionmaker[Session], *, limit: int = HOST_LIMIT
) -> dict[str, HostNeed]:
    """Host -> its newest incident that needs a human, over the newest ``limit`` such
    incidents (one query; a fleet's table ranks these hosts first)."""
    query = (
        select(
            IncidentRow.id,
            IncidentRow.host,
            IncidentRow.status,
            _out_of_automation().label("off"),
            _pending_approval().label("approval_id"),
        )
        .where(needs_you_condition())
        .order_by(IncidentRow.id.desc())
        .limit(limit)
    )
    found: dict[str, HostNeed] = {}
    with sessions() as session:
        for incident_id, host, status, off, approval_id in session.execute(query):
            if host not in found:  # newest first: the first one per host is its newest
                found[host] = HostNeed(
                    incident_id=incident_id,
                    status=status,
                    reason=_reason(status, bool(off)),
                    approval_id=approval_id,
                )
    return found
