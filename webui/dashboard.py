"""The dashboard at "/": what needs a human first, every host's state with a CPU sparkline,
the fleet's numbers, and the open incidents. The host table and the summary are fragments
the page polls.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, render_template, request
from flask.typing import ResponseReturnValue

from engine.errors import InventoryError
from engine.incident.life import ACTIVE_STATUSES, IncidentStatus
from engine.inventory import Inventory, load_inventory
from engine.read.fleet import fleet_summary
from engine.read.hosts import host_statuses, read_host_states, sparkline
from engine.read.incidents import active_incident_status, list_incidents
from engine.read.needs_you import HostNeed, needs_you_by_host, read_needs_you
from engine.read.notifications import notification_counts
from engine.signals import ANOMALIES
from engine.types import HostStatus
from webui.db import get_sessions, get_settings
from webui.maintenance import holds_panel, host_marks
from webui.security import login_required

log = logging.getLogger("autosre.webui")

bp = Blueprint("dashboard", __name__)

INVENTORY_KEY = "autosre_inventory"
HOSTS_PER_PAGE = 100
POLL_SECONDS = 5
MAX_PAGE = 100_000
NEEDS_YOU_SHOWN = 50  # the newest; a total and links to the lists stand for the rest
OPEN_SHOWN = 20  # open incidents listed; links per status (the list's filter) lead to all
# Problem hosts first: high CPU, then those with a run or an approval in flight, then no data.
ACTIVE_LABELS = {
    IncidentStatus.REMEDIATING.value: "remediating",
    IncidentStatus.AWAITING_APPROVAL.value: "awaiting approval",
}


class InventoryCache:
    """The inventory's host names, loaded at most every ``ttl`` seconds (a failure: ``retry``).

    Loading spawns ansible-inventory (about a second), so pages share one cached list.
    """

    def __init__(
        self,
        path: Path,
        *,
        ttl: float = 300.0,
        retry: float = 60.0,
        loader: Callable[[Path], Inventory] = load_inventory,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.ttl = ttl
        self.retry = retry
        self.loader = loader
        self.clock = clock
        self._hosts: tuple[str, ...] | None = None
        self._due = float("-inf")
        self._lock = threading.Lock()

    def hosts(self) -> tuple[str, ...] | None:
        """The host names, or None when the inventory cannot be read."""
        with self._lock:
            now = self.clock()
            if now >= self._due:
                try:
                    self._hosts = tuple(sorted(self.loader(self.path).hosts))
                    self._due = now + self.ttl
                except InventoryError as exc:
                    log.warning(
                        "dashboard: inventory not loaded (%s); showing published hosts", exc
                    )
                    self._hosts = None
                    self._due = now + self.retry
            return self._hosts


def inventory_hosts() -> tuple[str, ...] | None:
    """The app's cached inventory host names (made on first use), or None."""
    cache = current_app.extensions.get(INVENTORY_KEY)
    if cache is None:
        settings = get_settings()
        # The engine's own cache of the parsed inventory: a 10,000-host fleet loads in
        # milliseconds instead of seconds when it has not changed.
        loader = functools.partial(
            load_inventory, timeout=settings.inventory_timeout, cache_dir=settings.cache_dir
        )
        cache = current_app.extensions.setdefault(
            INVENTORY_KEY, InventoryCache(settings.inventory, loader=loader)
        )
    hosts: tuple[str, ...] | None = cache.hosts()
    return hosts


def _rank(state: str, active: str | None, need: HostNeed | None = None) -> int:
    if state in ANOMALIES:  # a signal holds (high CPU, ...): first
        return 0
    if need is not None or active in ACTIVE_LABELS:  # a human is needed, or work in flight
        return 1
    return 2 if state == HostStatus.UNKNOWN else 3


def host_page(page: int) -> dict[str, Any]:
    """One page of the host table: rows (problem hosts first), the page and page count."""
    sessions = get_sessions()
    statuses = host_statuses(sessions)
    active = active_incident_status(sessions)
    needs = needs_you_by_host(sessions)
    names = inventory_hosts()
    from_inventory = names is not None
    hosts = names if names is not None else tuple(statuses)
    ranks = {
        h: _rank(statuses.get(h, HostStatus.UNKNOWN), active.get(h), needs.get(h)) for h in hosts
    }
    ordered = sorted(hosts, key=lambda h: (ranks[h], h))
    pages = max(1, -(-len(ordered) // HOSTS_PER_PAGE))
    page = min(page, pages)
    shown = ordered[(page - 1) * HOSTS_PER_PAGE : page * HOSTS_PER_PAGE]
    # Values and samples for the page only: a fleet's would be most of the time.
    published = {s.host: s for s in read_host_states(sessions, hosts=shown)}
    marks = host_marks(shown)  # maintenance until ..., or automation off (flapping)
    rows = []
    for host in shown:
        state = published.get(host)
        rows.append(
            {
                "host": host,
                "state": HostStatus.UNKNOWN.value if state is None else state.status.value,
                "value": None if state is None else state.value,
                "activity": ACTIVE_LABELS.get(active.get(host, "")),
                "activity_status": active.get(host),
                "samples": [] if state is None else sparkline(state),
                "published": state is not None,
                "hold": marks.get(host),
                "need": None if host not in needs else needs[host].model_dump(mode="json"),
            }
        )
    return {
        "rows": rows,
        "page": page,
        "pages": pages,
        "total": len(ordered),
        "problems": sum(1 for h in ordered if ranks[h] < 2),
        "from_inventory": from_inventory,
    }


def _page() -> int:
    text = request.args.get("page", "1").strip() or "1"
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        abort(400, description="page must be a whole number from 1.")
    return int(text)


def summary() -> dict[str, Any]:
    """What needs a human, the fleet's numbers and the open incidents."""
    sessions = get_sessions()
    needs = read_needs_you(sessions, limit=NEEDS_YOU_SHOWN)
    opened = list_incidents(sessions, status=ACTIVE_STATUSES, limit=OPEN_SHOWN).items
    outbox = notification_counts(sessions)
    return {
        "needs": needs.model_dump(mode="json"),
        "summary": fleet_summary(sessions, now=datetime.now(tz=UTC)),
        "open_rows": [incident.model_dump(mode="json") for incident in opened],
        "notices": {s: outbox.total(s) for s in ("pending", "sent", "failed")},
    }


@bp.get("/")
@login_required
def index() -> ResponseReturnValue:
    """The whole dashboard; the fragments below refresh themselves every few seconds."""
    page = _page()
    return render_template(
        "dashboard/index.html",
        hosts=host_page(page),
        poll_every=POLL_SECONDS,
        maintenance=holds_panel(),
        **summary(),
    )


@bp.get("/dashboard/hosts")
@login_required
def hosts() -> ResponseReturnValue:
    """The host table alone (HTML fragment), for polling."""
    return render_template("dashboard/_hosts.html", hosts=host_page(_page()))


@bp.get("/dashboard/summary")
@login_required
def summary_fragment() -> ResponseReturnValue:
    """The summary numbers, incidents per day and open incidents (HTML fragment)."""
    return render_template("dashboard/_summary.html", **summary())
