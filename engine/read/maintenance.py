"""Maintenance windows and hosts taken out of automatic remediation, as the CLI, the web UI
and the API show them. A window's ``state`` is as of the time asked: scheduled, active,
ended (early, by hand) or expired.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Literal

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.read.models import Items, ReadModel
from engine.store.models import DisabledHostRow, MaintenanceWindowRow
from engine.timeutil import to_dt

WindowState = Literal["scheduled", "active", "ended", "expired"]


class MaintenanceWindow(ReadModel):
    """A maintenance window on one host or one inventory group."""

    id: int
    host: str | None = Field(description="the host it covers (null: a group window)")
    group: str | None = Field(description="the inventory group it covers (null: a host window)")
    reason: str
    set_by: str
    source: str = Field(description="where it was set: cli, web or api")
    created_at: datetime
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None = Field(description="when it was ended early, by hand")
    ended_by: str | None
    state: WindowState


class DisabledHost(ReadModel):
    """A host taken out of automatic remediation (flapping) until a human re-enables it."""

    host: str
    disabled_at: datetime
    reason: str
    incident_id: int | None


class MaintenanceList(Items[MaintenanceWindow]):
    """Maintenance windows: current ones by expiry, or all newest first."""


class DisabledHostList(Items[DisabledHost]):
    """Hosts out of automatic remediation, by host."""


def _state(row: MaintenanceWindowRow, now: datetime) -> WindowState:
    if row.ended_at is not None:
        return "ended"
    if row.ends_at <= now:
        return "expired"
    return "active" if row.starts_at <= now else "scheduled"


def window_model(row: MaintenanceWindowRow, now: datetime) -> MaintenanceWindow:
    """The read model of one stored window as of ``now``."""
    return MaintenanceWindow.from_row(row, group=row.host_group, state=_state(row, now))


def list_windows(
    sessions: sessionmaker[Session],
    *,
    current: bool = True,
    limit: int = 100,
    now: float | None = None,
) -> list[MaintenanceWindow]:
    """Current windows (active or scheduled) ending soonest first; or all, newest first."""
    at = to_dt(time.time() if now is None else now)
    query = select(MaintenanceWindowRow).limit(limit)
    if current:
        query = query.where(
            MaintenanceWindowRow.ended_at.is_(None), MaintenanceWindowRow.ends_at > at
        ).order_by(MaintenanceWindowRow.ends_at, MaintenanceWindowRow.id)
    else:
        query = query.order_by(MaintenanceWindowRow.id.desc())
    with sessions() as session:
        return [window_model(row, at) for row in session.scalars(query)]


def get_window(
    sessions: sessionmaker[Session], window_id: int, *, now: float | None = None
) -> MaintenanceWindow | None:
    """One window as of now, or None if no such id."""
    at = to_dt(time.time() if now is None else now)
    with sessions() as session:
        row = session.get(MaintenanceWindowRow, window_id)
        return None if row is None else window_model(row, at)


def disabled_hosts(sessions: sessionmaker[Session]) -> list[DisabledHost]:
    """Every host taken out of automatic remediation and not re-enabled since, by host."""
    query = (
        select(DisabledHostRow)
        .where(DisabledHostRow.enabled_at.is_(None))
        .order_by(DisabledHostRow.host)
    )
    with sessions() as session:
        return [DisabledHost.from_row(row) for row in session.scalars(query)]


class HostEnabled(ReadModel):
    """A host put back under automatic remediation: who did it, and when."""

    host: str
    enabled_at: datetime
    enabled_by: str
