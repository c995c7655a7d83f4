"""The JSON API under /api/v1: bearer tokens only, every error ``{"error", "status"}``.

Reads need a viewer token, deciding approvals and handling incidents (acknowledge,
assign, resolve) an operator's; the OpenAPI document at
/api/v1/openapi.json is public (it describes the API, not the data). Each route's query
parameters and body are models (webui/api_requests.py) that both check the request and
describe it in the document (webui/openapi.py), as the read models describe the replies.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel

from engine.errors import ApprovalError
from engine.read.approvals import get_approval, list_approvals
from engine.read.hosts import CursorError, HostPage, read_host_page
from engine.read.incidents import incident_detail, list_incidents
from engine.read.models import (
    Approval,
    ApprovalList,
    IncidentDetail,
    IncidentPage,
    Run,
    RunPage,
)
from engine.read.runs import get_run, list_runs
from engine.record.handling import Handling, HandlingError, HandlingRecords
from webui.api_requests import (
    ApprovalQuery,
    Decide,
    HostQuery,
    IncidentQuery,
    Query,
    RequestError,
    RunQuery,
    parsed_query,
    validated,
)
from webui.converters import text_problem, use_converters
from webui.db import components, get_sessions
from webui.incident_actions import AcknowledgeBody, AssignBody, IncidentHandling, ResolveBody
from webui.jsonbody import NO_BODY, BodyError, read_json
from webui.openapi import Operation, documented, openapi_document
from webui.redaction import redact_strings
from webui.security import View, api_auth_required, api_error

bp = Blueprint("api", __name__, url_prefix="/api/v1")
BodyT = TypeVar("BodyT", bound=BaseModel)
use_converters(bp)


@bp.errorhandler(RequestError)
@bp.errorhandler(BodyError)
def _refused(error: RequestError | BodyError) -> Response:
    return api_error(error.status, error.message)


def _reply(model: BaseModel) -> Response:
    # A second line of defence: the recorder redacts what it stores first.
    return jsonify(redact_strings(model.model_dump(mode="json")))


def _route(operation: Operation) -> Callable[[View[Any]], View[Any]]:
    """The token check the operation asks for (none when public), and its documentation."""

    def decorate(view: View[Any]) -> View[Any]:
        guarded = view if operation.role is None else api_auth_required(operation.role)(view)
        return documented(operation)(guarded)

    return decorate


# -- reads ----------------------------------------------------------------------------


@bp.get("/incidents")
@_route(Operation("Incidents, newest first", IncidentPage, query=IncidentQuery))
def incidents() -> ResponseReturnValue:
    query = parsed_query(IncidentQuery)
    page = list_incidents(
        get_sessions(),
        status=query.status,
        host=query.host,
        kind=query.kind,
        since=query.since,
        until=query.until,
        limit=query.limit,
        before_id=query.before,
    )
    return _reply(page)


ONE_INCIDENT = "One incident with its decisions, approvals, runs and timeline"


@bp.get("/incidents/<id:incident_id>")
@_route(Operation(ONE_INCIDENT, IncidentDetail, query=Query, errors=(400, 401, 404)))
def incident(incident_id: int) -> ResponseReturnValue:
    parsed_query(Query)
    detail = incident_detail(get_sessions(), incident_id)
    if detail is None:
        return api_error(404, f"no incident with id {incident_id}")
    return _reply(detail)


@bp.get("/runs")
@_route(Operation("Playbook runs, newest first", RunPage, query=RunQuery))
def runs() -> ResponseReturnValue:
    query = parsed_query(RunQuery)
    return _reply(list_runs(get_sessions(), limit=query.limit, before_id=query.before))


@bp.get("/runs/<id:run_id>")
@_route(Operation("One playbook run", Run, query=Query, errors=(400, 401, 404)))
def run(run_id: int) -> ResponseReturnValue:
    parsed_query(Query)
    found = get_run(get_sessions(), run_id)
    if found is None:
        return api_error(404, f"no run with id {run_id}")
    return _reply(found)


HOSTS = "Live host states as the engine last published them: high CPU, unknown, normal"


@bp.get("/hosts")
@_route(Operation(HOSTS, HostPage, query=HostQuery))
def hosts() -> ResponseReturnValue:
    query = parsed_query(HostQuery)
    try:
        page = read_host_page(
            get_sessions(),
            recent=query.recent == "true",
            status=query.status,
            limit=query.limit,
            after=query.after,
        )
    except CursorError as exc:
        raise RequestError(str(exc)) from None
    # Not redacted: host names, states and numbers only. Dumped by pydantic straight to
    # JSON: a fleet's samples through Python dicts would take several times as long.
    return Response(page.model_dump_json(), mimetype="application/json")


APPROVALS = "Approvals: pending oldest first, any other status newest first"


@bp.get("/approvals")
@_route(Operation(APPROVALS, ApprovalList, query=ApprovalQuery))
def approvals() -> ResponseReturnValue:
    query = parsed_query(ApprovalQuery)
    status = None if query.status == "all" else query.status
    found = list_approvals(get_sessions(), status=status, limit=query.limit)
    return _reply(ApprovalList(items=found))


@bp.get("/openapi.json")
@_route(Operation("This document (no token needed)", None, role=None, errors=()))
def openapi() -> ResponseReturnValue:
    return jsonify(openapi_document(current_app))


# -- deciding approvals -----------------------------------------------------------------


def _note() -> str | None:
    """The optional ``{"note": "..."}`` body, stripped; no body at all is fine."""
    body = read_json(request)
    if body is NO_BODY:
        return None
    if not isinstance(body, dict):
        raise RequestError('the body must be a JSON object like {"note": "..."}')
    note = (validated(Decide, body, "field in the body").note or "").strip()
    problem = text_problem("note", note)
    if problem is not None:
        raise RequestError(problem)
    return note or None


def _decide(approval_id: int, *, approve: bool) -> ResponseReturnValue:
    parsed_query(Query)
    note = _note()
    sessions = get_sessions()
    if get_approval(sessions, approval_id) is None:
        return api_error(404, f"no approval with id {approval_id}")
    recorder = components().recorder
    try:
        recorder.approvals.decide(
            approval_id, approve=approve, by=g.user.name, at=time.time(), note=note
        )
    except ApprovalError as exc:
        return api_error(409, str(exc))
    decided = get_approval(sessions, approval_id)
    if decided is None:  # deleted in between: nothing in AutoSRE does, but say so
        return api_error(404, f"no approval with id {approval_id}")
    return _reply(decided)


def _decision(verb: str) -> Operation:
    return Operation(
        f"{verb.capitalize()} a pending approval",
        Approval,
        query=Query,
        body=Decide,
        errors=(400, 401, 403, 404, 409, 413, 415),
        role="operator",
    )


@bp.post("/approvals/<id:approval_id>/approve")
@_route(_decision("approve"))
def approve(approval_id: int) -> ResponseReturnValue:
    return _decide(approval_id, approve=True)


@bp.post("/approvals/<id:approval_id>/reject")
@_route(_decision("reject"))
def reject(approval_id: int) -> ResponseReturnValue:
    return _decide(approval_id, approve=False)


# -- people handling incidents ----------------------------------------------------------------


def _body(model: type[BodyT], *, required: bool) -> BodyT:
    """The JSON object body as the model; an absent body is the model's defaults if allowed."""
    body = read_json(request)
    if body is NO_BODY and not required:
        body = {}
    if not isinstance(body, dict):
        fields = ", ".join(f'"{name}": ...' for name in model.model_fields)
        raise RequestError(f"the body must be a JSON object like {{{fields}}}")
    return validated(model, body, "field in the body")


