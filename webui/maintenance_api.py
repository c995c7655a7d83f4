"""Maintenance windows and re-enabling hosts through the JSON API, under /api/v1.

A blueprint nested in webui/api.py's (so its routes are in the OpenAPI document and fuzzed
with the rest): reads need a viewer token, every write an operator's. Bad input is a 400
naming it; an unknown window 404; a window already over, or a host that is not out, 409.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from flask import Blueprint, Response, g, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel, ConfigDict, Field

from engine.durations import parse_duration
from engine.errors import MaintenanceError
from engine.policy.maintenance_request import MAX_REASON, window_request
from engine.read.maintenance import (
    DisabledHostList,
    HostEnabled,
    MaintenanceList,
    MaintenanceWindow,
    disabled_hosts,
    get_window,
    list_windows,
)
from engine.timeutil import to_dt
from webui.api_requests import Host, Limit, Moment, Query, RequestError, parsed_query, validated
from webui.converters import use_converters
from webui.db import components, get_sessions
from webui.jsonbody import NO_BODY, read_json
from webui.openapi import Operation, documented
from webui.redaction import redact_strings
from webui.security import View, api_auth_required, api_error

bp = Blueprint("maintenance", __name__)
use_converters(bp)

DURATION = r"^\s*\d{1,9}(\.\d{1,9})?\s*(ms|s|m|h|d)?\s*$"
WRITES = (400, 401, 403, 404, 409, 413, 415)


class WindowQuery(Query):
    """Which windows: the current ones (active or scheduled), or all."""

    all: Literal["true", "false"] = Field(
        default="false", description="true: every window, newest first"
    )
    limit: Limit = Field(default=100, description="at most this many")


class StartWindow(BaseModel):
    """A new window: one host or one group, a reason, and an end (a duration or a time)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: Host | None = Field(default=None, description="an inventory host")
    group: Host | None = Field(default=None, description="an inventory group")
    reason: Annotated[str, Field(min_length=1, max_length=MAX_REASON)]
    duration: Annotated[str, Field(pattern=DURATION, max_length=32)] | None = Field(
        default=None, description="how long: 90m, 2h, 1d (or seconds)"
    )
    until: Moment | None = Field(default=None, description="when it ends (ISO 8601)")
    start: Moment | None = Field(default=None, description="when it starts (default: now)")


class EnableHost(BaseModel):
    """The host to put back under automatic remediation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: Host


def _route(operation: Operation) -> Callable[[View[Any]], View[Any]]:
    def decorate(view: View[Any]) -> View[Any]:
        role = operation.role or "viewer"
        return documented(operation)(api_auth_required(role)(view))

    return decorate


def _reply(model: BaseModel) -> Response:
    return jsonify(redact_strings(model.model_dump(mode="json")))


def _body(model: type[BaseModel]) -> Any:
    body = read_json(request)
    if body is NO_BODY or not isinstance(body, dict):
        raise RequestError("the body must be a JSON object (see the OpenAPI document)")
    return validated(model, body, "field in the body")


@bp.get("/maintenance")
@_route(
    Operation(
        "Maintenance windows: current ones by expiry, or all", MaintenanceList, query=WindowQuery
    )
)
def windows() -> ResponseReturnValue:
    query = parsed_query(WindowQuery)
    found = list_windows(get_sessions(), current=query.all == "false", limit=query.limit)
    return _reply(MaintenanceList(items=found))


@bp.post("/maintenance")
@_route(
    Operation(
        "Start (or schedule) a maintenance window",
        MaintenanceWindow,
        query=Query,
        body=StartWindow,
        errors=(400, 401, 403, 413, 415),
        role="operator",
    )
)
def start() -> ResponseReturnValue:
    parsed_query(Query)
    asked: StartWindow = _body(StartWindow)
    parts = components()
    now = time.time()
    try:
        made = window_request(
            parts.inventory,
            host=asked.host,
            group=asked.group,
            reason=asked.reason,
            now=now,
            max_duration=parts.policy.remediation.maintenance.max_duration,
            starts_at=asked.start.timestamp() if asked.start else None,
            duration=parse_duration(asked.duration) if asked.duration else None,
            until=asked.until.timestamp() if asked.until else None,
        )
    except (MaintenanceError, ValueError, OverflowError) as exc:
        raise RequestError(str(exc)) from None
    window_id = parts.recorder.maintenance.start(made, by=g.user.name, source="api", at=now)
    found = get_window(get_sessions(), window_id)
    assert found is not None
    return _reply(found)


@bp.post("/maintenance/<id:window_id>/end")
@_route(
    Operation(
        "End a maintenance window now",
        MaintenanceWindow,
        query=Query,
        errors=(400, 401, 403, 404, 409),
        role="operator",
    )
)
def end(window_id: int) -> ResponseReturnValue:
    parsed_query(Query)
    sessions = get_sessions()
    if get_window(sessions, window_id) is None:
        return api_error(404, f"no maintenance window with id {window_id}")
    try:
        components().recorder.maintenance.end(window_id, by=g.user.name, at=time.time())
    except MaintenanceError as exc:
        return api_error(409, str(exc))
    found = get_window(sessions, window_id)
    assert found is not None
    return _reply(found)


@bp.get("/hosts/disabled")
@_route(
    Operation("Hosts taken out of automatic remediation (flapping)", DisabledHostList, query=Query)
)
def disabled() -> ResponseReturnValue:
    parsed_query(Query)
    return _reply(DisabledHostList(items=disabled_hosts(get_sessions())))


@bp.post("/hosts/enable")
@_route(
    Operation(
        "Put a host taken out for flapping back under automatic remediation",
        HostEnabled,
        query=Query,
        body=EnableHost,
        errors=WRITES,
        role="operator",
    )
)
def enable() -> ResponseReturnValue:
    parsed_query(Query)
    asked: EnableHost = _body(EnableHost)
    parts = components()
    if asked.host not in parts.inventory.hosts:
        return api_error(404, f"no host {asked.host[:100]!r} in the inventory")
    now = time.time()
    try:
        parts.recorder.maintenance.enable(asked.host, by=g.user.name, at=now)
    except MaintenanceError as exc:
        return api_error(409, str(exc))
    return _reply(HostEnabled(host=asked.host, enabled_at=to_dt(now), enabled_by=g.user.name))
