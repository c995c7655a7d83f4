"""The incident page's story at a glance: timeline rows coloured by outcome with the time
since the previous step, the total time from detection to close, and one row per run with
its playbook status and its verification together.

Pure functions over the incident as ``incident_detail(...).model_dump(mode="json")`` gives
it, plus the verified events' data (recovered, value) read by ``verifications``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.plan.rules import skipped_rungs
from engine.store.models import Event

# Outcome class of each event kind (the badge's colour; its text says the kind too).
OUTCOMES = {
    "detected": ("detected", "opened", "alert"),
    "decided": ("decided",),
    "running": ("remediating", "run_started", "run_staged", "run_released"),
    "good": ("recovered", "resolved", "resolved_by_person", "approved", "host_enabled"),
    "bad": (
        "not_recovered",
        "run_failed",
        "escalated",
        "failed",
        "rejected",
        "run_interrupted",
        "run_leftover",
        "run_discarded",
        "notify_failed",
    ),
    "attention": (
        "awaiting_approval",
        "waiting",
        "holding",
        "approval_expired",
        "maintenance_started",
        "host_disabled",
        "manual_run_in_maintenance",
        "reopened",
    ),
}
OUTCOME_OF = {kind: outcome for outcome, kinds in OUTCOMES.items() for kind in kinds}
RANK = ("bad", "attention", "good", "running", "decided", "detected", "neutral")
RUN_GOOD = ("successful",)
RUN_LIVE = ("pending", "running", "staged")
VERIFIED = {"recovered": "good", "not_recovered": "bad", "unverified": "attention"}
# A status event that repeats the verification's own words (advance.verify): one row.
FOLDS = ("not_recovered", "resolved", "recovered", "failed", "escalated")


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    at = datetime.fromisoformat(value)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def duration(seconds: float) -> str:
    """A span as people say it: "12 s", "3 min", "2 h 5 min", "1 d 3 h"."""
    n = max(0, round(seconds))
    if n < 60:
        return f"{n} s"
    if n < 3600:
        minutes, rest = divmod(n, 60)
        return f"{minutes} min" + (f" {rest} s" if rest and minutes < 10 else "")
    if n < 86400:
        hours, rest = divmod(n, 3600)
        return f"{hours} h" + (f" {rest // 60} min" if rest // 60 else "")
    days, rest = divmod(n, 86400)
    return f"{days} d" + (f" {rest // 3600} h" if rest // 3600 else "")


def verifications(sessions: sessionmaker[Session], incident_id: int) -> dict[int, dict[str, Any]]:
    """Run id -> its verified event's data ({"recovered": ..., "value": ...})."""
    query = select(Event.run_id, Event.data).where(
        Event.incident_id == incident_id, Event.kind == "verified", Event.run_id.is_not(None)
    )
    with sessions() as session:
        return {int(run_id): dict(data or {}) for run_id, data in session.execute(query)}


def _row(
    event: dict[str, Any], runs: dict[int, dict[str, Any]], outcomes: dict[int, str]
) -> dict[str, Any]:
    kind = str(event["kind"])
    label, outcome = kind.replace("_", " "), OUTCOME_OF.get(kind, "neutral")
    run_id = event.get("run_id")
    if kind == "run_ended" and run_id in runs:
        status = str(runs[run_id]["status"])
        if outcomes.get(run_id) == "run_failed":  # the run may succeed, but not on this host
            status = "failed on this host" if status in RUN_GOOD else status
        label = f"run ended: {status}"
        outcome = "good" if status in RUN_GOOD else "running" if status in RUN_LIVE else "bad"
    verdict = outcomes.get(run_id) if isinstance(run_id, int) else None
    if kind == "verified" and verdict is not None and verdict in VERIFIED:
        label, outcome = f"verified: {verdict.replace('_', ' ')}", VERIFIED[verdict]
    return {**event, "label": label, "outcome": outcome}