def _handle(act: Callable[[HandlingRecords], Handling]) -> ResponseReturnValue:
    try:
        marks = act(components().recorder.handling)
    except HandlingError as exc:
        return api_error(exc.status, exc.message)
    return _reply(IncidentHandling.of(marks))


def _handling(summary: str, body: type[BaseModel]) -> Operation:
    errors = (400, 401, 403, 404, 409, 413, 415)
    return Operation(
        summary, IncidentHandling, query=Query, body=body, errors=errors, role="operator"
    )


@bp.post("/incidents/<id:incident_id>/acknowledge")
@_route(_handling("Acknowledge an incident: you are on it", AcknowledgeBody))
def acknowledge(incident_id: int) -> ResponseReturnValue:
    parsed_query(Query)
    note = _body(AcknowledgeBody, required=False).note
    by = g.user.name
    return _handle(lambda h: h.acknowledge(incident_id, by=by, at=time.time(), note=note))


@bp.post("/incidents/<id:incident_id>/assign")
@_route(_handling("Assign an incident to a web user", AssignBody))
def assign(incident_id: int) -> ResponseReturnValue:
    parsed_query(Query)
    to = _body(AssignBody, required=True).assignee
    by = g.user.name
    return _handle(lambda h: h.assign(incident_id, to=to, by=by, at=time.time()))


@bp.post("/incidents/<id:incident_id>/resolve")
@_route(_handling("Resolve an incident by hand, with a note (409 while remediated)", ResolveBody))
def resolve(incident_id: int) -> ResponseReturnValue:
    parsed_query(Query)
    note = _body(ResolveBody, required=True).note
    by = g.user.name
    return _handle(lambda h: h.resolve(incident_id, by=by, at=time.time(), note=note))
