"""Read-side queries for the CLI (and the web UI): incidents as plain JSON-ready dicts."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from engine.store.models import ApprovalRow, Decision, Event, Incident, PlaybookRun
from engine.timeutil import iso
from engine.types import ApprovalStatus, IncidentStatus

STATUSES = tuple(s.value for s in IncidentStatus)
APPROVAL_STATUSES = tuple(s.value for s in ApprovalStatus)


def incident_dict(incident: Incident) -> dict[str, Any]:
    """The documented JSON shape of one incident."""
    return {
        "id": incident.id,
        "host": incident.host,
        "kind": incident.kind,
        "status": incident.status,
        "action": incident.action,
        "attempts": incident.attempts,
        "opened_at": iso(incident.opened_at),
        "closed_at": iso(incident.closed_at),
        "cpu_before": incident.cpu_before,
        "cpu_after": incident.cpu_after,
        "summary": incident.summary,
    }


def run_dict(run: PlaybookRun) -> dict[str, Any]:
    """One playbook run: what ran where, how it ended, and where its artifacts are."""
    return {
        "id": run.id,
        "ident": run.ident,
        "action": run.action,
        "playbook": run.playbook,
        "hosts": run.hosts,
        "check_mode": run.check_mode,
        "trigger": run.trigger,
        "requested_by": run.requested_by,
        "extra_var_names": run.extra_var_names,
        "status": run.status,
        "rc": run.rc,
        "stats": run.stats,
        "artifact_dir": run.artifact_dir,
        "error": run.error,
        "started_at": iso(run.started_at),
        "ended_at": iso(run.ended_at),
    }


def approval_dict(row: ApprovalRow, now: datetime) -> dict[str, Any]:
    """The documented JSON shape of one approval; a pending one past its time shows expired."""
    status = row.status
    if status == ApprovalStatus.PENDING and row.expires_at <= now:
        status = ApprovalStatus.EXPIRED
    return {
        "id": row.id,
        "incident_id": row.incident_id,
        "host": row.host,
        "action": row.action,
        "status": str(status),
        "rationale": row.rationale,
        "requested_at": iso(row.requested_at),
        "expires_at": iso(row.expires_at),
        "decided_at": iso(row.decided_at),
        "decided_by": row.decided_by,
        "note": row.note,
    }


def decision_dict(decision: Decision) -> dict[str, Any]:
    """One decision: the proposal, the model call behind it (if any), the verdict, the outcome."""
    return {
        "id": decision.id,
        "at": iso(decision.created_at),
        "planner": decision.planner,
        "action": decision.action,
        "confidence": decision.confidence,
        "rationale": decision.rationale,
        "verdict": decision.verdict,
        "verdict_action": decision.verdict_action,
        "rule": decision.rule,
        "reason": decision.reason,
        "overridden": decision.overridden,
        "run_id": decision.run_id,
        "outcome": decision.outcome,
        "provider": decision.provider,
        "model": decision.model,
        "latency_ms": decision.latency_ms,
        "attempts": decision.attempts,
        "input_tokens": decision.input_tokens,
        "output_tokens": decision.output_tokens,
        "prompt": decision.prompt,
        "reply": decision.reply,
        "call_error": decision.call_error,
        "cached": decision.cached,
        "fallback": decision.fallback,
    }


def list_approvals(
    sessions: sessionmaker[Session],
    *,
    status: str | None = ApprovalStatus.PENDING,
    limit: int = 50,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """Approvals by their status as of now (None: all); pending oldest first, others newest first.

    Each is an ``approval_dict``: id, incident_id, host, action, status, rationale,
    requested_at, expires_at, decided_at, decided_by, note (times ISO 8601 with a Z).
    """
    at = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)
    query = select(ApprovalRow).limit(limit)
    overdue = and_(ApprovalRow.status == ApprovalStatus.PENDING, ApprovalRow.expires_at <= at)
    if status == ApprovalStatus.PENDING:
        query = query.where(ApprovalRow.status == status, ApprovalRow.expires_at > at)
    elif status == ApprovalStatus.EXPIRED:
        query = query.where(or_(ApprovalRow.status == status, overdue))
    elif status is not None:
        query = query.where(ApprovalRow.status == status)
    if status == ApprovalStatus.PENDING:
        # The queue a human works through: the longest waiting first.
        query = query.order_by(ApprovalRow.requested_at, ApprovalRow.id)
    else:
        query = query.order_by(ApprovalRow.id.desc())
    with sessions() as session:
        return [approval_dict(row, at) for row in session.scalars(query)]


def list_incidents(
    sessions: sessionmaker[Session],
    *,
    status: str | None = None,
    host: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    """Newest first, filtered by status and host, paginated by id (keyset)."""
    query = select(Incident).order_by(Incident.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Incident.status == status)
    if host is not None:
        query = query.where(Incident.host == host)
    if before_id is not None:
        query = query.where(Incident.id < before_id)
    with sessions() as session:
        return [incident_dict(row) for row in session.scalars(query)]


def incident_detail(sessions: sessionmaker[Session], incident_id: int) -> dict[str, Any] | None:
    """One incident with its decisions, approvals, runs and timeline, or None if no such id."""
    with sessions() as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            return None
        decisions = session.scalars(
            select(Decision).where(Decision.incident_id == incident_id).order_by(Decision.id)
        ).all()
        run_ids = [d.run_id for d in decisions if d.run_id is not None]
        runs = session.scalars(
            select(PlaybookRun).where(PlaybookRun.id.in_(run_ids)).order_by(PlaybookRun.id)
        ).all()
        events = session.scalars(
            select(Event).where(Event.incident_id == incident_id).order_by(Event.at, Event.id)
        ).all()
        approvals = session.scalars(
            select(ApprovalRow)
            .where(ApprovalRow.incident_id == incident_id)
            .order_by(ApprovalRow.id)
        ).all()
        detail = incident_dict(incident)
        detail["decisions"] = [decision_dict(d) for d in decisions]
        now = datetime.now(tz=UTC)
        detail["approvals"] = [approval_dict(a, now) for a in approvals]
        detail["runs"] = [run_dict(r) for r in runs]
        detail["timeline"] = [
            {"at": iso(e.at), "kind": e.kind, "message": e.message, "run_id": e.run_id}
            for e in events
        ]
        return detail


def list_runs(sessions: sessionmaker[Session], *, limit: int = 50) -> list[dict[str, Any]]:
    """The newest playbook runs."""
    with sessions() as session:
        rows = session.scalars(select(PlaybookRun).order_by(PlaybookRun.id.desc()).limit(limit))
        return [run_dict(r) for r in rows]
