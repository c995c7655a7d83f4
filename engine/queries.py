"""Read-side queries for the CLI (and the web UI): incidents as plain JSON-ready dicts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.store.models import Decision, Event, Incident, PlaybookRun
from engine.timeutil import iso
from engine.types import IncidentStatus

STATUSES = tuple(s.value for s in IncidentStatus)


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
    """One incident with its decisions, runs and timeline, or None if there is no such id."""
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
        detail = incident_dict(incident)
        detail["decisions"] = [
            {
                "id": d.id,
                "at": iso(d.created_at),
                "planner": d.planner,
                "action": d.action,
                "confidence": d.confidence,
                "rationale": d.rationale,
                "verdict": d.verdict,
                "verdict_action": d.verdict_action,
                "rule": d.rule,
                "reason": d.reason,
                "overridden": d.overridden,
                "run_id": d.run_id,
                "outcome": d.outcome,
            }
            for d in decisions
        ]
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
