"""Incidents: GET /incidents (filters, total, sorts, keyset pages) and as CSV, one incident's
full story (webui/incident_page.py), its live parts polled while it is open, and a run's
artifacts as a tar.gz (viewers and up); acknowledge, assign, resolve with a note and decide
its approval from its page (operators and up).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from engine.errors import ApprovalError
from engine.incident.life import IncidentStatus
from engine.read.incidents import count_incidents, list_incidents
from engine.record.handling import HandlingError, HandlingRecords
from webui.ansible_output import output_for_run
from webui.approvals import MAX_NOTE as MAX_APPROVAL_NOTE
from webui.artifacts import download_response
from webui.converters import MAX_ID, text_problem, use_converters
from webui.db import components, get_sessions
from webui.host_history import incident_chart
from webui.incident_list import CSV_ROW_CAP, SORTS, csv_lines, parse_sort
from webui.incident_page import get_incident, page_context, story_view
from webui.redaction import redactor
from webui.security import login_required, role_required

bp = Blueprint("incidents", __name__)
use_converters(bp)
# The run page and the incident page render a run's output with one partial and one model.
bp.add_app_template_global(output_for_run, "ansible_output_of")

PAGE_SIZE = 50
MAX_TEXT = 255  # host, kind and q longer than a host name cannot match anything useful
STATUSES = tuple(s.value for s in IncidentStatus)
ID = re.compile(r"[0-9]{1,10}")  # ASCII digits only: str.isdigit() also takes "²"
NEEDS_YOU = "needs_you"  # a status filter: escalated, failed or awaiting approval, unclosed


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
    if status is not None and status not in (*STATUSES, NEEDS_YOU):
        abort(400, description=f"status must be one of {', '.join(STATUSES)} or {NEEDS_YOU}.")
    since, until = _day("from"), _day("to")
    if since is not None and until is not None and until < since:
        abort(400, description="to must not be before from.")
    before_text = request.args.get("before", "").strip()
    before: int | None = None
    if before_text:
        if not ID.fullmatch(before_text) or not 1 <= int(before_text) <= MAX_ID:
            abort(400, description=f"before must be an incident id (1 to {MAX_ID}).")
        before = int(before_text)
    return {
        "host": _text("host"),
        "status": None if status == NEEDS_YOU else status,
        "needs_you": status == NEEDS_YOU,
        "kind": _text("kind"),
        "since": since,
        "until": _day_after(until),  # to is inclusive
        "q": _text("q"),
        "before_id": before,
    }


@bp.get("/incidents")
@login_required
def index() -> ResponseReturnValue:
    """The incident list: filters, the total, sortable columns, a link to the next page."""
    filters = parse_filters()
    sort, order = parse_sort()
    sessions = get_sessions()
    down = order == "desc"
    page = list_incidents(sessions, sort=sort, descending=down, limit=PAGE_SIZE, **filters)
    filters.pop("before_id")
    total = count_incidents(sessions, **filters)
    args = {k: v for k, v in request.args.items() if k != "before" and v}
    base = {k: v for k, v in args.items() if k not in ("sort", "order")}
    return render_template(
        "incidents/index.html",
        rows=[incident.model_dump(mode="json") for incident in page.items],
        next_before=page.next_before,
        total=total,
        args=args,
        sorting={"sort": sort, "order": order, "defaults": SORTS, "args": base},
        statuses=STATUSES,
        filtered=bool(base),
    )


@bp.get("/incidents.csv")
@login_required
def export_csv() -> ResponseReturnValue:
    """The filtered, sorted list as CSV: every row up to CSV_ROW_CAP, streamed page by page."""
    filters = parse_filters()
    filters.pop("before_id")  # an export is the whole list, not one page of it
    sort, order = parse_sort()
    sessions = get_sessions()
    total = count_incidents(sessions, **filters)
    rows = csv_lines(
        lambda cursor, limit: list_incidents(
            sessions,
            sort=sort,
            descending=order == "desc",
            before_id=cursor,
            limit=limit,
            **filters,
        ),
        redactor().text,
    )
    return Response(
        rows,
        mimetype="text/csv",
        headers={
            "Content-Disposition": 'attachment; filename="incidents.csv"',
            "X-Total-Count": str(total),
            "X-Row-Cap": str(CSV_ROW_CAP),
        },
    )


@bp.get("/incidents/<id:incident_id>")
@login_required
def detail(incident_id: int) -> ResponseReturnValue:
    """One incident: timeline, runs with their verification and output, decisions, approvals."""
    return render_template("incidents/detail.html", **page_context(incident_id))


@bp.get("/incidents/<id:incident_id>/live")
@login_required
def live(incident_id: int) -> ResponseReturnValue:
    """The page's live parts, polled while the incident is open (static/incident_live.js)."""
    return render_template("incidents/_live.html", **story_view(incident_id))


