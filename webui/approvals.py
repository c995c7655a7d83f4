"""Approvals: actions the policy holds for a human, decided here (operator and up)."""

from __future__ import annotations

import time

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from engine.errors import ApprovalError
from engine.read.approvals import list_approvals
from engine.types import ApprovalStatus
from webui.converters import text_problem, use_converters
from webui.db import components, get_sessions
from webui.security import login_required, role_required

bp = Blueprint("approvals", __name__)
use_converters(bp)

MAX_NOTE = 500
RECENT = 20


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
        pending=[a.model_dump(mode="json") for a in pending],
        expired=[a.model_dump(mode="json") for a in expired],
        decided=[a.model_dump(mode="json") for a in decided],
    )


def _decide(approval_id: int, *, approve: bool) -> ResponseReturnValue:
    recorder = components().recorder
    if approval_id not in recorder.memory.approvals([approval_id]):
        abort(404, description=f"No approval with id {approval_id}.")
    note = request.form.get("note", "").strip()[:MAX_NOTE] or None
    problem = None if note is None else text_problem("The note", note)
    if problem is not None:
        abort(400, description=f"{problem}.")
    try:
        decided = recorder.approvals.decide(
            approval_id, approve=approve, by=g.user.name, at=time.time(), note=note
        )
    except ApprovalError as exc:
        abort(409, description=str(exc))
    verb = "Approved" if approve else "Rejected"
    flash(f"{verb} {decided.action} on {decided.host} (approval {approval_id}).", "info")
    return redirect(url_for("approvals.index"))


@bp.post("/approvals/<id:approval_id>/approve")
@role_required("operator")
def approve(approval_id: int) -> ResponseReturnValue:
    """Approve: the engine runs the action at its next tick."""
    return _decide(approval_id, approve=True)


@bp.post("/approvals/<id:approval_id>/reject")
@role_required("operator")
def reject(approval_id: int) -> ResponseReturnValue:
    """Reject: the action does not run."""
    return _decide(approval_id, approve=False)
