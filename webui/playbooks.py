"""Playbooks: the policy's whitelist, runs by hand (form, confirmation, live progress).

A run by hand goes through ``engine.execute.by_hand.run_by_hand`` in a background thread, so it
passes the same guard, per-host locks and records as ``autosre playbook run``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import GatewayTimeout

from engine.components import Components
from engine.errors import HostBusyError, RefusedError
from engine.execute.by_hand import run_by_hand
from engine.policy.schema import ActionSpec
from engine.policy.whitelist import build_request
from engine.read.runs import find_run, list_runs
from engine.record.run_reason import RunReasonError, check_reason, check_ticket
from webui.artifacts import (
    RUNNING,
    app_runs_dir,
    read_events,
    run_artifacts,
)
from webui.converters import use_converters
from webui.db import components, get_sessions
from webui.host_picker import picker_groups, picker_hosts
from webui.redaction import redact_strings, redactor
from webui.security import login_required, role_required

bp = Blueprint("playbooks", __name__)
use_converters(bp)

START_TIMEOUT = 30.0  # seconds to wait for a run to be recorded before redirecting
# Per-host tallies while the run's own stats are not written yet; the output itself is
# webui/ansible_output.py's, as on the incident page.
TASK_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}


def _action(name: str) -> ActionSpec:
    spec = components().policy.actions.get(name)
    if spec is None:
        abort(404, description=f"{name!r} is not a whitelisted action.")
    return spec


@bp.get("/playbooks")
@login_required
def index() -> ResponseReturnValue:
    """The whitelisted actions with their descriptions and vars, and the recent runs."""
    actions = components().policy.actions
    return render_template(
        "playbooks/index.html",
        actions=actions,
        trust=components().policy.trust.table(actions),
        runs=[run.model_dump(mode="json") for run in list_runs(get_sessions(), limit=20).items],
    )


def _form_values() -> tuple[list[str], dict[str, str], bool]:
    hosts = [h for h in request.form.getlist("hosts") if h]
    extra = {
        key.removeprefix("var_"): value
        for key, value in request.form.items()
        if key.startswith("var_") and value != ""
    }
    return hosts, extra, "check" in request.form


def _why() -> dict[str, str]:
    """The reason and ticket as typed (checked by ``_checked_why``; shown again as typed)."""
    return {key: request.form.get(key, "") for key in ("reason", "ticket")}


def _checked_why(why: dict[str, str]) -> tuple[str, str | None]:
    """The reason (required here) and the ticket, or RunReasonError naming the field."""
    return check_reason(why["reason"], required=True), check_ticket(why["ticket"])


def _form(
    name: str,
    hosts: list[str],
    extra: dict[str, str],
    check: bool,
    error: str | None = None,
    why: dict[str, str] | None = None,
) -> ResponseReturnValue:
    fleet = picker_hosts()
    page = render_template(
        "playbooks/run.html",
        name=name,
        spec=_action(name),
        inventory=fleet,
        groups=picker_groups(fleet),
        chosen=set(hosts),
        values=extra,
        check=check,
        error=error,
        # Shown again as typed, less what was refused for being unprintable (escapes, NUL).
        why={
            key: "".join(c for c in value if c.isprintable()) for key, value in (why or {}).items()
        },
    )
    return page, 400 if error else 200


@bp.route("/playbooks/<name>/run", methods=["GET", "POST"])
@role_required("operator")
def run(name: str) -> ResponseReturnValue:
    """GET: the form. POST: validate and confirm; POST with confirm=yes: start the run.
    A reason is required (400 without one, nothing started); a ticket is optional."""
    spec = _action(name)
    if request.method == "GET":
        return _form(name, [], {}, check=True)
    hosts, extra, check = _form_values()
    why = _why()
    parts = components()
    try:
        reason, ticket = _checked_why(why)
        build_request(
            parts.policy,
            parts.inventory,
            parts.settings.playbook_dir,
            action=name,
            hosts=hosts,
            extra_vars=extra,
            check=check,
        )
    except (RefusedError, RunReasonError) as exc:
        return _form(name, hosts, extra, check, error=str(exc), why=why)
    if request.form.get("confirm") != "yes":
        secret = {var for var, v in spec.vars.items() if v.secret}
        return render_template(
            "playbooks/confirm.html",
            name=name,
            spec=spec,
            hosts=hosts,
            extra=extra,
            secret=secret,
            check=check,
            reason=reason,
            ticket=ticket,
            # Runs by hand are allowed in maintenance; the confirmation says so.
            maintenance=parts.recorder.maintenance.notes(
                {h: parts.inventory.hosts[h] for h in hosts if h in parts.inventory.hosts},
                time.time(),
            ),
        )
    try:
        ident = _start(
            parts, name, hosts, extra, check, requested_by=g.user.name, why=(reason, ticket)
        )
    except RefusedError as exc:
        return _form(name, hosts, extra, check, error=str(exc), why=why)
    except HostBusyError as exc:
        abort(409, description=str(exc))
    return redirect(url_for("playbooks.run_page", ident=ident))


def _start(
    parts: Components,
    name: str,
    hosts: list[str],
    extra: dict[str, str],
    check: bool,
    *,
    requested_by: str,
    why: tuple[str, str | None],
) -> str:
    """Run in a thread; return the run's ident once recorded, or raise what refused it."""
    started = threading.Event()
    outcome: dict[str, Any] = {}

    def on_start(ident: str, _run_dir: str) -> None:
        outcome["ident"] = ident
        started.set()

    def work() -> None:
        try:
            run_by_hand(
                parts,
                action=name,
                hosts=hosts,
                extra_vars=extra,
                check=check,
                requested_by=requested_by,
                on_start=on_start,
                reason=why[0],
                ticket=why[1],
            )
        except Exception as exc:  # reported to the request below if before the start
            outcome["error"] = exc
        finally:
            started.set()

    threading.Thread(target=work, name=f"manual-run-{name}", daemon=True).start()
    started.wait(START_TIMEOUT)
    if "ident" in outcome:
        return str(outcome["ident"])
    error = outcome.get("error")
    if isinstance(error, Exception):
        raise error
    raise GatewayTimeout(description="The run did not start in time; see the recent runs.")


