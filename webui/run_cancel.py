"""Cancelling a run in flight (operator and up): a button on the run page, and the API.

The request is written to the store (engine/record/run_cancel.py); the process running the
run, whichever it is, reads it within a second and stops it. The page asks first: a POST
without ``confirm=yes`` cancels nothing and shows a confirmation page (confirm.js asks in a
dialog before, so with JavaScript that page is never seen). ``api_bp`` is nested in the API's
blueprint (webui/__init__.py), so its route is documented and guarded like the rest.
"""

from __future__ import annotations

import time
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from engine.read.runs import RunCancelState, cancel_state, get_run
from engine.record.run_cancel import CancelError, request_cancel
from webui.api_requests import Query, parsed_query
from webui.converters import use_converters
from webui.db import components, get_sessions
from webui.openapi import Operation, documented
from webui.redaction import redact_strings
from webui.security import api_auth_required, api_error, role_required

bp = Blueprint("run_cancel", __name__)
api_bp = Blueprint("run_cancel_api", __name__)
use_converters(bp)
use_converters(api_bp)

CANCEL = Operation(
    "Cancel a run in flight: it stops within seconds, recorded as canceled (409 once ended)",
    RunCancelState,
    query=Query,
    errors=(400, 401, 403, 404, 409),
    role="operator",
)


def _ask(run_id: int) -> RunCancelState:
    """Ask for the cancel as the signed-in user; CancelError when it cannot be asked."""
    request_cancel(components().recorder.journal, run_id, by=g.user.name, at=time.time())
    found = cancel_state(get_sessions(), run_id)
    if found is None:  # deleted in between: nothing in AutoSRE does, but say so
        raise CancelError(f"no run with id {run_id}", 404)
    return found


@bp.post("/runs/<id:run_id>/cancel")
@role_required("operator")
def cancel(run_id: int) -> ResponseReturnValue:
    """Cancel, once confirmed (``confirm=yes``): the run stops, recorded as canceled."""
    run = get_run(get_sessions(), run_id)
    if run is None:
        abort(404, description=f"No playbook run with id {run_id}.")
    if request.form.get("confirm") != "yes":
        if run.status not in ("pending", "running", "staged"):
            abort(409, description=f"Run {run_id} has already ended: {run.status}.")
        shown = redact_strings(run.model_dump(mode="json"))
        return render_template("playbooks/cancel_confirm.html", run=shown)
    try:
        asked = _ask(run_id)
    except CancelError as exc:
        abort(exc.status, description=exc.message)
    if asked.cancel_requested_by != g.user.name:
        flash(f"{asked.cancel_requested_by} had already asked to cancel this run.", "info")
    else:
        flash(f"Cancel requested: run {asked.ident} stops within seconds.", "info")
    return redirect(url_for("playbooks.run_page", ident=asked.ident))


@bp.app_template_global()
def run_cancel_state(run_id: int) -> dict[str, Any] | None:
    """The run's cancel request for its page: who asked and when (None: no such run)."""
    found = cancel_state(get_sessions(), run_id)
    return None if found is None else found.model_dump()


@api_bp.post("/runs/<id:run_id>/cancel")
@documented(CANCEL)
@api_auth_required("operator")
def cancel_api(run_id: int) -> ResponseReturnValue:
    parsed_query(Query)
    try:
        asked = _ask(run_id)
    except CancelError as exc:
        return api_error(exc.status, exc.message)
    reply: Response = jsonify(redact_strings(asked.model_dump(mode="json")))
    return reply
