"""POST /api/v1/alerts: Alertmanager's webhook receiver. It only writes to the store.

Nested in webui/api.py's blueprint (documented and fuzzed with the rest of /api/v1), but
with a token of its own: the value of the variable the policy's ``alerts.token_env``
names, sent by Alertmanager as a bearer token (``http_config.authorization``) or as the
password of ``basic_auth`` (a shared secret). Without that variable set the receiver is
off (404), never open. Bad tokens are 401, malformed payloads 400 (naming the problem),
bodies or posts too large 413, more new alerts a minute than the policy allows 429.
Routing (engine/push/route.py) happens here; the engine takes the stored events on its
next tick (engine/push/inbox.py), so the receiver and the engine may be different processes.
"""

from __future__ import annotations

import logging
import os
import time

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, Field

from engine.errors import InventoryError, SettingsError
from engine.metrics.series_map import SeriesMap
from engine.push.payload import PayloadError, WebhookPayload, parse_payload
from engine.push.route import routed_alerts
from engine.push.token import alerts_token, presented_token, token_matches
from engine.record.alert_events import AlertEventRecords, AlertRateError
from webui.db import components
from webui.jsonbody import NO_BODY, BodyError, read_json
from webui.openapi import Operation, documented
from webui.security import api_error

log = logging.getLogger("autosre.webui")
bp = Blueprint("alerts", __name__)

MAX_BODY = 1024 * 1024  # bytes: set max_alerts in Alertmanager's webhook_config to stay under
MAX_DEPTH = 4  # the payload, its alerts, an alert, its labels
ENVIRONMENT_KEY = "ALERTS_ENVIRONMENT"  # app.config: the environment to read (tests)
TOKEN_KEY = "autosre_alerts_token"  # noqa: S105 - a key name; app.extensions: the token, read once per app
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="autosre-alerts"'}


class AlertsReceived(BaseModel):
    """What one post added: alerts stored for the engine, ignored ones, re-sent ones."""

    accepted: int = Field(description="new alerts mapped to a host and a watched kind")
    ignored: int = Field(description="new alerts that map to no host or kind (stored, counted)")
    duplicate: int = Field(description="alerts stored before (Alertmanager re-sends groups)")


def _token(app: Flask) -> str | None:
    """The receiver's token (None: off), read once; an unusable one turns it off, logged."""
    if TOKEN_KEY not in app.extensions:
        env = app.config.get(ENVIRONMENT_KEY)
        try:
            token = alerts_token(components().policy.alerts, os.environ if env is None else env)
        except SettingsError as exc:  # the message names the variable, never its value
            log.error("the alerts receiver is off: %s", exc)
            token = None
        app.extensions[TOKEN_KEY] = token
    found: str | None = app.extensions[TOKEN_KEY]
    return found


@bp.post("/alerts")
@documented(
    Operation(
        "Alertmanager's webhook receiver: alerts pushed to the engine (its own token)",
        AlertsReceived,
        body=WebhookPayload,
        errors=(400, 401, 404, 413, 415, 429),
    )
)
def receive() -> ResponseReturnValue:
    """Store the posted alerts (routed to hosts and kinds, or ignored with the reason)."""
    token = _token(current_app._get_current_object())  # type: ignore[attr-defined]
    if token is None:
        return api_error(404, "the alerts receiver is off: set the variable alerts.token_env names")
    if not token_matches(token, presented_token(request.headers.get("Authorization", ""))):
        return api_error(401, "the alerts receiver's token is required", CHALLENGE)
    try:
        data = read_json(request, max_bytes=MAX_BODY, max_depth=MAX_DEPTH)
        if data is NO_BODY:
            raise PayloadError("the body is empty: post Alertmanager's webhook payload")
        payload = parse_payload(data)
    except BodyError as exc:
        return api_error(exc.status, exc.message)
    except PayloadError as exc:
        return api_error(400, str(exc))
    parts = components()
    alerts = parts.policy.alerts
    if len(payload.alerts) > alerts.max_per_post:
        return api_error(
            413,
            f"{len(payload.alerts)} alerts in one post, at most {alerts.max_per_post} "
            "(set max_alerts in Alertmanager's webhook_config)",
        )
    try:
        series = _series(current_app._get_current_object())  # type: ignore[attr-defined]
        stored = AlertEventRecords(parts.recorder.journal).receive(
            routed_alerts(payload, alerts, series, parts.policy.signals),
            time.time(),
            per_minute=alerts.max_per_minute,
        )
    except AlertRateError as exc:
        return api_error(429, str(exc), {"Retry-After": str(exc.retry_after)})
    except InventoryError as exc:  # an ambiguous inventory: the engine refuses it too
        log.error("alerts cannot be routed: %s", exc)
        return api_error(503, "alerts cannot be routed: the inventory is ambiguous")
    reply: Response = jsonify(
        AlertsReceived.model_validate(stored, from_attributes=True).model_dump()
    )
    return reply


def _series(app: Flask) -> SeriesMap:
    """The inventory's series map, built once per app (as the engine builds it at start)."""
    found: SeriesMap | None = app.extensions.get("autosre_alerts_series")
    if found is None:
        found = app.extensions.setdefault(
            "autosre_alerts_series", components().inventory.series_map()
        )
    return found
