"""An incident's recorded decision points, rebuilt from the store as scenarios: for
``autosre eval capture`` (a case with its expected decision left TODO) and for
``autosre incidents explain`` (today's decision next to the recorded one).

What the store keeps: the incident (host, kind, value at detection), its detection event
(reason, since), each decision (and, for a model's, its prompt: the sample window, the
fleet and the labels as the model saw them), the runs and their outcomes, maintenance
windows and take-outs. What it does not keep is named in the scenario's ``missing``:
never made up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from engine.decision_eval.case import CaseError
from engine.record.memory import EngineMemory
from engine.signals import signal_kind
from engine.store.models import Decision, DisabledHostRow, Event, Incident, MaintenanceWindowRow
from engine.timeutil import to_dt, to_ts
from engine.types import HostStatus

LOOKBACK = 7 * 86400.0  # how much of the host's past a captured scenario carries
_DATA = re.compile(r"<data>\s*(\{.*\})\s*</data>", re.S)


@dataclass(frozen=True, slots=True)
class Recorded:
    """One recorded decision and the scenario (case data, no expectation) behind it."""

    incident_id: int
    decision: Decision  # detached row: read its columns only
    scenario: dict[str, Any]


def prompt_data(prompt: str | None) -> dict[str, Any]:
    """The data document a model was given (already redacted when stored), or {}."""
    found = _DATA.search(prompt or "")
    if found is None:
        return {}
    try:
        data = json.loads(found.group(1))
    except (json.JSONDecodeError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _samples(data: Mapping[str, Any], value_name: str) -> list[list[float]] | None:
    for key, window in data.items():
        if key.endswith("_window") and isinstance(window, list):
            points = [
                [float(p["seconds_ago"]), float(p[value_name])]
                for p in window
                if isinstance(p, dict) and isinstance(p.get(value_name), int | float)
            ]
            return points or None
    return None


def _holds(session: Session, host: str, groups: Collection[str], at: float) -> dict[str, Any]:
    when = to_dt(at)
    scope = MaintenanceWindowRow.host == host
    if groups:
        scope = or_(scope, MaintenanceWindowRow.host_group.in_(list(groups)))
    rows = session.scalars(
        select(MaintenanceWindowRow).where(
            scope,
            MaintenanceWindowRow.starts_at <= when,
            MaintenanceWindowRow.ends_at > when,
            or_(MaintenanceWindowRow.ended_at.is_(None), MaintenanceWindowRow.ended_at > when),
        )
    ).all()
    found: dict[str, Any] = {}
    if rows:
        found["maintenance"] = [
            {
                "reason": row.reason,
                "set_by": row.set_by,
                "group": row.host_group,
                "started_minutes_ago": round((at - to_ts(row.starts_at)) / 60, 2),
                "ends_in_minutes": round((to_ts(row.ends_at) - at) / 60, 2),
            }
            for row in rows
        ]
    out = session.get(DisabledHostRow, host)
    if (
        out is not None
        and out.disabled_at <= when
        and (out.enabled_at is None or out.enabled_at > when)
    ):
        minutes = round((at - to_ts(out.disabled_at)) / 60, 2)
        found["taken_out"] = {"minutes_ago": minutes, "reason": out.reason}
    return found


def _history(memory: EngineMemory, host: str, incident_id: int, at: float) -> list[dict[str, Any]]:
    """The host's runs started before the decision, as they stood then."""
    past = []
    for attempt in memory.host_history(host, at - LOOKBACK).attempts:
        if attempt.started_at >= at:
            continue
        ended = (
            attempt.ended_at if attempt.ended_at is not None and attempt.ended_at <= at else None
        )
        past.append(
            {
                "action": attempt.action,
                "minutes_ago": round((at - attempt.started_at) / 60, 2),
                "took_minutes": None
                if ended is None
                else round((ended - attempt.started_at) / 60, 2),
                # Known only once the run had ended (its verification came later still).
                "cured": attempt.succeeded if ended is not None else None,
                "same_incident": attempt.incident_id == incident_id,
            }
        )
    return past


