"""CLI commands that read incidents, handle them (ack, assign, resolve) and decide approvals."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import time
from collections.abc import Callable
from typing import Any

from autosre.commands.common import Parser, opened_store, percent, record_id, say
from autosre.commands.explain import add_command as add_explain_command
from engine.errors import UsageError
from engine.read.approvals import list_approvals
from engine.read.incidents import incident_detail, list_incidents
from engine.record.handling import Handling, HandlingRecords
from engine.settings import Settings


def cmd_incidents_list(args: argparse.Namespace, settings: Settings) -> int:
    """List incidents, newest first."""
    with opened_store(settings) as sessions:
        page = list_incidents(sessions, status=args.status, host=args.host, limit=args.limit)
    rows = [incident.model_dump(mode="json") for incident in page.items]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        say("no incidents")
        return 0
    # The kind's own measure (CPU, memory, disk, down), when opened and when closed.
    head = f"{'ID':>5}  {'HOST':<20} {'KIND':<9} {'STATUS':<12} {'ACTION':<16}"
    say(f"{head} {'OPEN->CLOSE':>13}  OPENED")
    for row in rows:
        cpu = percent(row["cpu_before"]) + " -> " + percent(row["cpu_after"])
        say(
            f"{row['id']:>5}  {row['host']:<20.20} {row['kind']:<9} {row['status']:<12} "
            f"{row['action'] or '-':<16} {cpu:>13}  {row['opened_at']}"
        )
    return 0


def cmd_incidents_show(args: argparse.Namespace, settings: Settings) -> int:
    """Show one incident: timeline, decisions with reasons, runs."""
    with opened_store(settings) as sessions:
        found = incident_detail(sessions, args.id)
    if found is None:
        raise UsageError(f"no incident with id {args.id}")
    detail = found.model_dump(mode="json")
    if args.json:
        print(json.dumps(detail, indent=2))
        return 0
    say(f"incident {detail['id']} on {detail['host']}: {detail['kind']}, {detail['status']}")
    say(
        f"  opened {detail['opened_at']}, closed {detail['closed_at'] or '-'}; cpu "
        f"{percent(detail['cpu_before'])} before, {percent(detail['cpu_after'])} after"
    )
    say("timeline:")
    for event in detail["timeline"]:
        say(f"  {event['at']}  {event['kind']:<14} {event['message']}")
    say("decisions:")
    for d in detail["decisions"]:
        say(
            f"  #{d['id']} {d['planner']} proposed {d['action']} ({d['confidence']:.2f}): "
            f"{d['rationale']}"
        )
        if d["model"]:
            say(f"      model {_call_summary(d)}")
        if d["call_error"]:
            say(f"      model reply not used: {d['call_error']}")
        if d["fallback"]:
            say(f"      fallback to rules: {d['fallback']}")
        say(
            f"      verdict {d['verdict']} [{d['rule']}]"
            + (f" (trust {d['trust']})" if d.get("trust") else "")
            + f": {d['reason']}; "
            f"outcome {d['outcome'] or '-'}"
        )
    if detail["approvals"]:
        say("approvals:")
        for a in detail["approvals"]:
            say(f"  #{a['id']} {a['action']}: {_approval_state(a)}")
    say("runs:")
    for run in detail["runs"]:
        say(
            f"  {run['ident']}: {run['action']} on {', '.join(run['hosts'])} -> "
            f"{run['status']} (rc {run['rc']}); artifacts {run['artifact_dir']}"
        )
    return 0


def _call_summary(d: dict[str, Any]) -> str:
    """One line on a decision's model call: who, how long, how many tokens."""
    parts = [f"{d['provider']}/{d['model']}"]
    if d["latency_ms"] is not None:
        parts.append(f"{d['latency_ms']:.0f} ms")
    if d["attempts"] is not None:
        parts.append(f"{d['attempts']} attempt{'s' if d['attempts'] != 1 else ''}")
    if d["input_tokens"] is not None or d["output_tokens"] is not None:
        tokens_in = "?" if d["input_tokens"] is None else d["input_tokens"]
        tokens_out = "?" if d["output_tokens"] is None else d["output_tokens"]
        parts.append(f"tokens {tokens_in} in / {tokens_out} out")
    if d["cached"]:
        parts.append("cached")
    return ", ".join(parts)


def _approval_state(a: dict[str, Any]) -> str:
    """An approval's status in words: who decided when, or until when it waits."""
    if a["status"] == "pending":
        return f"pending until {a['expires_at']}"
    if a["decided_by"]:
        note = f" ({a['note']})" if a["note"] else ""
        return f"{a['status']} by {a['decided_by']} at {a['decided_at']}{note}"
    return f"{a['status']} at {a['decided_at'] or a['expires_at']}"


