"""The JSON API under /api/v1: bearer tokens only, every error ``{"error", "status"}``.

Reads need a viewer token, deciding approvals an operator's; the OpenAPI document at
/api/v1/openapi.json is public (it describes the API, not the data). Query parameters
are checked strictly: an unknown one, a bad number or an unknown status is a 400 that
names it, never a 500 and never silently ignored.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from flask.typing import ResponseReturnValue

from engine.errors import ApprovalError
from engine.read.api_queries import (
    get_approval,
    get_run,
    host_states_brief,
    runs_page,
)
from engine.read.queries import APPROVAL_STATUSES, STATUSES, incident_detail, list_approvals
from engine.read.stats import search_incidents
from engine.record.live import read_host_states
from engine.types import HostStatus
from webui.converters import MAX_ID, text_problem, use_converters
from webui.db import components, get_sessions
from webui.jsonbody import NO_BODY, BodyError, read_json
from webui.openapi import DEFAULT_LIMIT, MAX_HOSTS, MAX_LIMIT, MAX_NOTE, OPENAPI
from webui.redaction import redact_strings
from webui.security import api_auth_required, api_error

bp = Blueprint("api", __name__, url_prefix="/api/v1")
use_converters(bp)

HOST_STATUSES = tuple(s.value for s in HostStatus)
INTEGER = re.compile(r"-?[0-9]{1,19}")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # NUL breaks PostgreSQL; none belongs in a filter


class InputError(Exception):
    """A request the API refuses: becomes ``api_error(status, message)``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@bp.errorhandler(InputError)
def _input_error(error: InputError) -> Response:
    return api_error(error.status, error.message)


# -- query parameters ---------------------------------------------------------------


def _only(*allowed: str) -> None:
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        names = ", ".join(allowed) or "none"
        raise InputError(f"unknown query parameter {unknown[0]!r} (allowed: {names})")


