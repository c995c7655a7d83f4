"""The read models: what the CLI, the web UI and the JSON API show of the store, defined once.

The read functions build them from ORM rows; ``model_dump(mode="json")`` is the documented
JSON (times ISO 8601 with a Z), and the API's OpenAPI schemas are their JSON schemas. Every
field is always present (so required in the schemas), except ``HostState.recent``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    SkipValidation,
    model_serializer,
)

from engine.incident.life import IncidentStatus
from engine.types import ApprovalStatus, HostStatus

ItemT = TypeVar("ItemT", bound=BaseModel)


class ReadModel(BaseModel):
    """A frozen view of stored rows; ``from_row`` copies the attributes named like its fields."""

    model_config = ConfigDict(frozen=True)

    @classmethod
    def from_row(cls, row: object, **given: Any) -> Self:
        """The model of ``row``: each field from the row's attribute of that name, or ``given``."""
        values = {
            name: given[name] if name in given else getattr(row, name) for name in cls.model_fields
        }
        return cls.model_validate(values)


class Incident(ReadModel):
    """One anomaly on one host, from detection to its outcome."""

    id: int
    host: str
    kind: str
    status: IncidentStatus
    action: str | None
    attempts: int
    opened_at: datetime
    closed_at: datetime | None
    cpu_before: float | None
    cpu_after: float | None
    summary: str


class Decision(ReadModel):
    """A proposal, the model call behind it (if any), the policy's verdict and what came of it."""

    id: int
    at: datetime
    planner: str
    action: str
    confidence: float
    rationale: str
    verdict: str
    verdict_action: str | None
    rule: str
    reason: str
    overridden: bool
    run_id: int | None
    outcome: str | None
    provider: str | None
    model: str | None
    latency_ms: float | None
    attempts: int | None
    input_tokens: int | None
    output_tokens: int | None
    prompt: str | None
    reply: str | None
    call_error: str | None
    cached: bool
    fallback: str | None
    trust: str | None = Field(
        None, description="the action's trust level in force (observe, propose, auto)"
    )


class Run(ReadModel):
    """One playbook run: what ran where, how it ended, and where its artifacts are."""

    id: int
    ident: str
    action: str
    playbook: str
    hosts: list[str]
    check_mode: bool
    trigger: Literal["engine", "manual"]
    requested_by: str
    reason: str | None = Field(description="why it was run by hand; None for the engine's runs")
    ticket: str | None = Field(description="a ticket reference given with a run by hand")
    extra_var_names: list[str] = Field(description="names only: the values may be secret")
    status: str
    rc: int | None
    stats: dict[str, Any] = Field(description="per host: ok, changed, failures, ... counts")
    artifact_dir: str
    error: str | None
    started_at: datetime | None
    ended_at: datetime | None
    cancel_requested_at: datetime | None = Field(None, description="a person asked to stop it")
    cancel_requested_by: str | None = None


class Approval(ReadModel):
    """An action held for a human; a pending one past its time shows as expired."""

    id: int
    incident_id: int
    host: str
    action: str
    status: ApprovalStatus
    rationale: str
    requested_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    note: str | None


class TimelineEntry(ReadModel):
    """One line of an incident's timeline."""

    at: datetime
    kind: str
    message: str
    run_id: int | None


class IncidentDetail(Incident):
    """One incident with its decisions, approvals, runs and timeline."""

    decisions: list[Decision]
    approvals: list[Approval]
    runs: list[Run]
    timeline: list[TimelineEntry]


class HostState(ReadModel):
    """A host's state as the engine last published it."""

    host: str
    status: HostStatus
    value: float | None
    reason: str
    since: datetime
    sample_ts: datetime | None
    updated_at: datetime
    # Not validated: the engine's own samples, as its publisher wrote them; checking 30
    # pairs a host would be most of the time a fleet's states take to read.
    recent: Annotated[list[list[float]], SkipValidation] | None = Field(
        default=None,
        description="the last samples as [unix_seconds, value] pairs; absent when not read "
        "(recent=false)",
    )

    @model_serializer(mode="wrap")
    def _without_absent_samples(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.recent is None:
            del data["recent"]  # not read, rather than none: the key is left out
        return data


class User(ReadModel):
    """A web UI account: its role, whether it is disabled, how many API tokens it has."""

    id: int
    name: str
    role: str
    disabled: bool
    created_at: datetime
    tokens: int


class Page(ReadModel, Generic[ItemT]):
    """One keyset page, newest first."""

    items: list[ItemT]
    next_before: int | None = Field(
        description="pass as `before` for the next page; null: this is the last page"
    )


class Items(ReadModel, Generic[ItemT]):
    """A whole list (bounded by ``limit``), not paged."""

    items: list[ItemT]


class IncidentPage(Page[Incident]):
    """A page of incidents, newest first."""


class RunPage(Page[Run]):
    """A page of playbook runs, newest first."""


class ApprovalList(Items[Approval]):
    """Approvals: pending oldest first, any other status newest first."""


class EngineStats(ReadModel):
    """The engine's tick counters as last published; all None before its first tick."""

    ticks_total: float | None = None
    tick_duration_last: float | None = Field(default=None, description="seconds")
    tick_duration_sum: float | None = Field(default=None, description="seconds")
    last_tick: float | None = Field(default=None, description="UNIX seconds")
    publish_every: float | None = Field(
        default=None, description="seconds between writes: how stale these may be"
    )
    unmatched_series: float | None = Field(
        default=None, description="series of the latest tick that matched no inventory host"
    )


class FleetSummary(ReadModel):
    """The fleet's recent record: rates over the incidents opened in a window, open ones now."""

    window_days: int
    since: str = Field(description="the window's first day, YYYY-MM-DD (UTC)")
    closed: int
    resolved: int
    success_rate: float | None = Field(description="resolved / closed; None: nothing closed")
    avg_cpu_reduction: float | None = Field(description="percentage points, resolved ones")
    mttr_seconds: float | None = Field(description="opened to closed, resolved ones")
    open_by_status: dict[str, int] = Field(description="each active status, all time")
    open_total: int
    per_day: list[tuple[str, int]] = Field(description="(YYYY-MM-DD, opened) oldest first")