def _find_run(ident: str) -> dict[str, Any]:
    found = find_run(get_sessions(), ident)
    if found is None:
        abort(404, description=f"No playbook run {ident!r}.")
    return found.model_dump(mode="json")


def progress_view(found: dict[str, Any]) -> dict[str, Any]:
    """What the progress fragment shows: the run and its per-host tallies (its output comes
    from ``ansible_output_of`` in the template). Read from the run's directory, redacted: a
    live run's files may still hold what the executor has not scrubbed yet."""
    hide = redactor()
    artifacts = run_artifacts(found, app_runs_dir())
    events = [] if artifacts is None else read_events(artifacts)
    tallies: dict[str, Counter[str]] = {}
    for event in events:
        outcome = TASK_EVENTS.get(str(event.get("event")))
        data = event.get("event_data") or {}
        if outcome is None or not isinstance(data, dict):
            continue
        res = data.get("res")
        tally = tallies.setdefault(hide.text(str(data.get("host", "?"))), Counter())
        tally[outcome] += 1
        tally["changed"] += int(isinstance(res, dict) and bool(res.get("changed")))
    return {
        "run": redact_strings(found),
        "running": found["status"] in RUNNING,
        "tallies": {h: dict(t) for h, t in sorted(tallies.items())},
    }


@bp.get("/playbooks/runs/<ident:ident>")
@login_required
def run_page(ident: str) -> ResponseReturnValue:
    """One run's page; polls its progress fragment while it runs."""
    return render_template("playbooks/run_page.html", **progress_view(_find_run(ident)))


@bp.get("/playbooks/runs/<ident:ident>/progress")
@login_required
def progress(ident: str) -> ResponseReturnValue:
    """The progress fragment: status, per-host stats, task events, output tail."""
    return render_template("playbooks/_progress.html", **progress_view(_find_run(ident)))
