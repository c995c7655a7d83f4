"""``autosre prune [--dry-run] [--json]``: the policy's retention, applied by hand."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from datetime import UTC, datetime

from autosre.commands.common import Parser, opened_store, printable, say
from engine.settings import Settings

EXIT_PARTIAL = 1  # some run dir could not be removed: the rest was


def add_command(sub: argparse._SubParsersAction[Parser]) -> None:
    """The ``prune`` command."""
    prune = sub.add_parser(
        "prune", help="delete old run dirs and closed incidents, as the policy's retention says"
    )
    prune.add_argument("--dry-run", action="store_true", help="say what would go; remove nothing")
    prune.add_argument("--json", action="store_true", help="print the report as JSON")
    prune.set_defaults(func=cmd_prune)


def _who() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


def _when(ts: float | None) -> str:
    if ts is None:
        return "none left"
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _progress(line: str) -> None:
    print(printable(f"prune: {line}"), file=sys.stderr, flush=True)


def cmd_prune(args: argparse.Namespace, settings: Settings) -> int:
    """Prune (or, with --dry-run, only count) what the retention policy lets go."""
    # Imported here: keeps `autosre --help` fast.
    from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

    from engine.errors import StoreError, UsageError  # noqa: PLC0415
    from engine.policy.load import load_policy  # noqa: PLC0415
    from engine.prune import prune  # noqa: PLC0415
    from engine.prune_report import human_bytes  # noqa: PLC0415
    from engine.record.audit import AuditLog  # noqa: PLC0415
    from engine.record.events import Journal  # noqa: PLC0415
    from engine.redact import Redactor  # noqa: PLC0415
    from engine.store.schema import describe  # noqa: PLC0415

    policy = load_policy(settings.policy, playbook_dir=settings.playbook_dir)
    with opened_store(settings) as sessions:
        journal = None
        if not args.dry_run:
            redactor = Redactor(settings.secrets)
            journal = Journal(sessions, AuditLog(settings.audit_log, redactor=redactor))
        if not args.json:
            _progress("looking for what the retention policy lets go")
        try:
            report = prune(
                sessions,
                settings.runs_dir,
                policy,
                journal=journal,
                now=time.time(),
                by=_who(),
                dry_run=args.dry_run,
                progress=_progress,
            )
        except SQLAlchemyError as exc:
            raise StoreError(f"prune stopped, the store failed: {describe(exc)}") from None
        except OSError as exc:  # the runs dir or the audit log cannot be read or written
            where = f" ({exc.filename})" if exc.filename else ""
            raise UsageError(f"prune stopped: {exc.strerror or exc}{where}") from None
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        would = "would remove" if report.dry_run else "removed"
        rows = ", ".join(f"{n} {table}" for table, n in report.rows.items() if n) or "none"
        if report.dry_run:
            say("dry run: nothing was removed")
        say(
            f"run dirs: {would} {report.run_dirs} ({human_bytes(report.bytes)}); "
            f"oldest kept from {_when(report.oldest_run_dir)}"
        )
        say(
            f"incidents: {would} {report.incidents} ({sum(report.rows.values())} rows: {rows}); "
            f"oldest kept opened {_when(report.oldest_incident)}"
        )
    # On stderr: --json's output stays one JSON document.
    for name in report.refused:
        _progress(f"warning: {settings.runs_dir / name} is a symlink: left alone, never followed")
    for problem in report.failed:
        _progress(f"could not remove run dir {problem}")
    return EXIT_PARTIAL if report.failed else 0
