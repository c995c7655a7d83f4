"""The Prometheus check: per signal kind, the policy's query (one range query, as a tick
asks it, through the engine's own source) returns series that match the inventory."""

from __future__ import annotations

import logging
import time

from engine.doctor.report import Finding, fail, names, ok, skip
from engine.inventory_types import Inventory
from engine.metrics.prometheus import PrometheusSource
from engine.metrics.series_map import SeriesMap
from engine.policy.schema import Policy, SignalRule
from engine.redact import redact_url

NAME = "prometheus"


def check_prometheus(
    url: str | None, policy: Policy, inventory: Inventory, *, timeout: float
) -> list[Finding]:
    """One line per watched signal kind: ok when every inventory host has a series."""
    if not url:
        return [skip(NAME, "not configured (AUTOSRE_PROMETHEUS_URL unset: this host is read)")]
    series = inventory.series_map()  # InventoryError when ambiguous: the check's failure
    # The source logs unmatched series once each: doctor counts them on its own line instead.
    logging.getLogger("autosre.metrics").disabled = True
    try:
        return [
            _kind(kind, rule, url, series_map=series, inventory=inventory, timeout=timeout)
            for kind, rule in policy.signals.items()
        ]
    finally:
        logging.getLogger("autosre.metrics").disabled = False


def _kind(
    kind: str,
    rule: SignalRule,
    url: str,
    *,
    series_map: SeriesMap,
    inventory: Inventory,
    timeout: float,
) -> Finding:
    check = f"{NAME} {kind}"
    source = PrometheusSource(
        url=url,
        query=rule.promql,
        series=series_map,
        lookback=rule.lookback,
        step=rule.step,
        label=rule.label,
        timeout=timeout,
        incremental=False,
        stale_after=rule.staleness,
    )
    try:
        batch = source.fetch(time.time())
    finally:
        source.close()
    if batch.error is not None:
        return fail(check, f"{redact_url(url)}: {batch.error}")
    hosts = set(inventory.hosts)
    missing = {host for host in hosts if not batch.windows.get(host)}
    strays = len(batch.unmatched)
    extra = f"; {strays} series match no inventory host" if strays else ""
    if missing:
        return fail(
            check,
            f"{len(missing)} of {len(hosts)} host(s) have no series by {rule.label}: "
            f"{names(missing)}{extra}",
        )
    return ok(check, f"{len(hosts)} host(s) have series{extra}")
