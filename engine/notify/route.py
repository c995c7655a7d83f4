"""Routing: which channels a notice goes to, by the policy's per-channel filters (pure).

A trigger is routed by the channel's kinds, groups and severities. A resolve goes only
where that incident's trigger was queued (and the channel takes resolves), whatever the
filters say now: a PagerDuty incident that was opened is always closed.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.notify.notice import RESOLVE, TRIGGER, Notice
from engine.policy.notify_schema import Notifications, Route


def matches(route: Route, notice: Notice) -> bool:
    """True when every filter of the route lets the trigger through (empty: all pass)."""
    return (
        TRIGGER in route.events
        and (not route.kinds or notice.kind in route.kinds)
        and (not route.groups or any(g in route.groups for g in notice.groups))
        and (not route.severities or notice.severity in route.severities)
    )


def channels_for(
    notifications: Notifications, notice: Notice, *, triggered: Iterable[str] = ()
) -> list[str]:
    """The channels that take the notice, in the policy's order; ``triggered``: the
    channels where the incident's trigger was queued (what a resolve may go to)."""
    channels = notifications.channels
    if notice.event == RESOLVE:
        queued = set(triggered)
        return [n for n, c in channels.items() if n in queued and RESOLVE in c.route.events]
    return [name for name, channel in channels.items() if matches(channel.route, notice)]
