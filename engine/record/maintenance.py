"""Maintenance windows and flapping take-outs on the write side, and the engine's reads of them.

Every write (a window started or ended, a host taken out or re-enabled) is one transaction
with its timeline event, mirrored to the JSONL audit log with who did it. The engine asks
``holds`` for one host before each verdict and ``held`` for the hosts it would stage runs
on; both read only windows that have not expired (``ix_maintenance_windows_ends_at``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine.errors import MaintenanceError
from engine.inventory import InventoryHost
from engine.policy.maintenance_request import WindowRequest
from engine.policy.suppress import describe_window, when
from engine.record.events import Journal
from engine.store.models import DisabledHostRow, MaintenanceWindowRow
from engine.timeutil import iso, to_dt, to_ts
from engine.types import HostHolds, MaintenanceWindow

T = TypeVar("T")


def window_from_row(row: MaintenanceWindowRow) -> MaintenanceWindow:
    """The engine's value of a stored window."""
    return MaintenanceWindow(
        id=row.id,
        host=row.host,
        group=row.host_group,
        reason=row.reason,
        set_by=row.set_by,
        starts_at=to_ts(row.starts_at),
        ends_at=to_ts(row.ends_at),
        ended_at=to_ts(row.ended_at) if row.ended_at else None,
        ended_by=row.ended_by,
    )


def _unexpired(session: Session, now: float, *scopes: Any) -> list[MaintenanceWindowRow]:
    query = select(MaintenanceWindowRow).where(
        MaintenanceWindowRow.ends_at > to_dt(now),
        MaintenanceWindowRow.ended_at.is_(None),
        *scopes,
    )
    return list(session.scalars(query.order_by(MaintenanceWindowRow.id)))


