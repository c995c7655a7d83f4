"""Incidents: GET /incidents (search, filters, keyset pages), one incident's full story,
and a run's artifacts as a tar.gz. Viewers and up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request
from flask.typing import ResponseReturnValue

from engine.queries import incident_detail
from engine.stats import search_incidents
from engine.types import IncidentStatus
from webui.artifacts import (
    read_stdout,
    runner_artifacts,
    safe_artifact_dir,
    stream_tar_gz,
    task_events,
)
from webui.db import get_sessions
from webui.security import login_required

bp = Blueprint("incidents", __name__)

PAGE_SIZE = 50
MAX_TEXT = 255  # host, kind and q longer than a host name cannot match anything useful
STATUSES = tuple(s.value for s in IncidentStatus)
STAT_COLUMNS = ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")


def _text(name: str) -> str | None:
    value = request.args.get(name, "").strip()
    if len(value) > MAX_TEXT:
        abort(400, description=f"{name} is too long (at most {MAX_TEXT} characters).")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):  # NUL breaks PostgreSQL
        abort(400, description=f"{name} must not contain control characters.")
    return value or None


def _day(name: str) -> datetime | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        abort(400, description=f"{name} must be a date written YYYY-MM-DD, not {value!r}.")
    return day


def _day_after(day: datetime | None) -> datetime | None:
    try:
        return None if day is None else day + timedelta(days=1)
    except OverflowError:  # to=9999-12-31: no upper bound
        return None


def parse_filters() -> dict[str, Any]:
    """The search filters from the query string; a 400 page for any value that is not valid."""
    status = _text("status")
    if status is not None and status not in STATUSES:
        abort(400, description=f"status must be one of {', '.join(STATUSES)}.")
    since, until = _day("from"), _day("to")
    if since is not None and until is not None and until < since:
        abort(400, description="to must not be before from.")
    before_text = request.args.get("before", "").strip()
    before: int | None = None
    if before_text:
        if not before_text.isdigit() or len(before_text) > 18:  # fits a BIGINT
            abort(400, description="before must be a positive whole number (an incident id).")
        before = int(before_text)
    return {
        "host": _text("host"),
        "status": status,
        "kind": _text("kind"),
        "since": since,
        "until": _day_after(until),  # to is inclusive
        "q": _text("q"),
        "before_id": before,
    }


@bp.get("/incidents")
@login_required
def index() -> ResponseReturnValue:
    """The incident list: filters, newest first, an "older" link to the next page."""
    filters = parse_filters()
    rows, next_before = search_incidents(get_sessions(), limit=PAGE_SIZE, **filters)
    args = {k: v for k, v in request.args.items() if k != "before" and v}
    return render_template(
        "incidents/index.html",
        rows=rows,
        next_before=next_before,
        args=args,
        statuses=STATUSES,
        filtered=bool(args),
    )


def get_incident(incident_id: int) -> dict[str, Any]:
    """The incident with its decisions, approvals, runs and timeline, or a 404 page."""
    detail = incident_detail(get_sessions(), incident_id)
    if detail is None:
        abort(404, description=f"There is no incident {incident_id}.")
    return detail


def _runs_dir() -> Path:
    return Path(current_app.config["AUTOSRE_DATA_DIR"]) / "runs"


def _artifacts(run: dict[str, Any]) -> dict[str, Any]:
    folder = safe_artifact_dir(run["artifact_dir"], _runs_dir())
    if folder is None:
        return {"available": False}
    folder = runner_artifacts(folder, run["ident"])
    stdout, cut = read_stdout(folder)
    return {"available": True, "events": task_events(folder), "stdout": stdout, "cut": cut}


@bp.get("/incidents/<int:incident_id>")
@login_required
def detail(incident_id: int) -> ResponseReturnValue:
    """One incident: timeline, decisions (proposal, verdict, outcome), approvals, runs."""
    incident = get_incident(incident_id)
    artifacts = {run["id"]: _artifacts(run) for run in incident["runs"]}
    return render_template(
        "incidents/detail.html",
        incident=incident,
        artifacts=artifacts,
        stat_columns=STAT_COLUMNS,
    )


@bp.get("/incidents/<int:incident_id>/runs/<int:run_id>/artifacts.tar.gz")
@login_required
def download(incident_id: int, run_id: int) -> ResponseReturnValue:
    """The run's artifact directory as a tar.gz, streamed as it is built."""
    incident = get_incident(incident_id)
    run = next((r for r in incident["runs"] if r["id"] == run_id), None)
    if run is None:
        abort(404, description=f"Incident {incident_id} has no run {run_id}.")
    folder = safe_artifact_dir(run["artifact_dir"], _runs_dir())
    if folder is None:
        abort(404, description=f"The artifacts of run {run_id} are not in the data directory.")
    name = f"run-{run_id}"
    return Response(
        stream_tar_gz(folder, name),
        mimetype="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{name}-artifacts.tar.gz"'},
    )