@bp.get("/incidents/<id:incident_id>/chart")
@login_required
def chart(incident_id: int) -> ResponseReturnValue:
    """The chart around the incident (HTML fragment; 204 without one), loaded after the
    page: its history may come from a slow Prometheus, which must not hold the page."""
    incident = get_incident(incident_id)
    drawn = incident_chart(incident)
    if drawn is None:
        return Response(status=204)
    return render_template("hosts/_incident_chart_body.html", chart=drawn, host=incident["host"])


@bp.get("/incidents/<id:incident_id>/runs/<id:run_id>/artifacts.tar.gz")
@login_required
def download(incident_id: int, run_id: int) -> ResponseReturnValue:
    """The ended run's ansible-runner artifacts as a tar.gz (redacted), streamed as built."""
    run = next((r for r in get_incident(incident_id)["runs"] if r["id"] == run_id), None)
    if run is None:
        abort(404, description=f"Incident {incident_id} has no run {run_id}.")
    return download_response(run)


# -- people handling the incident (operator and up; the forms carry the CSRF token) ----------


def _act(
    incident_id: int, act: Callable[[HandlingRecords], object], done: str
) -> ResponseReturnValue:
    """Do one handling action as the signed-in user; its refusal is the page's 4xx."""
    try:
        act(components().recorder.handling)
    except HandlingError as exc:
        abort(exc.status, description=f"{exc.message[:1].upper()}{exc.message[1:]}.")
    flash(done, "info")
    return redirect(url_for("incidents.detail", incident_id=incident_id))


@bp.post("/incidents/<id:incident_id>/acknowledge")
@role_required("operator")
def acknowledge(incident_id: int) -> ResponseReturnValue:
    """ "I am on it": who and when; the engine carries on as before."""
    note = request.form.get("note")
    return _act(
        incident_id,
        lambda h: h.acknowledge(incident_id, by=g.user.name, at=time.time(), note=note),
        f"You acknowledged incident {incident_id}.",
    )


@bp.post("/incidents/<id:incident_id>/assign")
@role_required("operator")
def assign(incident_id: int) -> ResponseReturnValue:
    """Give the incident to a web user."""
    to = request.form.get("assignee", "")
    return _act(
        incident_id,
        lambda h: h.assign(incident_id, to=to, by=g.user.name, at=time.time()),
        f"Incident {incident_id} assigned.",
    )


@bp.post("/incidents/<id:incident_id>/resolve")
@role_required("operator")
def resolve(incident_id: int) -> ResponseReturnValue:
    """Close the incident by hand, with the required note; 409 while it is remediated."""
    note = request.form.get("note", "")
    return _act(
        incident_id,
        lambda h: h.resolve(incident_id, by=g.user.name, at=time.time(), note=note),
        f"You resolved incident {incident_id}.",
    )


@bp.post("/incidents/<id:incident_id>/approvals/<id:approval_id>/<any(approve, reject):verb>")
@role_required("operator")
def decide(incident_id: int, approval_id: int, verb: str) -> ResponseReturnValue:
    """Approve or reject the incident's approval from its page, as /approvals does."""
    recorder = components().recorder
    found = recorder.memory.approvals([approval_id]).get(approval_id)
    if found is None or found.incident_id != incident_id:
        abort(404, description=f"Incident {incident_id} has no approval {approval_id}.")
    note = request.form.get("note", "").strip()[:MAX_APPROVAL_NOTE] or None
    problem = None if note is None else text_problem("The note", note)
    if problem is not None:
        abort(400, description=f"{problem}.")
    try:
        recorder.approvals.decide(
            approval_id, approve=verb == "approve", by=g.user.name, at=time.time(), note=note
        )
    except ApprovalError as exc:
        abort(409, description=str(exc))
    flash(f"{verb.capitalize()}d {found.action} on {found.host} (approval {approval_id}).", "info")
    return redirect(url_for("incidents.detail", incident_id=incident_id))
