"""The dashboard at "/": what needs a human first, every host's state with a CPU sparkline,
the fleet's record over a chosen window with its trend, and the open incidents. The host
table and the summary are fragments the page polls, keeping the window and the filters.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, render_template, request
from flask.typing import ResponseReturnValue

from engine.incident.life import ACTIVE_STATUSES
from engine.read.fleet import open_counts
from engine.read.fleet_trend import (
    DEFAULT_WINDOW,
    WINDOW_LABELS,
    WINDOWS,
    FleetTrend,
    fleet_trend,
)
from engine.read.incidents import list_incidents
from engine.read.needs_you import read_needs_you
from engine.read.notifications import notification_counts
from webui.dashboard_hosts import (
    INVENTORY_KEY,
    InventoryCache,
    host_page,
    inventory_cache,
    inventory_hosts,
    parse_host_filter,
    parse_page,
)
from webui.db import get_sessions
from webui.incident_list import with_handling
from webui.maintenance import holds_panel
from webui.security import login_required

# Where the tests and the app factory have always found them.
__all__ = ["INVENTORY_KEY", "InventoryCache", "bp", "inventory_hosts"]

bp = Blueprint("dashboard", __name__)
# For every list of incidents (this page's, the incident list's): "ack by", "assigned to".
bp.add_app_template_filter(with_handling, "with_handling")

POLL_SECONDS = 5
NEEDS_YOU_SHOWN = 50  # the newest; a total and links to the lists stand for the rest
OPEN_SHOWN = 20  # open incidents listed; links per status (the list's filter) lead to all


def parse_window() -> str:
    """The summary's window from the query string (an allow-list); a 400 page otherwise."""
    window = request.args.get("window", "").strip() or DEFAULT_WINDOW
    if window not in WINDOWS:
        abort(400, description=f"window must be one of {', '.join(WINDOWS)}.")
    return window


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _change(delta: float | None, text: str, better_up: bool) -> dict[str, str] | None:
    if delta is None:
        return None
    if text in ("0 points", "0 s"):  # what the page would show as no change at all
        return {"tone": "same", "arrow": "=", "text": ""}
    up = delta > 0
    return {"tone": "good" if up == better_up else "bad", "arrow": "▲" if up else "▼", "text": text}


def trend_words(trend: FleetTrend) -> dict[str, dict[str, str] | None]:
    """The changes against the previous window, as the page says them: an arrow, words
    ("4 points", "1.5 min") and whether that is good (a higher rate, a shorter MTTR)."""
    rate, mttr = trend.rate_change_points, trend.mttr_change_seconds
    points = 0 if rate is None else round(abs(rate))
    return {
        "rate": _change(rate, f"{points} point{'' if points == 1 else 's'}", better_up=True),
        "mttr": _change(mttr, _duration(abs(mttr or 0.0)), better_up=False),
    }


def summary(window: str) -> dict[str, Any]:
    """What needs a human, the fleet's record over ``window`` and the open incidents."""
    sessions = get_sessions()
    needs = read_needs_you(sessions, limit=NEEDS_YOU_SHOWN)
    trend = fleet_trend(sessions, now=datetime.now(tz=UTC), window=window)
    opened = list_incidents(sessions, status=ACTIVE_STATUSES, limit=OPEN_SHOWN).items
    outbox = notification_counts(sessions)
    open_by_status = open_counts(sessions)
    return {
        "needs": needs.model_dump(mode="json"),
        "trend": trend.model_dump(mode="json"),
        "changes": trend_words(trend),
        "window_choices": WINDOW_LABELS,
        "open_by_status": open_by_status,
        "open_total": sum(open_by_status.values()),
        "open_rows": with_handling([incident.model_dump(mode="json") for incident in opened]),
        "notices": {s: outbox.total(s) for s in ("pending", "sent", "failed")},
    }


@bp.get("/")
@login_required
def index() -> ResponseReturnValue:
    """The whole dashboard; the fragments below refresh themselves every few seconds."""
    page = parse_page()
    wanted = parse_host_filter(inventory_cache().groups())
    window = parse_window()
    window_args = {} if window == DEFAULT_WINDOW else {"window": window}
    return render_template(
        "dashboard/index.html",
        hosts=host_page(page, wanted),
        poll_every=POLL_SECONDS,
        maintenance=holds_panel(),
        window=window,
        window_args=window_args,
        filter_args=wanted.args(),
        summary_args=window_args | wanted.args(),
        **summary(window),
    )


@bp.get("/dashboard/hosts")
@login_required
def hosts() -> ResponseReturnValue:
    """The host table alone (HTML fragment), for polling, with the page's filters."""
    page = parse_page()
    wanted = parse_host_filter(inventory_cache().groups())
    return render_template("dashboard/_hosts.html", hosts=host_page(page, wanted))


@bp.get("/dashboard/summary")
@login_required
def summary_fragment() -> ResponseReturnValue:
    """The summary numbers, incidents per bucket and open incidents (HTML fragment)."""
    window = parse_window()
    # The host filters only travel on, in the window links: the numbers are the fleet's.
    wanted = parse_host_filter(inventory_cache().groups())
    return render_template(
        "dashboard/_summary.html", window=window, filter_args=wanted.args(), **summary(window)
    )
