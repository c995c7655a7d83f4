"""Which host and which signal kind one pushed alert is about, by its labels: pure.

The host comes from the policy's ``host_label`` (``instance`` by default) through the
inventory's SeriesMap, exactly as a metrics series is matched (``autosre_instance``,
the label with its port, then names and unshared addresses). The kind comes from the
policy's ``kind_label`` when the alert carries it, else from its alertname in ``kinds``.
An alert that maps to no host or no watched kind is ignored, with the reason.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from engine.metrics.series_map import SeriesMap
from engine.policy.push_schema import Alerts
from engine.push.payload import Alert, WebhookPayload, shown
from engine.record.alert_events import Received


@dataclass(frozen=True, slots=True)
class Routed:
    """The alert is about this host's signal of this kind."""

    host: str
    kind: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """The alert is about nothing the engine watches; why, in words."""

    reason: str


def route_alert(
    alert: Alert, alerts: Alerts, series: SeriesMap, watched: Collection[str]
) -> Routed | Ignored:
    """Map one alert to (host, kind), or say why it cannot be."""
    value = alert.labels.get(alerts.host_label)
    if not value:
        return Ignored(f"no {alerts.host_label} label")
    host = series.host_of(value)
    if host is None:
        return Ignored(f"{alerts.host_label} {shown(value)} is no inventory host")
    explicit = alerts.kind_label and alert.labels.get(alerts.kind_label)
    if explicit:
        # Named outright: a wrong name is a mistake to show, never a reason to guess.
        kind = explicit
        source = f"{alerts.kind_label} {shown(kind)}"
    elif alert.alertname in alerts.kinds:
        kind = alerts.kinds[alert.alertname]
        source = f"alertname {shown(alert.alertname)} ({kind})"
    else:
        label = f" and no {alerts.kind_label} label" if alerts.kind_label else ""
        return Ignored(f"alertname {shown(alert.alertname)} is not in alerts.kinds{label}")
    if kind not in watched:
        return Ignored(f"{source} is not a signal kind the policy watches")
    return Routed(host, kind)


def routed_alerts(
    payload: WebhookPayload, alerts: Alerts, series: SeriesMap, watched: Collection[str]
) -> list[Received]:
    """Every alert of the payload, routed or ignored, as the store keeps it."""
    found = []
    for alert in payload.alerts:
        where = route_alert(alert, alerts, series, watched)
        routed = where if isinstance(where, Routed) else None
        found.append(
            Received(
                fingerprint=alert.fingerprint,
                status=alert.status,
                alertname=alert.alertname,
                starts_at=alert.starts_at,
                # A firing alert's endsAt is Alertmanager's guess (or year 1): not kept.
                ends_at=alert.ends_at if alert.status == "resolved" else None,
                labels=dict(alert.labels),
                host=routed.host if routed else None,
                kind=routed.kind if routed else None,
                reason=where.reason if isinstance(where, Ignored) else None,
            )
        )
    return found
