"""The OpenAPI 3.1 document of ``/api/v1``, as a plain dict served at /api/v1/openapi.json.

Every route of the ``api`` blueprint is here (a test compares the two) and every schema
lists the fields the engine's ``*_dict`` functions always return as required.
"""

from __future__ import annotations

from typing import Any

from engine.read.queries import APPROVAL_STATUSES, STATUSES
from engine.types import HostStatus
from webui.converters import MAX_ID

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_HOSTS = 10_000
MAX_NOTE = 500

Schema = dict[str, Any]


def _t(kind: str, *, null: bool = False, **extra: Any) -> Schema:
    return {"type": [kind, "null"] if null else kind, **extra}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Schema], *, required: list[str] | None = None) -> Schema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


def _list(item: str, *, paged: bool) -> Schema:
    properties: dict[str, Schema] = {"items": {"type": "array", "items": _ref(item)}}
    if paged:
        properties["next_before"] = _t(
            "integer", null=True, description="pass as `before` for the next page; null: last"
        )
    return _object(properties)


STR = _t("string")
NSTR = _t("string", null=True)
TIME = _t("string", format="date-time")
NTIME = _t("string", null=True, format="date-time")
INT = _t("integer")
NINT = _t("integer", null=True)
NNUM = _t("number", null=True)

INCIDENT: dict[str, Schema] = {
    "id": INT,
    "host": STR,
    "kind": STR,
    "status": _t("string", enum=list(STATUSES)),
    "action": NSTR,
    "attempts": INT,
    "opened_at": TIME,
    "closed_at": NTIME,
    "cpu_before": NNUM,
    "cpu_after": NNUM,
    "summary": STR,
}
DECISION: dict[str, Schema] = {
    "id": INT,
    "at": TIME,
    "planner": STR,
    "action": STR,
    "confidence": _t("number"),
    "rationale": STR,
    "verdict": STR,
    "verdict_action": NSTR,
    "rule": STR,
    "reason": STR,
    "overridden": _t("boolean"),
    "run_id": NINT,
    "outcome": NSTR,
    "provider": NSTR,
    "model": NSTR,
    "latency_ms": NNUM,
    "attempts": NINT,
    "input_tokens": NINT,
    "output_tokens": NINT,
    "prompt": NSTR,
    "reply": NSTR,
    "call_error": NSTR,
    "cached": _t("boolean"),
    "fallback": NSTR,
}
TIMELINE_ENTRY: dict[str, Schema] = {"at": TIME, "kind": STR, "message": STR, "run_id": NINT}

SCHEMAS: dict[str, Schema] = {
    "Error": _object({"error": STR, "status": INT}),
    "Incident": _object(INCIDENT),
    "Decision": _object(DECISION),
    "IncidentDetail": _object(
        {
            **INCIDENT,
            "decisions": {"type": "array", "items": _ref("Decision")},
            "approvals": {"type": "array", "items": _ref("Approval")},
            "runs": {"type": "array", "items": _ref("Run")},
            "timeline": {"type": "array", "items": _object(TIMELINE_ENTRY)},
        }
    ),
    "Run": _object(
        {
            "id": INT,
            "ident": STR,
            "action": STR,
            "playbook": STR,
            "hosts": {"type": "array", "items": STR},
            "check_mode": _t("boolean"),
            "trigger": _t("string", enum=["engine", "manual"]),
            "requested_by": STR,
            "extra_var_names": {"type": "array", "items": STR},
            "status": STR,
            "rc": NINT,
            "stats": _t("object", description="per host: ok, changed, failures, ... counts"),
            "artifact_dir": STR,
            "error": NSTR,
            "started_at": NTIME,
            "ended_at": NTIME,
        }
    ),
    "HostState": _object(
        {
            "host": STR,
            "status": _t("string", enum=[s.value for s in HostStatus]),
            "value": NNUM,
            "reason": STR,
            "since": TIME,
            "sample_ts": NTIME,
            "updated_at": TIME,
            "recent": {
                "type": "array",
                "description": "the last samples as [unix_seconds, value] pairs; "
                "absent with recent=false",
                "items": {"type": "array", "items": _t("number")},
            },
        },
        required=["host", "status", "value", "reason", "since", "sample_ts", "updated_at"],
    ),
    "Approval": _object(
        {
            "id": INT,
            "incident_id": INT,
            "host": STR,
            "action": STR,
            "status": _t("string", enum=list(APPROVAL_STATUSES)),
            "rationale": STR,
            "requested_at": TIME,
            "expires_at": TIME,
            "decided_at": NTIME,
            "decided_by": NSTR,
            "note": NSTR,
        }
    ),
    "Decide": {
        "type": "object",
        "properties": {"note": _t("string", maxLength=MAX_NOTE)},
        "additionalProperties": False,
    },
    "IncidentPage": _list("Incident", paged=True),
    "RunPage": _list("Run", paged=True),
    "HostList": _list("HostState", paged=False),
    "ApprovalList": _list("Approval", paged=False),
}