def _int(name: str, *, low: int = 1, high: int = MAX_ID, default: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not INTEGER.fullmatch(raw):
        raise InputError(f"{name} must be an integer, not {raw[:40]!r}")
    value = int(raw)
    if not low <= value <= high:
        raise InputError(f"{name} must be between {low} and {high}, not {value}")
    return value


def _choice(name: str, choices: Iterable[str], default: str | None = None) -> str | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    options = tuple(choices)
    if raw not in options:
        raise InputError(f"unknown {name} {raw[:40]!r} (one of: {', '.join(options)})")
    return raw


def _text(name: str, max_length: int) -> str | None:
    raw = request.args.get(name)
    if raw is not None and not 1 <= len(raw) <= max_length:
        raise InputError(f"{name} must be 1-{max_length} characters")
    if raw is not None and CONTROL.search(raw):
        raise InputError(f"{name} must not contain control characters")
    return raw


def _time(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        if len(raw) == 10:  # a date: midnight UTC
            return datetime.combine(date.fromisoformat(raw), datetime.min.time(), tzinfo=UTC)
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InputError(f"{name} must be an ISO 8601 date or time, not {raw[:40]!r}") from None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise InputError(f"{name} is out of range: in UTC it falls outside years 1-9999") from None


def _limit(default: int | None = DEFAULT_LIMIT, high: int = MAX_LIMIT) -> int | None:
    return _int("limit", high=high, default=default)


def _page(items: list[dict[str, Any]], next_before: int | None) -> Response:
    # A second line of defence: the recorder redacts what it stores first.
    return jsonify(items=redact_strings(items), next_before=next_before)


# -- reads ----------------------------------------------------------------------------


@bp.get("/incidents")
@api_auth_required("viewer")
def incidents() -> ResponseReturnValue:
    _only("status", "host", "kind", "since", "until", "limit", "before")
    since, until = _time("since"), _time("until")
    if since is not None and until is not None and since >= until:
        raise InputError("since must be earlier than until")
    items, next_before = search_incidents(
        get_sessions(),
        status=_choice("status", STATUSES),
        host=_text("host", 255),
        kind=_text("kind", 32),
        since=since,
        until=until,
        limit=_limit() or DEFAULT_LIMIT,
        before_id=_int("before"),
    )
    return _page(items, next_before)


@bp.get("/incidents/<id:incident_id>")
@api_auth_required("viewer")
def incident(incident_id: int) -> ResponseReturnValue:
    _only()
    detail = incident_detail(get_sessions(), incident_id)
    if detail is None:
        return api_error(404, f"no incident with id {incident_id}")
    return jsonify(redact_strings(detail))


@bp.get("/runs")
@api_auth_required("viewer")
def runs() -> ResponseReturnValue:
    _only("limit", "before")
    items, next_before = runs_page(
        get_sessions(), limit=_limit() or DEFAULT_LIMIT, before_id=_int("before")
    )
    return _page(items, next_before)


@bp.get("/runs/<id:run_id>")
@api_auth_required("viewer")
def run(run_id: int) -> ResponseReturnValue:
    _only()
    found = get_run(get_sessions(), run_id)
    if found is None:
        return api_error(404, f"no run with id {run_id}")
    return jsonify(redact_strings(found))


@bp.get("/hosts")
@api_auth_required("viewer")
def hosts() -> ResponseReturnValue:
    _only("status", "limit", "recent")
    recent = _choice("recent", ("true", "false"), default="true") == "true"
    reader = read_host_states if recent else host_states_brief
    states = reader(
        get_sessions(),
        status=_choice("status", HOST_STATUSES),
        limit=_limit(default=None, high=MAX_HOSTS),
    )
    return jsonify(items=states)


@bp.get("/approvals")
@api_auth_required("viewer")
def approvals() -> ResponseReturnValue:
    _only("status", "limit")
    status = _choice("status", (*APPROVAL_STATUSES, "all"), default="pending")
    items = list_approvals(
        get_sessions(),
        status=None if status == "all" else status,
        limit=_limit() or DEFAULT_LIMIT,
    )
    return jsonify(items=redact_strings(items))


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(OPENAPI)


# -- deciding approvals -----------------------------------------------------------------


def _note() -> str | None:
    """The optional ``{"note": "..."}`` body; no body at all is fine."""
    try:
        body = read_json(request)
    except BodyError as exc:
        raise InputError(exc.message, exc.status) from None
    if body is NO_BODY:
        return None
    if not isinstance(body, dict):
        raise InputError('the body must be a JSON object like {"note": "..."}')
    unknown = sorted(set(body) - {"note"})
    if unknown:
        raise InputError(f"unknown field {unknown[0][:40]!r} in the body (allowed: note)")
    note = body.get("note")
    if note is None:
        return None
    if not isinstance(note, str):
        raise InputError("note must be a string")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise InputError(f"note must be at most {MAX_NOTE} characters, not {len(note)}")
    problem = text_problem("note", note)
    if problem is not None:
        raise InputError(problem)
    return note or None


def _decide(approval_id: int, *, approve: bool) -> ResponseReturnValue:
    _only()
    note = _note()
    sessions = get_sessions()
    if get_approval(sessions, approval_id) is None:
        return api_error(404, f"no approval with id {approval_id}")
    recorder = components().recorder
    try:
        recorder.decide_approval(
            approval_id, approve=approve, by=g.user.name, at=time.time(), note=note
        )
    except ApprovalError as exc:
        return api_error(409, str(exc))
    return jsonify(redact_strings(get_approval(sessions, approval_id)))


@bp.post("/approvals/<id:approval_id>/approve")
@api_auth_required("operator")
def approve(approval_id: int) -> ResponseReturnValue:
    return _decide(approval_id, approve=True)


@bp.post("/approvals/<id:approval_id>/reject")
@api_auth_required("operator")
def reject(approval_id: int) -> ResponseReturnValue:
    return _decide(approval_id, approve=False)
