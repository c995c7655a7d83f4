"""Approvals: actions the policy holds for a human, decided here (operator and up).

Each approval links to its incident and, once approved and run, to its run; it shows the
planner's confidence and the time left. Rejecting takes a second step: a POST without
``confirm=yes`` rejects nothing and shows a confirmation page instead (confirm.js asks in
a dialog first, so with JavaScript the page is never seen).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from engine.errors import ApprovalError
from engine.read.approvals import list_approvals
from engine.store.models import ApprovalRow, Decision, PlaybookRun
from engine.timeutil import to_dt
from engine.types import ApprovalStatus
from webui.converters import text_problem, use_converters
from webui.db import components, get_sessions
from webui.security import login_required, role_required, safe_next

bp = Blueprint("approvals", __name__)
use_converters(bp)

MAX_NOTE = 500
RECENT = 20
HUMAN = "human"  # the planner of the decision an approval turns into (engine/incident/decide.py)


def time_left(expires_at: str | float | None, now: float | None = None) -> str:
    """How long until an approval expires, as a person says it ("42 min left", "expired")."""
    if not expires_at:
        return ""
    if isinstance(expires_at, str):
        expires_at = datetime.fromisoformat(expires_at).timestamp()
    seconds = expires_at - (time.time() if now is None else now)
    if seconds <= 0:
        return "expired"
    if seconds < 120:
        return f"{seconds:.0f} s left"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min left"
    return f"{seconds / 3600:.1f} h left"


def _extras(approvals: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per approval: the planner's confidence, and the run an approved one led to."""
    ids = [a["id"] for a in approvals]
    if not ids:
        return {}
    extras: dict[int, dict[str, Any]] = {
        i: {"confidence": None, "planner": None, "run": None} for i in ids
    }
    incidents = {a["incident_id"] for a in approvals if a["status"] == ApprovalStatus.APPROVED}
    with get_sessions()() as session:
        for approval_id, confidence, planner in session.execute(
            select(ApprovalRow.id, Decision.confidence, Decision.planner)
            .join(Decision, Decision.id == ApprovalRow.decision_id)
            .where(ApprovalRow.id.in_(ids))
        ):
            extras[approval_id] |= {"confidence": confidence, "planner": planner}
        runs = session.execute(
            select(Decision.incident_id, Decision.created_at, PlaybookRun.ident)
            .join(PlaybookRun, PlaybookRun.id == Decision.run_id)
            .where(Decision.incident_id.in_(incidents), Decision.planner == HUMAN)
            .order_by(Decision.created_at)
        ).all()
    for a in approvals:
        if a["status"] == ApprovalStatus.APPROVED and a["decided_at"]:
            decided = datetime.fromisoformat(a["decided_at"])
            # The human decision the engine made of this approval: the first one after it.
            found = next((r for r in runs if r[0] == a["incident_id"] and r[1] >= decided), None)
            extras[a["id"]]["run"] = None if found is None else found[2]
    return extras


def _with_extras(approvals: list[Any]) -> list[dict[str, Any]]:
    rows = [a.model_dump(mode="json") for a in approvals]
    extras = _extras(rows)
    now = time.time()
    return [row | extras[row["id"]] | {"left": time_left(row["expires_at"], now)} for row in rows]


@bp.get("/approvals")
@login_required
def index() -> ResponseReturnValue:
    """Pending approvals (oldest first), expired ones, and the recent decisions."""
    sessions = get_sessions()
    pending = list_approvals(sessions, status=ApprovalStatus.PENDING)
    expired = list_approvals(sessions, status=ApprovalStatus.EXPIRED, limit=RECENT)
    decided = [
        a
        for a in list_approvals(sessions, status=None, limit=4 * RECENT)
        if a.status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED)
    ][:RECENT]
    return render_template(
        "approvals/index.html",
        pending=_with_extras(list(pending)),
        expired=_with_extras(list(expired)),
        decided=_with_extras(decided),
    )


def _decide(approval_id: int, *, approve: bool) -> ResponseReturnValue:
    recorder = components().recorder
    found = recorder.memory.approvals([approval_id]).get(approval_id)
    if found is None:
        abort(404, description=f"No approval with id {approval_id}.")
    note = request.form.get("note", "").strip()[:MAX_NOTE] or None
    problem = None if note is None else text_problem("The note", note)
    if problem is not None:
        abort(400, description=f"{problem}.")
    back = safe_next(request.form.get("next")) or url_for("approvals.index")
    pending = found.status is ApprovalStatus.PENDING  # else decide() refuses it: a 409
    if not approve and pending and request.form.get("confirm") != "yes":
        # One click never rejects: this page asks, and says that nothing happened yet.
        shown = {"expires_at": to_dt(found.expires_at), "left": time_left(found.expires_at)}
        return render_template(
            "approvals/confirm.html", approval=found, shown=shown, note=note, back=back
        )
    try:
        decided = recorder.approvals.decide(
            approval_id, approve=approve, by=g.user.name, at=time.time(), note=note
        )
    except ApprovalError as exc:
        abort(409, description=str(exc))
    verb = "Approved" if approve else "Rejected"
    flash(f"{verb} {decided.action} on {decided.host} (approval {approval_id}).", "info")
    return redirect(back)


@bp.post("/approvals/<id:approval_id>/approve")
@role_required("operator")
def approve(approval_id: int) -> ResponseReturnValue:
    """Approve: the engine runs the action at its next tick."""
    return _decide(approval_id, approve=True)


@bp.post("/approvals/<id:approval_id>/reject")
@role_required("operator")
def reject(approval_id: int) -> ResponseReturnValue:
    """Reject, once confirmed (``confirm=yes``): the action does not run."""
    return _decide(approval_id, approve=False)


@bp.app_template_global()
def run_links(run_id: int) -> dict[str, Any]:
    """The incidents a run worked on and the approvals behind it, for the run page's links."""
    with get_sessions()() as session:
        decisions = session.execute(
            select(Decision.incident_id, Decision.planner, Decision.created_at).where(
                Decision.run_id == run_id
            )
        ).all()
        approvals: list[int] = []
        for incident_id, planner, created_at in decisions:
            if planner != HUMAN:
                continue
            # The approval this human decision came from: the incident's last approved one.
            found = session.scalar(
                select(ApprovalRow.id)
                .where(
                    ApprovalRow.incident_id == incident_id,
                    ApprovalRow.status == ApprovalStatus.APPROVED,
                    ApprovalRow.decided_at <= created_at,
                )
                .order_by(ApprovalRow.decided_at.desc())
                .limit(1)
            )
            if found is not None:
                approvals.append(found)
    return {"incidents": sorted({d[0] for d in decisions}), "approvals": approvals}