ERRORS = {
    400: "a query parameter or the body is invalid (the message names it)",
    401: "no valid bearer token",
    403: "the token's user lacks the role",
    404: "no such id",
    409: "the approval is no longer pending (decided or expired)",
    413: "the body is too large",
    415: "the body is not application/json",
}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path(name: str) -> Schema:
    schema = _t("integer", minimum=1, maximum=MAX_ID)
    return {"name": name, "in": "path", "required": True, "schema": schema}


LIMIT = _query(
    "limit",
    _t("integer", minimum=1, maximum=MAX_LIMIT, default=DEFAULT_LIMIT),
    "page size",
)
BEFORE = _query(
    "before",
    _t("integer", minimum=1, maximum=MAX_ID),
    "keyset: only ids below this (next_before)",
)


def _op(
    summary: str,
    schema: str | None,
    *,
    errors: tuple[int, ...] = (400, 401),
    params: list[Schema] | None = None,
    role: str = "viewer",
    body: bool = False,
) -> Schema:
    responses: dict[str, Any] = {}
    if schema is not None:
        content = {"application/json": {"schema": _ref(schema)}}
        responses["200"] = {"description": "OK", "content": content}
    for code in errors:
        error = {"application/json": {"schema": _ref("Error")}}
        responses[str(code)] = {"description": ERRORS[code], "content": error}
    op: Schema = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if role != "viewer":
        op["description"] = f"Needs a token of a user with the {role} role (or above)."
    if body:
        op["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": _ref("Decide")}},
        }
    return op


def _decide(verb: str) -> Schema:
    return {
        "post": _op(
            f"{verb.capitalize()} a pending approval",
            "Approval",
            errors=(400, 401, 403, 404, 409, 413, 415),
            params=[_path("approval_id")],
            role="operator",
            body=True,
        )
    }


PATHS: dict[str, Schema] = {
    "/api/v1/incidents": {
        "get": _op(
            "Incidents, newest first",
            "IncidentPage",
            params=[
                _query("status", _t("string", enum=list(STATUSES)), "only this status"),
                _query("host", STR, "only this host"),
                _query("kind", STR, "only this kind (cpu, ...)"),
                _query("since", TIME, "opened at or after (ISO 8601; a date is midnight UTC)"),
                _query("until", TIME, "opened before (ISO 8601; no zone means UTC)"),
                LIMIT,
                BEFORE,
            ],
        )
    },
    "/api/v1/incidents/{incident_id}": {
        "get": _op(
            "One incident with its decisions, approvals, runs and timeline",
            "IncidentDetail",
            errors=(401, 404),
            params=[_path("incident_id")],
        )
    },
    "/api/v1/runs": {"get": _op("Playbook runs, newest first", "RunPage", params=[LIMIT, BEFORE])},
    "/api/v1/runs/{run_id}": {
        "get": _op("One playbook run", "Run", errors=(401, 404), params=[_path("run_id")])
    },
    "/api/v1/hosts": {
        "get": _op(
            "Live host states as the engine last published them: high CPU, unknown, normal",
            "HostList",
            params=[
                _query("status", _t("string", enum=[s.value for s in HostStatus]), "only this"),
                _query("limit", _t("integer", minimum=1, maximum=MAX_HOSTS), "default: all"),
                _query(
                    "recent",
                    _t("string", enum=["true", "false"], default="true"),
                    "false: leave out the samples (much smaller and faster for a fleet)",
                ),
            ],
        )
    },
    "/api/v1/approvals": {
        "get": _op(
            "Approvals: pending oldest first, any other status newest first",
            "ApprovalList",
            params=[
                _query(
                    "status",
                    _t("string", enum=[*APPROVAL_STATUSES, "all"], default="pending"),
                    "pending (default), approved, rejected, expired or all",
                ),
                LIMIT,
            ],
        )
    },
    "/api/v1/approvals/{approval_id}/approve": _decide("approve"),
    "/api/v1/approvals/{approval_id}/reject": _decide("reject"),
    "/api/v1/openapi.json": {
        "get": {
            "summary": "This document (no token needed)",
            "security": [],
            "responses": {
                "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}
            },
        }
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "AutoSRE API",
        "version": "1",
        "description": "Read incidents, runs, host states and approvals; decide approvals. "
        "Every error is JSON: {error, status}. "
        "Tokens: `autosre tokens create <user> --name <what for>`.",
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
}
