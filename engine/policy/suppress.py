"""Suppression: is automatic remediation held off this host now, and why. Pure.

Two holds, both decided here from facts the store gave (``HostHolds``) and the clock:

- a **maintenance window** on the host or one of its groups: the verdict WAITs (rule
  ``maintenance``) naming the window, its reason and its expiry, and asks again soon (a
  window may be ended early) and at the latest when it expires. It never escalates and
  never pages: people are at work on the host.
- a host **taken out** for flapping: the verdict WAITs (rule ``flapping``) until a human
  re-enables the host. What takes it out is ``flapping``: the host was remediated
  automatically ``max_remediations`` times within the window (across incidents, since its
  last re-enable) and needs one more; that verdict escalates.
"""

from __future__ import annotations

from datetime import UTC, datetime

from engine.policy.hold_settings import Flapping
from engine.types import (
    ESCALATE_ACTION,
    HostHistory,
    HostHolds,
    MaintenanceWindow,
    Verdict,
    VerdictKind,
)

MAINTENANCE_RULE = "maintenance"
FLAPPING_RULE = "flapping"
# Seconds between looks at a window that holds: ending it early takes effect this soon.
RECHECK = 30.0


def when(ts: float) -> str:
    """A time as the records show it: ISO 8601 UTC to the second, with a Z."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def active_windows(holds: HostHolds, now: float) -> tuple[MaintenanceWindow, ...]:
    """The windows that hold now, the one ending last first."""
    found = [w for w in holds.windows if w.active(now)]
    return tuple(sorted(found, key=lambda w: (-w.ends_at, w.id)))


def describe_window(window: MaintenanceWindow) -> str:
    """One line naming a window: its id, scope, reason, who set it and its expiry."""
    return (
        f"maintenance window {window.id} on {window.scope} until {when(window.ends_at)} "
        f"(set by {window.set_by}: {window.reason})"
    )


def suppression(holds: HostHolds, now: float) -> Verdict | None:
    """The WAIT verdict a hold imposes on any automatic action now, or None."""
    windows = active_windows(holds, now)
    if windows:
        window = windows[0]
        more = f" and {len(windows) - 1} more" if len(windows) > 1 else ""
        return Verdict(
            VerdictKind.WAIT,
            None,
            f"suppressed: {describe_window(window)}{more}; nothing runs automatically "
            "until it ends",
            MAINTENANCE_RULE,
            retry_at=min(window.ends_at, now + RECHECK),
        )
    if holds.disabled_at is not None:
        because = f" ({holds.disabled_reason})" if holds.disabled_reason else ""
        return Verdict(
            VerdictKind.WAIT,
            None,
            f"suppressed: flapping: taken out of automatic remediation at "
            f"{when(holds.disabled_at)}{because}; a human re-enables it "
            "(`autosre host enable` or the dashboard)",
            FLAPPING_RULE,
            retry_at=now + RECHECK,
        )
    return None


def remediations_since(history: HostHistory, holds: HostHolds, now: float, window: float) -> int:
    """Automatic remediation runs started on the host within the window and since its last
    re-enable (a human's re-enable starts the count afresh)."""
    since = now - window
    if holds.enabled_at is not None:
        since = max(since, holds.enabled_at)
    return sum(1 for attempt in history.attempts if attempt.started_at >= since)


def flapping(
    history: HostHistory, holds: HostHolds, settings: Flapping, now: float
) -> Verdict | None:
    """The escalation that takes a flapping host out of automatic remediation, or None."""
    count = remediations_since(history, holds, now, settings.window)
    if count < settings.max_remediations:
        return None
    return Verdict(
        VerdictKind.ESCALATE,
        ESCALATE_ACTION,
        f"flapping: {history.host} was remediated automatically {count} times within "
        f"{settings.window:g}s (the policy allows {settings.max_remediations}) and needs it "
        "again: taken out of automatic remediation until a human re-enables it",
        FLAPPING_RULE,
        overridden=True,
    )
