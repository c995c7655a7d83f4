"""The OpenAPI 3.1 document of ``/api/v1``, built with apispec from the routes and the models.

apispec, not spectree or flask-openapi3: it only assembles the document, and leaves each
request to us. spectree and flask-openapi3 validate requests themselves and answer bad
input with their own 422 body unless hooked per route, and flask-openapi3 also swaps
Flask and Blueprint for its own classes; here our ``{"error", "status"}`` replies, strict
400s, bearer decorator and plain blueprint stay as they are. apispec is typed, maintained
(marshmallow-code), pure Python, and OpenAPI 3.1's schemas are the JSON schemas pydantic
writes, so the read models go in unchanged.

Each route of the blueprint declares an ``Operation`` (``documented``); the document is
built from the app's URL map once per app, and a route without one is an error, not a gap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from apispec import APISpec
from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema
from werkzeug.routing import Rule

from webui.converters import MAX_ID

Schema = dict[str, Any]
ViewT = TypeVar("ViewT", bound=Callable[..., Any])

REF = "#/components/schemas/{model}"
DOCUMENT_KEY = "autosre_openapi"
ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
PATH_SCHEMAS: dict[str, Schema] = {"id": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}
ERRORS = {
    400: "a query parameter or the body is invalid (the message names it)",
    401: "no valid bearer token",
    403: "the token's user lacks the role",
    404: "no such id (POST /api/v1/alerts: the receiver is off)",
    409: "no longer possible: the approval is decided or expired, the window is over, "
    "the host is not out of automatic remediation, or the run has ended",
    413: "the body is too large",
    415: "the body is not application/json",
    429: "too many new alerts this minute (the policy's alerts.max_per_minute)",
}
DESCRIPTION = (
    "Read incidents, runs, host states and approvals; decide approvals. "
    "Every error is JSON: {error, status}. "
    "Tokens: `autosre tokens create <user> --name <what for>`."
)


class Error(BaseModel):
    """What every error answers: the message, and the HTTP status again."""

    error: str
    status: int


@dataclass(frozen=True, slots=True)
class Operation:
    """What the document says of one route: its models, errors and who may call it."""

    summary: str
    response: type[BaseModel] | None  # None: not JSON described by a model (this document)
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    errors: tuple[int, ...] = (400, 401)
    role: str | None = "viewer"  # None: public, no token


OPERATIONS: dict[Callable[..., Any], Operation] = {}


def documented(operation: Operation) -> Callable[[ViewT], ViewT]:
    """Record the operation of the view it decorates (the function the route calls)."""

    def record(view: ViewT) -> ViewT:
        OPERATIONS[view] = operation
        return view

    return record


class _Generator(GenerateJsonSchema):
    """Pydantic's JSON schemas without the titles it makes up from field names."""

    def field_title_should_be_set(self, schema: object) -> bool:
        return False


def _not_null(schema: Schema) -> Schema:
    """A query parameter's schema: absent is None, and no query string carries a null."""
    options = [s for s in schema.get("anyOf", ()) if s != {"type": "null"}]
    rest = {k: v for k, v in schema.items() if k != "anyOf" and (k, v) != ("default", None)}
    if len(options) == 1:
        return {**options[0], **rest}
    return {**rest, "anyOf": options} if options else rest


def _query_parameters(schema: Schema) -> list[Schema]:
    required = set(schema.get("required", ()))
    parameters = []
    for name, field in schema.get("properties", {}).items():
        described = _not_null(field)
        parameter = {"name": name, "in": "query", "required": name in required}
        if "description" in described:
            parameter["description"] = described.pop("description")
        parameters.append({**parameter, "schema": described})
    return parameters


def _path(rule: Rule) -> tuple[str, list[Schema]]:
    """The rule as an OpenAPI path, and its path parameters (each converter's bounds)."""
    parameters = []
    for converter, name in ARGUMENT.findall(rule.rule):
        if converter not in PATH_SCHEMAS:
            raise LookupError(f"{rule.rule}: no schema for the {converter or 'default'} converter")
        schema = PATH_SCHEMAS[converter]
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return ARGUMENT.sub(r"{\2}", rule.rule), parameters


def _routes(app: Flask, blueprint: str) -> Iterator[tuple[str, str, list[Schema], Operation]]:
    """(path, method, path parameters, operation) for each route of the blueprint."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint.partition(".")[0] != blueprint:
            continue
        operation = OPERATIONS.get(app.view_functions[rule.endpoint])
        if operation is None:
            raise LookupError(f"{rule.rule} has no documented Operation")
        path, parameters = _path(rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield path, method.lower(), parameters, operation


def _operation(
    operation: Operation, parameters: list[Schema], queries: dict[str, Schema]
) -> Schema:
    responses: dict[int, Schema] = {}
    if operation.response is None:
        responses[200] = {"description": "OpenAPI 3.1", "content": {"application/json": {}}}
    else:
        content = {"application/json": {"schema": operation.response.__name__}}
        responses[200] = {"description": "OK", "content": content}
    for code in operation.errors:
        error = {"application/json": {"schema": Error.__name__}}
        responses[code] = {"description": ERRORS[code], "content": error}
    described: Schema = {"summary": operation.summary, "responses": responses}
    if operation.query is not None:
        parameters = parameters + _query_parameters(queries[operation.query.__name__])
    if parameters:
        described["parameters"] = parameters
    if operation.role is None:
        described["security"] = []
    elif operation.role != "viewer":
        described["description"] = (
            f"Needs a token of a user with the {operation.role} role (or above)."
        )
    if operation.body is not None:
        content = {"application/json": {"schema": operation.body.__name__}}
        described["requestBody"] = {"required": False, "content": content}
    return described


def build_document(app: Flask, *, blueprint: str = "api") -> Schema:
    """The document of every route of the blueprint, from the models their operations name."""
    routes = list(_routes(app, blueprint))
    queries = {op.query for *_, op in routes if op.query is not None}
    models = {Error} | {m for *_, op in routes for m in (op.response, op.body) if m is not None}
    _, top = models_json_schema(
        [(model, "validation") for model in sorted(models | queries, key=lambda m: m.__name__)],
        ref_template=REF,
        schema_generator=_Generator,
    )
    schemas: dict[str, Schema] = top.get("$defs", {})
    query_schemas = {model.__name__: schemas.pop(model.__name__) for model in queries}
    spec = APISpec(
        title="AutoSRE API",
        version="1",
        openapi_version="3.1.0",
        info={"description": DESCRIPTION},
        servers=[{"url": "/"}],
        security=[{"bearer": []}],
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    for name, schema in sorted(schemas.items()):
        spec.components.schema(name, schema)
    for path, method, parameters, operation in routes:
        spec.path(path=path, operations={method: _operation(operation, parameters, query_schemas)})
    return spec.to_dict()


def openapi_document(app: Flask) -> Schema:
    """The app's document, built on first use (the routes do not change once it serves)."""
    document: Schema | None = app.extensions.get(DOCUMENT_KEY)
    if document is None:
        document = app.extensions.setdefault(DOCUMENT_KEY, build_document(app))
    return document