def timeline(incident: dict[str, Any]) -> list[dict[str, Any]]:
    """The timeline's rows: label, outcome class, message and "+N" since the previous row.
    A status event repeating the verification just before it is folded into that row."""
    runs = {run["id"]: run for run in incident["runs"]}
    outcomes = {
        d["run_id"]: d["outcome"]
        for d in incident["decisions"]
        if d.get("run_id") and d.get("outcome")
    }
    rows: list[dict[str, Any]] = []
    for event in incident["timeline"]:
        last = rows[-1] if rows else None
        if (
            last is not None
            and last["kind"] == "verified"
            and event["kind"] in FOLDS
            and str(event["message"]).startswith(str(last["message"]))
        ):
            folded = _row(event, runs, outcomes)
            if folded["label"] not in last["label"]:
                last["label"] += f" · {folded['label']}"
            last["outcome"] = min(last["outcome"], folded["outcome"], key=RANK.index)
            last["message"] = event["message"]
            continue
        rows.append(_row(event, runs, outcomes))
    previous: datetime | None = None
    for row in rows:
        at = _time(row["at"])
        row["delta"] = (
            None
            if previous is None or at is None
            else "+" + duration((at - previous).total_seconds())
        )
        previous = at or previous
    return rows


def total(incident: dict[str, Any], now: datetime | None = None) -> str:
    """ "Closed after 12 min" or "Open for 3 min": from detection to close (or now)."""
    opened, closed = _time(incident["opened_at"]), _time(incident.get("closed_at"))
    if opened is None:
        return ""
    if closed is not None:
        return f"Closed {duration((closed - opened).total_seconds())} after detection"
    now = now or datetime.now(tz=UTC)
    # In whole minutes: the live page then changes once a minute, not at every refresh.
    spent = (now - opened).total_seconds()
    return f"Open for {duration(spent - spent % 60) if spent >= 60 else 'less than a minute'}"


def _explain(status: str, outcome: str | None, closed: bool) -> str:
    if status in RUN_LIVE:
        return "the playbook is running"
    ran = "playbook succeeded" if status in RUN_GOOD else f"playbook {status}"
    if status not in RUN_GOOD:
        return f"{ran}; a run that did not succeed is not verified"
    if outcome == "run_failed":
        return f"{ran}, but not on this host; nothing to verify"
    if outcome == "interrupted":
        return f"{ran}; the engine stopped before verifying it"
    if outcome == "recovered":
        return f"{ran}; the host recovered"
    if outcome == "not_recovered":
        return f"{ran}; the host did not recover"
    if outcome == "unverified":
        return f"{ran}; recovery could not be verified (no fresh data)"
    return f"{ran}; not verified" if closed else f"{ran}; waiting for fresh data to verify"


def run_rows(incident: dict[str, Any], verified: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run: its status, its verification (recovered or not, before -> after
    values) and the sentence that puts both together."""
    outcomes = {d["run_id"]: d["outcome"] for d in incident["decisions"] if d.get("run_id")}
    before = incident.get("cpu_before")
    rows = []
    for run in incident["runs"]:
        outcome = outcomes.get(run["id"])
        check = verified.get(run["id"], {})
        after = check.get("value") if isinstance(check.get("value"), int | float) else None
        rows.append(
            {
                "run": run,
                "outcome": outcome if outcome in VERIFIED else None,  # a verification's
                "verdict_class": VERIFIED.get(outcome or "", "neutral"),
                "before": before,
                "after": after,
                "explain": _explain(str(run["status"]), outcome, bool(incident.get("closed_at"))),
            }
        )
        before = after if after is not None else before  # the next run starts from here
    return rows


def skipped(incident: dict[str, Any]) -> dict[int, list[tuple[str, str | None]]]:
    """Decision id -> the ladder rungs its planner skipped, each with its recorded reason."""
    return {
        d["id"]: found
        for d in incident["decisions"]
        if d["planner"] == "rules" and (found := skipped_rungs(d["rationale"]))
    }