def cmd_approvals_list(args: argparse.Namespace, settings: Settings) -> int:
    """List approvals: pending ones (oldest first), or all of them (newest first)."""
    with opened_store(settings) as sessions:
        status = None if args.all else "pending"
        found = list_approvals(sessions, status=status, limit=args.limit)
    rows = [approval.model_dump(mode="json") for approval in found]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        say("no approvals" if args.all else "no pending approvals")
        return 0
    say(f"{'ID':>5}  {'INCIDENT':>8}  {'HOST':<20} {'ACTION':<16} {'STATUS':<9} REQUESTED")
    for row in rows:
        say(
            f"{row['id']:>5}  {row['incident_id']:>8}  {row['host']:<20.20} "
            f"{row['action']:<16} {row['status']:<9} {row['requested_at']}"
        )
        say(f"{'':>7}{_approval_state(row)}")
        if row["rationale"]:
            say(f"{'':>7}why: {row['rationale']}")
    return 0


def _decide(args: argparse.Namespace, settings: Settings, *, approve: bool) -> int:
    from engine.components import Components  # noqa: PLC0415

    components = Components(settings)
    try:
        recorder = components.recorder
        user = os.environ.get("SUDO_USER") or getpass.getuser()
        approval = recorder.approvals.decide(
            args.id, approve=approve, by=user, at=time.time(), note=args.note
        )
    finally:
        components.close()
    say(
        f"approval {approval.id} {approval.status} by {user}: {approval.action} on "
        f"{approval.host} (incident {approval.incident_id})"
    )
    if approve:
        say("  the engine runs it on its next tick, if the policy still allows it")
    return 0


def cmd_approvals_approve(args: argparse.Namespace, settings: Settings) -> int:
    """Approve a pending action; the engine carries it out on its next tick."""
    return _decide(args, settings, approve=True)


def cmd_approvals_reject(args: argparse.Namespace, settings: Settings) -> int:
    """Reject a pending action; the engine will not run it."""
    return _decide(args, settings, approve=False)


# -- people handling incidents ---------------------------------------------------------------


def add_handling_commands(isub: argparse._SubParsersAction[Parser]) -> None:
    """``incidents ack|assign|resolve ID``: what a person does on an incident, from a shell."""
    ack = isub.add_parser("ack", help="acknowledge an incident: you are on it")
    ack.add_argument("id", type=record_id)
    ack.add_argument("--note", help="what you are doing about it")
    ack.set_defaults(func=cmd_incidents_ack)
    assign = isub.add_parser("assign", help="assign an incident to a web user")
    assign.add_argument("id", type=record_id)
    assign.add_argument("user", help="the web user's name")
    assign.set_defaults(func=cmd_incidents_assign)
    resolve = isub.add_parser("resolve", help="close an incident by hand, with a note")
    resolve.add_argument("id", type=record_id)
    resolve.add_argument("--note", required=True, help="why it is over (kept in its timeline)")
    resolve.set_defaults(func=cmd_incidents_resolve)
    add_explain_command(isub)  # incidents explain ID: decision replay


def _handle(settings: Settings, act: Callable[[HandlingRecords, str], Handling]) -> Handling:
    """Do one action as the person at the terminal (as deciding approvals does)."""
    from engine.components import Components  # noqa: PLC0415 - keeps `autosre --help` fast

    components = Components(settings)
    try:
        return act(components.recorder.handling, os.environ.get("SUDO_USER") or getpass.getuser())
    finally:
        components.close()


def cmd_incidents_ack(args: argparse.Namespace, settings: Settings) -> int:
    """Acknowledge an incident; the engine carries on as before."""
    marks = _handle(
        settings, lambda h, by: h.acknowledge(args.id, by=by, at=time.time(), note=args.note)
    )
    say(f"incident {marks.incident_id} acknowledged by {marks.acknowledged_by}")
    return 0


def cmd_incidents_assign(args: argparse.Namespace, settings: Settings) -> int:
    """Assign an incident to a web user."""
    marks = _handle(settings, lambda h, by: h.assign(args.id, to=args.user, by=by, at=time.time()))
    say(f"incident {marks.incident_id} assigned to {marks.assigned_to}")
    return 0


def cmd_incidents_resolve(args: argparse.Namespace, settings: Settings) -> int:
    """Resolve an incident by hand; refused while a playbook run is in flight."""
    marks = _handle(
        settings, lambda h, by: h.resolve(args.id, by=by, at=time.time(), note=args.note)
    )
    say(f"incident {marks.incident_id} closed by {marks.resolved_by} ({marks.status})")
    return 0