def recorded_decisions(
    sessions: sessionmaker[Session],
    incident_id: int,
    *,
    policy_base: str,
    labels: Mapping[str, str] | None = None,
    groups: Collection[str] | None = None,
) -> list[Recorded]:
    """Every decision of an incident with the scenario behind it, oldest first.

    ``labels`` and ``groups``: the host's as today's inventory has them (None: unknown),
    used when a decision's prompt does not carry them. CaseError for an unknown incident
    or one without decisions."""
    memory = EngineMemory(sessions)
    with sessions() as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise CaseError(f"no incident with id {incident_id}")
        detected = session.scalars(
            select(Event)
            .where(Event.incident_id == incident_id, Event.kind == "detected")
            .order_by(Event.id)
            .limit(1)
        ).first()
        rows = session.scalars(
            select(Decision).where(Decision.incident_id == incident_id).order_by(Decision.id)
        ).all()
        if not rows:
            raise CaseError(f"incident {incident_id} has no recorded decision: nothing to replay")
        session.expunge_all()
        holds = {
            row.id: _holds(session, incident.host, groups or (), to_ts(row.created_at))
            for row in rows
        }
    kind = signal_kind(incident.kind)
    since = _since(detected, to_ts(incident.opened_at))
    found = []
    tried: list[str] = []
    for row in rows:
        at = to_ts(row.created_at)
        data = prompt_data(row.prompt)
        scenario: dict[str, Any] = {
            "policy": {"base": policy_base},
            "kind": incident.kind,
            "host": incident.host,
            "now": at,
            "tried": list(tried),
            "history": _history(memory, incident.host, incident_id, at),
            **holds[row.id],
        }
        missing = ["remediating_hosts"]  # the fleet's runs in flight then: not recorded
        state = data.get("state") if isinstance(data.get("state"), dict) else None
        scenario["state"] = {
            "status": kind.status.value if state is None else str(state.get("status")),
            "value": incident.cpu_before if state is None else state.get(kind.value_name),
            "for_seconds": max(0.0, at - since)
            if state is None
            else float(state.get("for_seconds") or 0),
            "reason": (detected.message if detected else incident.summary)
            if state is None
            else str(state.get("reason", "")),
        }
        seen, lacking = _seen(data, kind.value_name, labels, groups)
        scenario.update(seen)
        missing.extend(lacking)
        scenario["missing"] = missing
        found.append(Recorded(incident_id, row, scenario))
        if row.run_id is not None and row.outcome != "interrupted":
            tried.append(row.action)
    return found


def _seen(
    data: Mapping[str, Any],
    value_name: str,
    labels: Mapping[str, str] | None,
    groups: Collection[str] | None,
) -> tuple[dict[str, Any], list[str]]:
    """What a model's prompt showed (samples, fleet, labels), with today's labels and
    groups standing in where given; and the names of what is missing."""
    seen: dict[str, Any] = {}
    missing: list[str] = []
    points = _samples(data, value_name)
    if points:
        seen["samples"] = {"points": points}
    else:
        missing.append("samples")
    fleet = data.get("fleet")
    if isinstance(fleet, dict) and all(k in HostStatus.__members__ for k in fleet):
        seen["fleet"] = fleet
    else:
        missing.append("fleet")
    if isinstance(data.get("labels"), dict):
        seen["labels"] = {str(k): str(v) for k, v in data["labels"].items()}
    elif labels is not None:
        seen["labels"] = dict(labels)
        missing.append("labels (today's inventory's, not then)")
    else:
        missing.append("labels")
    if groups is not None:
        seen["groups"] = sorted(groups)
    else:
        missing.append("groups")
    return seen, missing


def _since(detected: Event | None, opened: float) -> float:
    raw = (detected.data or {}).get("since") if detected is not None else None
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return opened
