"""SQLAlchemy 2.0 typed models: incidents, their runs and decisions, host states, maintenance.

The people who sign in (users, tokens, sessions) are in engine/store/accounts.py.

The schema is created and changed only by Alembic migrations (engine/store/migrations)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, String, Text, TypeDecorator, false
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: use UTC-aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base for every AutoSRE table."""

    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class Incident(Base):
    """One anomaly on one host, from detection to its outcome."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_host_status", "host", "status"),
        Index("ix_incidents_status_opened", "status", "opened_at"),
        Index("ix_incidents_opened_at", "opened_at"),
        # Newest-first pages filtered by status or by host (the UI's and API's lists).
        Index("ix_incidents_status_id", "status", "id"),
        Index("ix_incidents_host_id", "host", "id"),
        Index("ix_incidents_assigned_to", "assigned_to"),
        # The web UI's sorts by opening time and by kind, paged by (column, id).
        Index("ix_incidents_opened_id", "opened_at", "id"),
        Index("ix_incidents_kind_id", "kind", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))  # awaiting_approval needs more than 16
    action: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(default=0)
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    cpu_before: Mapped[float | None]
    cpu_after: Mapped[float | None]
    summary: Mapped[str] = mapped_column(Text, default="")
    # People handling it (engine/record/handling.py): markers, the engine does not read them.
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(255))
    assigned_to: Mapped[str | None] = mapped_column(String(64))  # a web user's name
    resolved_by: Mapped[str | None] = mapped_column(
        String(255)
    )  # closed by a person, not the engine

    decisions: Mapped[list[Decision]] = relationship(
        back_populates="incident", order_by="Decision.id", lazy="raise"
    )


class PlaybookRun(Base):
    """One ansible-runner invocation, by the engine or by hand."""

    __tablename__ = "playbook_runs"
    __table_args__ = (Index("ix_runs_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ident: Mapped[str] = mapped_column(String(64), unique=True)
    action: Mapped[str] = mapped_column(String(64))
    playbook: Mapped[str] = mapped_column(String(255))
    hosts: Mapped[list[str]]
    check_mode: Mapped[bool] = mapped_column(default=False)
    trigger: Mapped[str] = mapped_column(String(16))  # engine | manual
    requested_by: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)  # runs by hand; engine's: None
    ticket: Mapped[str | None] = mapped_column(String(64))  # e.g. INC-1234, runs by hand only
    extra_var_names: Mapped[list[str]]  # names only: values may be secret
    status: Mapped[str] = mapped_column(String(16))
    rc: Mapped[int | None]
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifact_dir: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # A person asked to stop it (engine/execute reads this while the run goes on).
    cancel_requested_at: Mapped[datetime | None]
    cancel_requested_by: Mapped[str | None] = mapped_column(String(255))


class Decision(Base):
    """A proposal, the policy's verdict over it, and what came of it."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_host_created", "host", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    host: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    planner: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    confidence: Mapped[float]
    rationale: Mapped[str] = mapped_column(Text)
    verdict: Mapped[str] = mapped_column(String(16))
    verdict_action: Mapped[str | None] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    overridden: Mapped[bool] = mapped_column(default=False)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("playbook_runs.id"))
    # running | recovered | not_recovered | run_failed | unverified | interrupted
    outcome: Mapped[str | None] = mapped_column(String(16))
    outcome_at: Mapped[datetime | None]
    # The model call behind the proposal (all None for the rules planner), already redacted.
    provider: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(128))
    latency_ms: Mapped[float | None]
    attempts: Mapped[int | None]
    input_tokens: Mapped[int | None]
    output_tokens: Mapped[int | None]
    prompt: Mapped[str | None] = mapped_column(Text)
    reply: Mapped[str | None] = mapped_column(Text)
    call_error: Mapped[str | None] = mapped_column(Text)
    # server_default: rows written before migration 0002 get a value too.
    cached: Mapped[bool] = mapped_column(default=False, server_default=false())
    fallback: Mapped[str | None] = mapped_column(Text)  # why the rules stood in for the model
    trust: Mapped[str | None] = mapped_column(String(16))  # observe | propose | auto, in force

    incident: Mapped[Incident] = relationship(back_populates="decisions", lazy="raise")
    run: Mapped[PlaybookRun | None] = relationship(lazy="raise")


class ApprovalRow(Base):
    """A proposed action held until a human approves or rejects it, or it expires."""

    __tablename__ = "approvals"
    __table_args__ = (
        Index("ix_approvals_status_requested", "status", "requested_at"),
        Index("ix_approvals_incident_id", "incident_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"))
    host: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending | approved | rejected | expired
    rationale: Mapped[str] = mapped_column(Text, default="")
    requested_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]  # approved, rejected or marked expired
    decided_by: Mapped[str | None] = mapped_column(String(255))
    note: Mapped[str | None] = mapped_column(Text)


class Event(Base):
    """One line of an incident's (or a run's) timeline; mirrored in the JSONL audit log."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_incident_at", "incident_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    host: Mapped[str | None] = mapped_column(String(255))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("playbook_runs.id"), index=True)
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class HostStateRow(Base):
    """The engine's latest view of one host, published each tick for the web UI."""

    __tablename__ = "host_states"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None]
    reason: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime]
    sample_ts: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    # [[unix_ts, value], ...]: the last ~30 samples, enough for a sparkline.
    recent: Mapped[list[list[float]]] = mapped_column(JSON, default=list)


class EngineStat(Base):
    """One counter or gauge the engine process publishes (ticks_total, ...)."""

    __tablename__ = "engine_stats"

    # "<stat>@<replica>": a stat's name (at most 40) and a replica id (at most 100).
    name: Mapped[str] = mapped_column(String(160), primary_key=True)
    value: Mapped[float]
    updated_at: Mapped[datetime]


class MaintenanceWindowRow(Base):
    """A maintenance window on one host or one inventory group: always with an end."""

    __tablename__ = "maintenance_windows"
    __table_args__ = (Index("ix_maintenance_windows_ends_at", "ends_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str | None] = mapped_column(String(255))  # exactly one of host, host_group
    host_group: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(16))  # cli | web | api
    created_at: Mapped[datetime]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]  # ended early, by hand
    ended_by: Mapped[str | None] = mapped_column(String(255))


class DisabledHostRow(Base):
    """A host taken out of automatic remediation (flapping), and who re-enabled it last."""

    __tablename__ = "disabled_hosts"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    disabled_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    enabled_at: Mapped[datetime | None]  # None while it stays out
    enabled_by: Mapped[str | None] = mapped_column(String(255))
