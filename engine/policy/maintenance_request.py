"""What a new maintenance window must be: one known host or group, a reason, and an end.

Pure. The CLI, the web UI and the API all build windows through ``window_request``, so one
set of refusals (a ``MaintenanceError`` naming the problem) holds everywhere: an unknown
host or group, no end, an end in the past or before the start, a window longer than the
policy's ``remediation.maintenance.max_duration``, a reason that is empty, too long or
holds control characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import MaintenanceError
from engine.inventory import Inventory
from engine.policy.suppress import when

MAX_REASON = 500
# Control characters (terminal escapes among them) and lone surrogates: never stored.
UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
START_SLACK = 60.0  # seconds a start may lie in the past (clocks, typing)


@dataclass(frozen=True, slots=True)
class WindowRequest:
    """A checked request for a window: exactly one of host and group."""

    host: str | None
    group: str | None
    reason: str
    starts_at: float
    ends_at: float


def check_reason(reason: str) -> str:
    """The reason, stripped; MaintenanceError when it cannot be stored or shown."""
    text = reason.strip()
    if not text:
        raise MaintenanceError("a maintenance window needs a reason (say what is being done)")
    if len(text) > MAX_REASON:
        raise MaintenanceError(
            f"the reason is too long ({len(text)} characters, at most {MAX_REASON})"
        )
    if UNPRINTABLE.search(text):
        raise MaintenanceError("the reason must not contain control characters or escapes")
    return text


def check_scope(inventory: Inventory, host: str | None, group: str | None) -> None:
    """Exactly one of host and group, and it is in the inventory."""
    if (host is None) == (group is None):
        raise MaintenanceError("a maintenance window covers either one host or one group")
    if host is not None and host not in inventory.hosts:
        raise MaintenanceError(f"unknown host {host[:100]!r}: not in the inventory")
    if group is not None and not any(group in h.groups for h in inventory.hosts.values()):
        raise MaintenanceError(f"unknown group {group[:100]!r}: no inventory host is in it")


def window_request(
    inventory: Inventory,
    *,
    host: str | None,
    group: str | None,
    reason: str,
    now: float,
    max_duration: float,
    starts_at: float | None = None,
    duration: float | None = None,
    until: float | None = None,
) -> WindowRequest:
    """A checked window from what someone asked; MaintenanceError naming the first problem."""
    check_scope(inventory, host, group)
    text = check_reason(reason)
    start = now if starts_at is None else starts_at
    if start < now - START_SLACK:
        raise MaintenanceError(f"the window would start in the past ({when(start)})")
    if duration is not None and until is not None:
        raise MaintenanceError("give the window's end once: a duration or an end time, not both")
    if duration is None and until is None:
        raise MaintenanceError(
            "a maintenance window needs an end: a duration (--for 2h) or an end time (--until)"
        )
    end = start + duration if duration is not None else until
    assert end is not None
    if end <= start:
        raise MaintenanceError("the window must end after it starts")
    if end <= now:
        raise MaintenanceError(f"the window's end {when(end)} is already past")
    if end - start > max_duration:
        raise MaintenanceError(
            f"the window is too long ({(end - start) / 3600:.1f} h): the policy allows at most "
            f"{max_duration / 3600:g} h (remediation.maintenance.max_duration)"
        )
    if start - now > max_duration:
        raise MaintenanceError(
            f"the window would start too far ahead: at most {max_duration / 3600:g} h from now"
        )
    return WindowRequest(host, group, text, start, end)
