"""The dashboard's host table: the inventory's hosts (cached), problem hosts first, filtered by
a name search, a state and an inventory group (query parameters, checked: 400 otherwise),
one numbered page at a time.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import abort, current_app, request

from engine.errors import InventoryError, PolicyError
from engine.incident.life import IncidentStatus
from engine.inventory import Inventory, load_inventory
from engine.read.hosts import host_statuses, read_host_states, sparkline
from engine.read.incidents import active_incident_status
from engine.read.needs_you import HostNeed, needs_you_by_host
from engine.signals import ANOMALIES, HIGH_CPU
from engine.types import HostStatus
from webui.db import get_components, get_sessions, get_settings
from webui.maintenance import host_marks

log = logging.getLogger("autosre.webui")

INVENTORY_KEY = "autosre_inventory"
HOSTS_PER_PAGE = 100
MAX_PAGE = 100_000
MAX_SEARCH = 100  # characters of a host search: longer than any host name
STATES = tuple(status.value for status in HostStatus)
ACTIVE_LABELS = {
    IncidentStatus.REMEDIATING.value: "remediating",
    IncidentStatus.AWAITING_APPROVAL.value: "awaiting approval",
}


class InventoryCache:
    """The inventory's host names and groups, loaded at most every ``ttl`` seconds (a
    failure: ``retry``). Loading spawns ansible-inventory (about a second), so pages share it.
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
        self._groups: dict[str, tuple[str, ...]] | None = None
        self._due = float("-inf")
        self._lock = threading.Lock()

    def groups(self) -> dict[str, tuple[str, ...]] | None:
        """Host name -> its groups, by name; None when the inventory cannot be read."""
        with self._lock:
            now = self.clock()
            if now >= self._due:
                try:
                    found = self.loader(self.path).hosts
                    self._groups = {name: found[name].groups for name in sorted(found)}
                    self._due = now + self.ttl
                except InventoryError as exc:
                    log.warning(
                        "dashboard: inventory not loaded (%s); showing published hosts", exc
                    )
                    self._groups = None
                    self._due = now + self.retry
            return self._groups

    def hosts(self) -> tuple[str, ...] | None:
        """The host names, sorted, or None when the inventory cannot be read."""
        groups = self.groups()
        return None if groups is None else tuple(groups)


def inventory_cache() -> InventoryCache:
    """The app's inventory cache (made on first use)."""
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
    found: InventoryCache = cache
    return found


def inventory_hosts() -> tuple[str, ...] | None:
    """The app's cached inventory host names, or None."""
    return inventory_cache().hosts()


@dataclass(frozen=True, slots=True)
class HostFilter:
    """What the host table is narrowed to: a name substring, a state, a group ("": any)."""

    q: str = ""
    state: str = ""
    group: str = ""

    def args(self) -> dict[str, str]:
        """The filters as query parameters (the empty ones left out), for links and polling."""
        return {k: v for k, v in (("q", self.q), ("state", self.state), ("group", self.group)) if v}

    def keeps(self, host: str, state: str, groups: Mapping[str, tuple[str, ...]]) -> bool:
        """Whether the host passes: the search matches literally, case-insensitively."""
        if self.q and self.q.casefold() not in host.casefold():
            return False
        if self.state and state != self.state:
            return False
        return not self.group or self.group in groups.get(host, ())


def _printable(name: str, limit: int) -> str:
    text = request.args.get(name, "").strip()
    if len(text) > limit or not text.isprintable():
        abort(400, description=f"{name} must be one line of at most {limit} characters.")
    return text


def parse_host_filter(groups: Mapping[str, tuple[str, ...]] | None) -> HostFilter:
    """The host filters from the query string; a 400 page for a state or group not known."""
    q = _printable("q", MAX_SEARCH)
    state = _printable("state", 40).upper()
    if state and state not in STATES:
        abort(400, description=f"state must be one of {', '.join(s.lower() for s in STATES)}.")
    group = _printable("group", 255)
    if group and groups is not None and group not in group_names(groups):
        abort(400, description="group: no such group in the inventory.")
    return HostFilter(q=q, state=state, group=group)


def group_names(groups: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Every group a host is in, by name (Ansible's implicit ``all`` and ``ungrouped`` left out)."""
    names = {g for found in groups.values() for g in found}
    return sorted(names - {"all", "ungrouped"})


def parse_page() -> int:
    """The page number from the query string; a 400 page otherwise."""
    text = request.args.get("page", "1").strip() or "1"
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        abort(400, description="page must be a whole number from 1.")
    return int(text)


def cpu_trigger() -> float | None:
    """The policy's high-CPU trigger (the sparklines' threshold line), or None without one."""
    try:
        rule = get_components().policy.signals.get(HIGH_CPU.name)
    except PolicyError:
        return None
    return None if rule is None else rule.trigger


def _rank(state: str, active: str | None, need: HostNeed | None = None) -> int:
    if state in ANOMALIES:  # a signal holds (high CPU, ...): first
        return 0
    if need is not None or active in ACTIVE_LABELS:  # a human is needed, or work in flight
        return 1
    return 2 if state == HostStatus.UNKNOWN else 3


def host_page(page: int, wanted: HostFilter | None = None) -> dict[str, Any]:
    """One page of the host table: rows (problem hosts first, then by name), the page and
    page count, the filters and the inventory's groups."""
    wanted = wanted or HostFilter()
    sessions = get_sessions()
    statuses = host_statuses(sessions)
    active = active_incident_status(sessions)
    needs = needs_you_by_host(sessions)
    groups = inventory_cache().groups()
    from_inventory = groups is not None
    known = groups or {}
    hosts = tuple(known) if groups is not None else tuple(sorted(statuses))
    state_of = {h: statuses.get(h, HostStatus.UNKNOWN.value) for h in hosts}
    kept = [h for h in hosts if wanted.keeps(h, state_of[h], known)]
    ranks = {h: _rank(state_of[h], active.get(h), needs.get(h)) for h in kept}
    ordered = sorted(kept, key=lambda h: (ranks[h], h))  # same rank: by name, stable
    pages = max(1, -(-len(ordered) // HOSTS_PER_PAGE))
    page = min(page, pages)
    shown = ordered[(page - 1) * HOSTS_PER_PAGE : page * HOSTS_PER_PAGE]
    # Values and samples for the page only: a fleet's would be most of the time.
    published = {s.host: s for s in read_host_states(sessions, hosts=shown)}
    marks = host_marks(shown)  # maintenance until ..., or automation off (flapping)
    rows = [_row(host, published.get(host), active, needs, marks) for host in shown]
    return {
        "rows": rows,
        "page": page,
        "pages": pages,
        "total": len(ordered),
        "fleet": len(hosts),
        "problems": sum(1 for h in ordered if ranks[h] < 2),
        "from_inventory": from_inventory,
        "filter": wanted.args(),
        "groups": group_names(known),
        "states": STATES,
        "trigger": cpu_trigger(),
    }


def _row(
    host: str,
    state: Any,
    active: Mapping[str, str],
    needs: Mapping[str, HostNeed],
    marks: Mapping[str, dict[str, str | None]],
) -> dict[str, Any]:
    status = HostStatus.UNKNOWN.value if state is None else state.status.value
    return {
        "host": host,
        "state": status,
        "anomaly": status in ANOMALIES,
        "value": None if state is None else state.value,
        "activity": ACTIVE_LABELS.get(active.get(host, "")),
        "activity_status": active.get(host),
        "samples": [] if state is None else sparkline(state),
        "published": state is not None,
        "hold": marks.get(host),
        "need": None if host not in needs else needs[host].model_dump(mode="json"),
    }
