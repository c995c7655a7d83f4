"""What a request to /api/v1 may carry: query parameters and bodies as pydantic models.

The same models check each request and describe it in the OpenAPI document. Checks are
strict: an unknown parameter, a bad number or an unknown status is a ``RequestError``
(a 400 that names it), never a 500 and never silently ignored. Query text becomes values
here: digits only for numbers, ISO 8601 dates and times in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, Self, TypeVar

from flask import request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from engine.errors import InputError
from engine.incident.life import IncidentStatus
from engine.types import ApprovalStatus, HostStatus
from webui.converters import MAX_ID

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_HOSTS = 10_000
MAX_NOTE = 500
INTEGER = re.compile(r"-?[0-9]{1,19}")
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"  # NUL breaks PostgreSQL; no control character is a filter
BEFORE = "keyset: only ids below this (a page's next_before)"
ModelT = TypeVar("ModelT", bound=BaseModel)


class RequestError(InputError):
    """A request the API refuses: answered ``{"error": message, "status": status}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _integer(value: object) -> object:
    # ASCII digits only: int() would also take " 7", "1_0" and "٣".
    if isinstance(value, str):
        if not INTEGER.fullmatch(value):
            raise ValueError(f"must be an integer, not {value[:40]!r}")
        return int(value)
    return value


def _utc(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        if len(value) == 10:  # a date: midnight UTC
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"must be an ISO 8601 date or time, not {value[:40]!r}") from None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise ValueError("is out of range: in UTC it falls outside years 1-9999") from None


# Bounds first: the validator then wraps the bounded int, and the schema keeps its bounds.
Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_integer)]
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT), BeforeValidator(_integer)]
HostLimit = Annotated[int, Field(ge=1, le=MAX_HOSTS), BeforeValidator(_integer)]
Moment = Annotated[datetime, BeforeValidator(_utc)]
Host = Annotated[str, Field(min_length=1, max_length=255, pattern=PRINTABLE)]
Kind = Annotated[str, Field(min_length=1, max_length=32, pattern=PRINTABLE)]
# A page's next_after: the rank (0 problem, 1 unknown, 2 normal), a dot, the last host.
# Checked by engine/read/hosts.parse_cursor, whose 400 says what a cursor is.
Cursor = Annotated[str, Field(min_length=1, max_length=257)]


class Query(BaseModel):
    """Query parameters (none here): an absent one is its default, an unknown one a 400."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class IncidentQuery(Query):
    """Filters and a keyset page of incidents."""

    status: IncidentStatus | None = Field(default=None, description="only this status")
    host: Host | None = Field(default=None, description="only this host")
    kind: Kind | None = Field(default=None, description="only this kind (high_cpu, ...)")
    since: Moment | None = Field(
        default=None, description="opened at or after (ISO 8601; a date is midnight UTC)"
    )
    until: Moment | None = Field(
        default=None, description="opened before (ISO 8601; no zone means UTC)"
    )
    limit: Limit = Field(default=DEFAULT_LIMIT, description="page size")
    before: Id | None = Field(default=None, description=BEFORE)

    @model_validator(mode="after")
    def _since_before_until(self) -> Self:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be earlier than until")
        return self


class RunQuery(Query):
    """A keyset page of runs."""

    limit: Limit = Field(default=DEFAULT_LIMIT, description="page size")
    before: Id | None = Field(default=None, description=BEFORE)


class HostQuery(Query):
    """Which host states, whether with their samples, and which page of them."""

    status: HostStatus | None = Field(default=None, description="only this status")
    limit: HostLimit | None = Field(
        default=None, description="page size (default: every host, on one page)"
    )
    after: Cursor | None = Field(
        default=None,
        description="keyset: the hosts after this cursor (a page's next_after); a host whose "
        "status changes during a walk may show on two pages or on none",
    )
    recent: Literal["true", "false"] = Field(
        default="true",
        description="false: leave out the samples (much smaller and faster for a fleet)",
    )


class ApprovalQuery(Query):
    """Approvals in one status (as of now), or all."""

    status: ApprovalStatus | Literal["all"] = Field(
        default=ApprovalStatus.PENDING,
        description="pending (default), approved, rejected, expired or all",
    )
    limit: Limit = Field(default=DEFAULT_LIMIT, description="at most this many")


class Decide(BaseModel):
    """The optional body of approve and reject."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    note: Annotated[str, Field(max_length=MAX_NOTE)] | None = Field(
        default=None, description="why, kept with the decision"
    )


def validated(model: type[ModelT], data: Mapping[str, Any], what: str) -> ModelT:
    """``data`` as the model; a RequestError naming the first field it cannot take."""
    unknown = sorted(set(data) - set(model.model_fields))
    if unknown:
        allowed = ", ".join(model.model_fields) or "none"
        raise RequestError(f"unknown {what} {unknown[0][:40]!r} (allowed: {allowed})")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        if first["type"] == "string_pattern_mismatch":
            message = "must not contain control characters"
        else:
            message = first["msg"].removeprefix("Value error, ")
        raise RequestError(f"{name}: {message}" if name else message) from None


def parsed_query(model: type[ModelT]) -> ModelT:
    """The request's query parameters as the model (the first value of a repeated one)."""
    return validated(model, request.args.to_dict(), "query parameter")
