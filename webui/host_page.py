"""A host's page, /hosts/<name>: its state, what keeps automation off it, its failure
memory, a CPU chart with detections, runs and verifications marked, its incidents (paged),
runs (paged) and pending approvals, and for operators a form that runs a whitelisted
playbook on it (into the by-hand run form's confirmation, with the host chosen).

A host exists when the inventory has it or the store recorded a state or an incident for
it; any other name is a 404, and no name reaches a page unescaped.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, render_template, request
from flask.typing import ResponseReturnValue

from engine.errors import InventoryError, PolicyError
from engine.read.host_page import (
    failure_memory,
    host_holds,
    host_recorded,
    host_runs,
    pending_approvals,
)
from engine.read.hosts import read_host_states
from engine.read.incidents import list_incidents
from engine.timeutil import iso, to_dt
from webui.converters import MAX_ID
from webui.db import get_components, get_sessions
from webui.host_chart import chart_view
from webui.host_history import (
    chart_kinds,
    chart_title,
    host_history,
    inventory_host,
    published_kind,
)
from webui.redaction import redact_strings
from webui.security import login_required

bp = Blueprint("host_page", __name__)

RANGES = {"15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800}
DEFAULT_RANGE = "1h"
INCIDENTS_SHOWN = 20
RUNS_SHOWN = 20
MAX_NAME = 255
_ID = re.compile(r"[0-9]{1,10}")  # ASCII digits only: str.isdigit() also takes "²"


def _cursor(name: str) -> int | None:
    text = request.args.get(name, "").strip()
    if not text:
        return None
    if not _ID.fullmatch(text) or not 1 <= int(text) <= MAX_ID:
        abort(400, description=f"{name} must be an id (1 to {MAX_ID}).")
    return int(text)


def _kind(default: str | None) -> str:
    kinds = chart_kinds()
    chosen = request.args.get("kind") or (default if default in kinds else kinds[0])
    if chosen not in kinds:
        abort(400, description=f"kind must be one of {', '.join(kinds)}.")
    return chosen


def _range() -> str:
    chosen = request.args.get("range", DEFAULT_RANGE)
    if chosen not in RANGES:
        abort(400, description=f"range must be one of {', '.join(RANGES)}.")
    return chosen


def known_host(name: str) -> bool:
    """True for a host of the inventory, or one the store recorded a state or incident for."""
    if len(name) > MAX_NAME or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return False  # no such name can be stored (PostgreSQL refuses NUL)
    return inventory_host(name) is not None or host_recorded(get_sessions(), name)


def _actions() -> dict[str, str] | None:
    """Whitelisted action -> description, or None when the policy cannot be read."""
    with contextlib.suppress(PolicyError):
        return {n: s.description for n, s in get_components().policy.actions.items()}
    return None


def _memory(name: str, now: float) -> dict[str, Any] | None:
    """The failures the gate remembers, with the policy's window and limit; None without one."""
    with contextlib.suppress(PolicyError):
        memory = get_components().policy.remediation.failure_memory
        found = failure_memory(
            get_sessions(),
            name,
            now=now,
            window=memory.window,
            max_failures=memory.max_failures,
        )
        items = [asdict(f) | {"last_at": iso(to_dt(f.last_at))} for f in found]
        return {"window": memory.window, "max_failures": memory.max_failures, "items": items}
    return None


def _in_inventory_groups(name: str) -> tuple[tuple[str, ...], bool]:
    """The host's inventory groups, and whether the inventory could be read at all."""
    with contextlib.suppress(InventoryError, PolicyError):
        found = get_components().inventory.hosts.get(name)
        return (() if found is None else tuple(found.groups)), True
    return (), False


@bp.get("/hosts/<path:name>")
@login_required
def page(name: str) -> ResponseReturnValue:
    """The host's page; 404 for a host nobody knows."""
    if not known_host(name):
        abort(404, description="No host of that name is in the inventory or the records.")
    chosen = _range()
    before, runs_before = _cursor("before"), _cursor("runs_before")
    now = time.time()
    sessions = get_sessions()
    states = read_host_states(sessions, hosts=[name])
    groups, inventory_ok = _in_inventory_groups(name)
    windows, disabled = host_holds(sessions, name, groups, now)
    incidents = list_incidents(sessions, host=name, limit=INCIDENTS_SHOWN, before_id=before)
    runs = host_runs(sessions, name, limit=RUNS_SHOWN, before_id=runs_before)
    state = states[0] if states else None
    open_kind = next((i.kind for i in incidents.items if i.closed_at is None), None)
    kind = _kind(published_kind(None if state is None else str(state.status), open_kind))
    history = host_history(name, now - RANGES[chosen], now, kind, open_kind=open_kind)
    shown = {  # what people and the engine wrote: redacted again, as the incident page does
        "state": None if state is None else state.model_dump(mode="json"),
        "windows": [w.model_dump(mode="json") for w in windows],
        "disabled": None if disabled is None else disabled.model_dump(mode="json"),
        "memory": _memory(name, now),
        "chart": chart_view(history, title=chart_title(kind)),
        "incidents": [i.model_dump(mode="json") for i in incidents.items],
        "runs": [r.model_dump(mode="json") for r in runs.items],
        "approvals": [
            a.model_dump(mode="json")
            for a in pending_approvals(sessions, name, datetime.now(tz=UTC))
        ],
    }
    return render_template(
        "hosts/page.html",
        host=name,
        sample_age=None
        if state is None or state.sample_ts is None
        else max(0.0, now - state.sample_ts.timestamp()),
        in_inventory=inventory_host(name) is not None,
        inventory_ok=inventory_ok,
        groups=groups,
        ranges=list(RANGES),
        chosen=chosen,
        kinds=[(k, chart_title(k)) for k in chart_kinds()],
        kind=kind,
        next_before=incidents.next_before,
        runs_next=runs.next_before,
        actions=_actions(),
        **redact_strings(shown),
    )
