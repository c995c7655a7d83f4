"""Maintenance windows and hosts out of automatic remediation, in the web UI.

Everyone signed in sees them (the page, and a panel on the dashboard); operators and admins
start and end windows and re-enable hosts, through CSRF-protected forms. Ending a window
early and re-enabling a host are one button each.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from engine.durations import parse_duration
from engine.errors import InventoryError, MaintenanceError, PolicyError
from engine.policy.maintenance_request import window_request
from engine.read.maintenance import disabled_hosts, get_window, list_windows
from webui.converters import use_converters
from webui.db import components, get_components, get_sessions
from webui.security import login_required, role_required, safe_next

bp = Blueprint("maintenance", __name__)
use_converters(bp)

RECENT = 20
MAX_FIELD = 1000  # characters of a form field considered at all


def holds_panel() -> dict[str, Any]:
    """Current windows and hosts out of automatic remediation (the dashboard's panel)."""
    sessions = get_sessions()
    return {
        "windows": [w.model_dump(mode="json") for w in list_windows(sessions, current=True)],
        "disabled": [h.model_dump(mode="json") for h in disabled_hosts(sessions)],
    }


def host_marks(hosts: Iterable[str]) -> dict[str, dict[str, str | None]]:
    """For the dashboard's host table: why automation is off on a host, if it is: a
    ``label`` and, for a window, ``until`` (UTC ISO: the page shows it with ``when``)."""
    hosts = tuple(hosts)
    panel = holds_panel()
    groups: dict[str, tuple[str, ...]] = {}
    # Group windows need the inventory's groups; without it, host windows only.
    with contextlib.suppress(InventoryError, PolicyError):
        groups = {n: h.groups for n, h in get_components().inventory.hosts.items()}
    marks: dict[str, dict[str, str | None]] = {
        h["host"]: {"label": "automation off (flapping)", "until": None} for h in panel["disabled"]
    }
    for window in panel["windows"]:  # by expiry: the one ending last is shown
        if window["state"] != "active":
            continue
        for host in hosts:
            if window["host"] == host or window["group"] in groups.get(host, ()):
                marks[host] = {"label": "maintenance until", "until": window["ends_at"]}
    return marks


@bp.get("/maintenance")
@login_required
def index() -> ResponseReturnValue:
    """Current windows, hosts out of automation, the start form (operators) and history."""
    return _page()


def _page(error: str | None = None, status: int = 200) -> ResponseReturnValue:
    history = list_windows(get_sessions(), current=False, limit=RECENT)
    page = render_template(
        "maintenance/index.html",
        error=error,
        history=[w.model_dump(mode="json") for w in history],
        form=request.form if request.method == "POST" else {},
        **holds_panel(),
    )
    return page, status


def _field(name: str) -> str:
    return request.form.get(name, "")[:MAX_FIELD].strip()


@bp.post("/maintenance/start")
@role_required("operator")
def start() -> ResponseReturnValue:
    """Start a window on a host or a group, for a duration, with a reason."""
    scope, target = _field("scope"), _field("target")
    if scope not in ("host", "group"):
        return _page("Choose whether the window covers a host or a group.", 400)
    parts = components()
    now = time.time()
    try:
        duration = parse_duration(_field("duration")) if _field("duration") else None
        made = window_request(
            parts.inventory,
            host=target if scope == "host" else None,
            group=target if scope == "group" else None,
            reason=_field("reason"),
            now=now,
            max_duration=parts.policy.remediation.maintenance.max_duration,
            duration=duration,
        )
    except (MaintenanceError, ValueError) as exc:
        return _page(f"{str(exc)[:300]}.", 400)
    window_id = parts.recorder.maintenance.start(made, by=g.user.name, source="web", at=now)
    flash(f"Maintenance window {window_id} started.", "info")
    return redirect(url_for("maintenance.index"))


def _back() -> ResponseReturnValue:
    return redirect(safe_next(request.form.get("next")) or url_for("maintenance.index"))


@bp.post("/maintenance/<id:window_id>/end")
@role_required("operator")
def end(window_id: int) -> ResponseReturnValue:
    """End a window now: one button."""
    if get_window(get_sessions(), window_id) is None:
        abort(404, description=f"No maintenance window with id {window_id}.")
    try:
        window = components().recorder.maintenance.end(window_id, by=g.user.name, at=time.time())
    except MaintenanceError as exc:
        abort(409, description=f"{exc}.")
    flash(f"Maintenance window {window_id} on {window.scope} ended.", "info")
    return _back()


@bp.post("/maintenance/hosts/enable")
@role_required("operator")
def enable() -> ResponseReturnValue:
    """Put a host taken out for flapping back under automatic remediation: one button."""
    host = _field("host")
    parts = components()
    if host not in parts.inventory.hosts:
        abort(404, description="No such host in the inventory.")
    try:
        parts.recorder.maintenance.enable(host, by=g.user.name, at=time.time())
    except MaintenanceError as exc:
        abort(409, description=f"{exc}.")
    flash(f"Automatic remediation re-enabled on {host}.", "info")
    return _back()
