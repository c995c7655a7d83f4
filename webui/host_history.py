"""Where the web UI's charts get their history: Prometheus (when AUTOSRE_PROMETHEUS_URL is
set) through the policy's query of the signal kind cut down to one host, else the engine's
last published samples when they are of that kind. ``incident_chart(incident)`` is the
incident page's chart of the incident's kind, served as a fragment (GET /incidents/ID/chart)
that the page loads once it is shown.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from datetime import datetime
from typing import Any

from engine.errors import InventoryError, PolicyError
from engine.inventory_types import InventoryHost
from engine.policy.schema import Policy
from engine.read.cpu_history import History, cpu_history
from engine.read.cpu_range import HostSeriesKeys, RangeReader
from engine.read.hosts import read_host_states
from engine.signals import SIGNALS, signal_kind
from engine.watch import PRIMARY
from webui.db import get_components, get_sessions, get_settings
from webui.host_chart import chart_view
from webui.redaction import redact_strings

KIND = "high_cpu"
MAX_TIMEOUT = 5.0  # a page waits at most this long for Prometheus, whatever the engine allows
BEFORE = 300.0  # an incident's chart starts this long before detection (at least)
AFTER = 120.0  # and goes on this long after it closed (never past now)
MAX_SPAN = 7 * 86400.0  # a longer incident: its first week


def _policy() -> Policy | None:
    with contextlib.suppress(PolicyError):
        return get_components().policy
    return None


def inventory_host(host: str) -> InventoryHost | None:
    """The host as the inventory has it, or None (not in it, or no readable inventory)."""
    with contextlib.suppress(InventoryError, PolicyError):
        return get_components().inventory.hosts.get(host)
    return None


def series_keys(host: str, found: InventoryHost | None) -> HostSeriesKeys:
    """The label values the host's series may carry, as the engine's series map reads them."""
    if found is None:
        return HostSeriesKeys(host, bare=(host,))
    exact = (found.instance,) if found.instance else ()
    return HostSeriesKeys(host, exact=exact, bare=tuple(dict.fromkeys((host, found.address))))


def chart_kinds() -> tuple[str, ...]:
    """The signal kinds a host's chart can show: the policy's, in its order (CPU alone when
    the policy cannot be read)."""
    policy = _policy()
    return tuple(policy.signals) if policy is not None else (KIND,)


def published_kind(status: str | None, open_kind: str | None) -> str | None:
    """The kind of the samples the engine publishes for a host: its open incident's, else the
    kind whose anomaly shows, else CPU (engine/loop.py and engine/watch.py pick them so)."""
    if open_kind is not None:
        return open_kind
    for name, kind in SIGNALS.items():
        if kind.status == status:
            return name
    kinds = chart_kinds()
    return PRIMARY if PRIMARY in kinds else (kinds[0] if kinds else None)


def _reader(host: str, found: InventoryHost | None, kind: str) -> RangeReader | str | None:
    """A Prometheus reader for the host's series; None without Prometheus; a str: why not."""
    settings = get_settings()
    if not settings.prometheus_url:
        return None
    policy = _policy()
    rule = None if policy is None else policy.signals.get(kind)
    if rule is None:
        return f"the policy cannot be read or watches no {kind} signal"
    series = None
    if found is not None:  # a host that left the inventory: its series by name alone
        try:
            series = get_components().inventory.series_map()
        except InventoryError as exc:
            return f"the inventory's series map is ambiguous ({exc})"
    return RangeReader(
        url=settings.prometheus_url,
        query=rule.promql,
        label=rule.label,
        step=rule.step,
        timeout=min(settings.prometheus_timeout, MAX_TIMEOUT),
        series=series,
    )


def host_history(
    host: str, start: float, end: float, kind: str = KIND, *, open_kind: str | None = None
) -> History:
    """The host's history of ``kind`` over [start, end], from the best source there is;
    ``open_kind``: its open incident's kind (which decides the engine's samples' kind)."""
    found = inventory_host(host)
    reader = _reader(host, found, kind)
    policy = _policy()
    rule = None if policy is None else policy.signals.get(kind)
    threshold = None if rule is None else rule.trigger
    sessions = get_sessions()
    states = read_host_states(sessions, hosts=[host], recent=False)
    status = str(states[0].status) if states else None
    own = published_kind(status, open_kind) == kind  # else its samples are another kind's
    if isinstance(reader, str) or reader is None:
        history = cpu_history(sessions, host, start, end, threshold=threshold, stored=own)
        return history if reader is None else dataclasses.replace(history, unavailable=reader)
    keys = series_keys(host, found)
    return cpu_history(sessions, host, start, end, reader=reader, keys=keys, threshold=threshold)


def chart_title(kind: str) -> str:
    """What a chart of ``kind`` is called (the signal's measure, e.g. "CPU", "Memory")."""
    try:
        measure = signal_kind(kind).measure
    except KeyError:
        return kind
    return "CPU" if measure == "cpu" else {"down": "Service down"}.get(measure, measure.title())


def _ts(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value).timestamp()
    return None


def incident_window(opened: float, closed: float | None, now: float) -> tuple[float, float]:
    """From a while before detection to a little after the close (or now)."""
    end = now if closed is None else min(closed + AFTER, now)
    end = min(max(end, opened + 60.0), opened + MAX_SPAN)
    start = opened - max(BEFORE, (end - opened) * 0.2)
    return start, end


def incident_chart(incident: Any) -> dict[str, Any] | None:
    """The incident page's chart (the incident as the page has it: a dict or a model), or
    None when the incident carries no host or opening time."""
    fields = incident if isinstance(incident, dict) else vars(incident)
    host, opened = fields.get("host"), _ts(fields.get("opened_at"))
    if not isinstance(host, str) or not host or opened is None:
        return None
    kind = fields.get("kind") if isinstance(fields.get("kind"), str) else KIND
    if kind not in chart_kinds():
        kind = KIND
    open_kind = kind if fields.get("closed_at") is None else None
    start, end = incident_window(opened, _ts(fields.get("closed_at")), time.time())
    history = host_history(host, start, end, kind, open_kind=open_kind)
    chart: dict[str, Any] = redact_strings(chart_view(history, title=chart_title(kind)))
    return chart
