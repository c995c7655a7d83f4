"""CLI commands on playbook runs: ``autosre runs cancel RUN_ID [--wait SECONDS]``.

The request goes to the store (engine/record/run_cancel.py), audited, naming who asked; the
process running the run (an engine replica, the web UI, another CLI) stops it within
seconds. An unknown run or one that has ended exits 2 with the reason.
"""

from __future__ import annotations

import argparse
import getpass
import os
import time

from autosre.commands.common import Parser, record_id, say, seconds_arg
from engine.settings import Settings

POLL = 0.5  # seconds between two looks at the run while --wait waits


def _who() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


def add_commands(sub: argparse._SubParsersAction[Parser]) -> None:
    """The ``runs`` command and its subcommands."""
    runs = sub.add_parser("runs", help="playbook runs, by the engine or by hand")
    rsub = runs.add_subparsers(dest="subcommand", required=True, parser_class=Parser)
    cancel = rsub.add_parser("cancel", help="stop a run in flight; it is recorded as canceled")
    cancel.add_argument("id", type=record_id, help="the run's id (as the web UI and API show it)")
    cancel.add_argument(
        "--wait", type=seconds_arg, help="wait up to this many seconds for the run to stop"
    )
    cancel.set_defaults(func=cmd_runs_cancel)


def cmd_runs_cancel(args: argparse.Namespace, settings: Settings) -> int:
    """Ask for a run to be canceled; with --wait, say how it ended (exit 1 if still running)."""
    from autosre.wiring import load_components  # noqa: PLC0415 - keeps `autosre --help` fast
    from engine.read.runs import cancel_state  # noqa: PLC0415
    from engine.record.run_cancel import request_cancel  # noqa: PLC0415

    components = load_components(settings)
    try:
        asked = request_cancel(components.recorder.journal, args.id, by=_who(), at=time.time())
        when = asked.requested_at.isoformat(timespec="seconds")
        if asked.already:
            say(f"run {asked.run_id} ({asked.ident}): {asked.requested_by} asked at {when}")
        else:
            say(f"run {asked.run_id} ({asked.ident}): cancel requested; it stops within seconds")
        if args.wait is None:
            return 0
        deadline = time.monotonic() + args.wait
        while True:
            state = cancel_state(components.sessions, args.id)
            status = state.status if state is not None else "gone"
            if status not in ("pending", "running", "staged"):
                say(f"run {asked.run_id} ({asked.ident}) ended: {status}")
                return 0
            if time.monotonic() >= deadline:
                say(f"run {asked.run_id} ({asked.ident}) is still {status} after {args.wait:g}s")
                return 1
            time.sleep(POLL)
    finally:
        components.close()