class MaintenanceRecords:
    """Starting and ending windows, taking hosts out and re-enabling them; and reading holds."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    # -- windows ------------------------------------------------------------------------

    def start(self, request: WindowRequest, *, by: str, source: str, at: float) -> int:
        """Record a checked window (engine/policy/maintenance_request.py); its id."""
        with self.journal.sessions() as session:
            row = MaintenanceWindowRow(
                host=request.host,
                host_group=request.group,
                reason=self.journal.text(request.reason),
                set_by=by,
                source=source,
                created_at=to_dt(at),
                starts_at=to_dt(request.starts_at),
                ends_at=to_dt(request.ends_at),
            )
            session.add(row)
            session.flush()
            window = window_from_row(row)
            event = self.journal.add(
                session,
                at,
                "maintenance_started",
                f"{by} set {describe_window(window)}, from {when(window.starts_at)} ({source})",
                host=request.host,
                data={
                    "window_id": row.id,
                    "host": request.host,
                    "group": request.group,
                    "by": by,
                    "source": source,
                    "starts_at": iso(row.starts_at),
                    "ends_at": iso(row.ends_at),
                    "reason": row.reason,
                },
            )
            self.journal.commit(session, [event])
            return row.id

    def end(self, window_id: int, *, by: str, at: float) -> MaintenanceWindow:
        """End a window now (before its expiry); MaintenanceError if unknown or already over."""
        with self.journal.sessions() as session:
            row = session.get(MaintenanceWindowRow, window_id, with_for_update=True)
            if row is None:
                raise MaintenanceError(f"no maintenance window with id {window_id}")
            if row.ended_at is not None:
                raise MaintenanceError(
                    f"maintenance window {window_id} was already ended by {row.ended_by} "
                    f"at {iso(row.ended_at)}"
                )
            if to_ts(row.ends_at) <= at:
                raise MaintenanceError(
                    f"maintenance window {window_id} already expired at {iso(row.ends_at)}"
                )
            row.ended_at = to_dt(at)
            row.ended_by = by
            window = window_from_row(row)
            event = self.journal.add(
                session,
                at,
                "maintenance_ended",
                f"{by} ended maintenance window {window_id} on {window.scope} early "
                f"(it was due to end at {when(window.ends_at)})",
                host=row.host,
                data={"window_id": window_id, "by": by, "group": row.host_group},
            )
            self.journal.commit(session, [event])
            return window

    # -- flapping -----------------------------------------------------------------------

    def take_out(self, host: str, reason: str, *, at: float, incident_id: int | None) -> None:
        """Take a host out of automatic remediation (the engine, for flapping)."""
        with self.journal.sessions() as session:
            row = session.get(DisabledHostRow, host, with_for_update=True)
            if row is None:
                row = DisabledHostRow(host=host)
                session.add(row)
            row.disabled_at = to_dt(at)
            row.reason = self.journal.text(reason)
            row.incident_id = incident_id
            row.enabled_at = None
            row.enabled_by = None
            event = self.journal.add(
                session,
                at,
                "host_disabled",
                f"{host} taken out of automatic remediation: {reason}",
                host=host,
                incident_id=incident_id,
                data={"by": "engine", "reason": reason},
            )
            self.journal.commit(session, [event])

    def enable(self, host: str, *, by: str, at: float) -> None:
        """A human puts a taken-out host back under automatic remediation."""
        with self.journal.sessions() as session:
            row = session.get(DisabledHostRow, host, with_for_update=True)
            if row is None or row.enabled_at is not None:
                raise MaintenanceError(
                    f"host {host[:100]!r} is not taken out of automatic remediation"
                )
            row.enabled_at = to_dt(at)
            row.enabled_by = by
            event = self.journal.add(
                session,
                at,
                "host_enabled",
                f"{by} re-enabled automatic remediation on {host} "
                f"(taken out at {iso(row.disabled_at)})",
                host=host,
                data={"by": by, "disabled_at": iso(row.disabled_at)},
            )
            self.journal.commit(session, [event])

    # -- what the engine reads ----------------------------------------------------------

    def holds(self, host: str, groups: Collection[str], now: float) -> HostHolds:
        """The host's unexpired windows (its own and its groups') and its take-out, if any."""
        scope = MaintenanceWindowRow.host == host
        if groups:
            scope = or_(scope, MaintenanceWindowRow.host_group.in_(list(groups)))
        with self.journal.sessions() as session:
            windows = tuple(window_from_row(r) for r in _unexpired(session, now, scope))
            row = session.get(DisabledHostRow, host)
        if row is None:
            return HostHolds(windows=windows)
        return HostHolds(
            windows=windows,
            disabled_at=None if row.enabled_at is not None else to_ts(row.disabled_at),
            disabled_reason=row.reason,
            enabled_at=to_ts(row.enabled_at) if row.enabled_at else None,
        )

    def held(self, hosts: Mapping[str, InventoryHost], now: float) -> frozenset[str]:
        """Of these hosts, those a window or a take-out holds now."""
        return frozenset(self.notes(hosts, now))

    def unheld(
        self, rising: Mapping[str, T], hosts: Mapping[str, InventoryHost], now: float
    ) -> Mapping[str, T]:
        """The rising hosts no hold covers: no run is staged on a host in maintenance or
        taken out (no query when nothing rises)."""
        if not rising:
            return rising
        held = self.held({h: hosts[h] for h in rising if h in hosts}, now)
        return {host: value for host, value in rising.items() if host not in held}

    def notes(self, hosts: Mapping[str, InventoryHost], now: float) -> dict[str, str]:
        """Of these hosts, those a window or a take-out holds now, each with a line saying why
        (for the confirmation and the audit of a run by hand)."""
        with self.journal.sessions() as session:
            windows = [w for w in map(window_from_row, _unexpired(session, now)) if w.active(now)]
            out = {
                row.host: row
                for row in session.scalars(
                    select(DisabledHostRow).where(DisabledHostRow.enabled_at.is_(None))
                )
            }
        found: dict[str, str] = {}
        for name, host in hosts.items():
            mine = [w for w in windows if w.host == name or w.group in host.groups]
            if mine:
                found[name] = f"{name} is in {describe_window(mine[0])}"
            elif name in out:
                found[name] = (
                    f"{name} is taken out of automatic remediation since "
                    f"{iso(out[name].disabled_at)} ({out[name].reason})"
                )
        return found
