"""CLI commands for maintenance windows and hosts taken out of automatic remediation:
``autosre maintenance start|end|list`` and ``autosre host enable``."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import time
from datetime import UTC, datetime

from autosre.commands.common import Parser, opened_store, record_id, say
from engine.durations import parse_duration
from engine.errors import MaintenanceError
from engine.settings import Settings


def duration_arg(text: str) -> float:
    """A window's length: 90m, 2h, 1d (or plain seconds)."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def time_arg(text: str) -> float:
    """An ISO 8601 time (no zone: UTC) as UNIX seconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time such as 2026-12-01T06:00Z: {text[:60]!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, ValueError):
        raise argparse.ArgumentTypeError(f"out of range: {text[:60]!r}") from None


def _who() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


def add_commands(sub: argparse._SubParsersAction[Parser]) -> None:
    """The ``maintenance`` and ``host`` commands."""
    maintenance = sub.add_parser("maintenance", help="maintenance windows: the engine hands off")
    msub = maintenance.add_subparsers(dest="subcommand", required=True, parser_class=Parser)
    start = msub.add_parser("start", help="start (or schedule) a window on a host or a group")
    scope = start.add_mutually_exclusive_group(required=True)
    scope.add_argument("--host", help="an inventory host")
    scope.add_argument("--group", help="an inventory group (every host in it)")
    start.add_argument("--for", dest="duration", type=duration_arg, help="how long: 90m, 2h, 1d")
    start.add_argument("--until", type=time_arg, help="when it ends (ISO 8601; no zone: UTC)")
    start.add_argument("--start", type=time_arg, help="when it starts (default: now)")
    start.add_argument("--reason", required=True, help="what is being done, shown everywhere")
    start.set_defaults(func=cmd_maintenance_start)
    end = msub.add_parser("end", help="end a window now, before its expiry")
    end.add_argument("id", type=record_id, help="the window's id (maintenance list)")
    end.set_defaults(func=cmd_maintenance_end)
    mlist = msub.add_parser("list", help="current windows and hosts out of automation")
    mlist.add_argument("--all", action="store_true", help="every window, newest first")
    mlist.add_argument("--json", action="store_true", help="print JSON")
    mlist.set_defaults(func=cmd_maintenance_list)

    host = sub.add_parser("host", help="hosts taken out of automatic remediation (flapping)")
    hsub = host.add_subparsers(dest="subcommand", required=True, parser_class=Parser)
    enable = hsub.add_parser("enable", help="put a host back under automatic remediation")
    enable.add_argument("name", help="the inventory host")
    enable.set_defaults(func=cmd_host_enable)


def cmd_maintenance_start(args: argparse.Namespace, settings: Settings) -> int:
    """Start a window: checked against the inventory and the policy's maximum, then audited."""
    from autosre.wiring import load_components  # noqa: PLC0415 - keeps `autosre --help` fast
    from engine.policy.maintenance_request import window_request  # noqa: PLC0415

    components = load_components(settings)
    try:
        now = time.time()
        request = window_request(
            components.inventory,
            host=args.host,
            group=args.group,
            reason=args.reason,
            now=now,
            max_duration=components.policy.remediation.maintenance.max_duration,
            starts_at=args.start,
            duration=args.duration,
            until=args.until,
        )
        window_id = components.recorder.maintenance.start(request, by=_who(), source="cli", at=now)
    finally:
        components.close()
    scope = f"host {request.host}" if request.host else f"group {request.group}"
    ends = datetime.fromtimestamp(request.ends_at, tz=UTC).isoformat().replace("+00:00", "Z")
    say(f"maintenance window {window_id} on {scope} until {ends}: {request.reason}")
    return 0


def cmd_maintenance_end(args: argparse.Namespace, settings: Settings) -> int:
    """End a window now; the engine acts on its hosts again at its next look."""
    from autosre.wiring import load_components  # noqa: PLC0415

    components = load_components(settings)
    try:
        window = components.recorder.maintenance.end(args.id, by=_who(), at=time.time())
    finally:
        components.close()
    say(f"maintenance window {window.id} on {window.scope} ended")
    return 0


def cmd_maintenance_list(args: argparse.Namespace, settings: Settings) -> int:
    """Current windows (or all) and the hosts out of automatic remediation."""
    from engine.read.maintenance import disabled_hosts, list_windows  # noqa: PLC0415

    with opened_store(settings) as sessions:
        windows = list_windows(sessions, current=not args.all)
        out = disabled_hosts(sessions)
    if args.json:
        print(
            json.dumps(
                {
                    "windows": [w.model_dump(mode="json") for w in windows],
                    "disabled_hosts": [h.model_dump(mode="json") for h in out],
                },
                indent=2,
            )
        )
        return 0
    if not windows:
        say("no maintenance windows" + ("" if args.all else " now or scheduled"))
    for w in windows:
        scope = f"host {w.host}" if w.host else f"group {w.group}"
        until = w.ends_at.isoformat().replace("+00:00", "Z")
        say(f"{w.id:>5}  {w.state:<9}  {scope:<24}  until {until}  by {w.set_by}: {w.reason}")
    for host in out:
        since = host.disabled_at.isoformat().replace("+00:00", "Z")
        say(f"  out of automatic remediation: {host.host} since {since}: {host.reason}")
    return 0


def cmd_host_enable(args: argparse.Namespace, settings: Settings) -> int:
    """Re-enable automatic remediation on a host taken out for flapping (audited)."""
    from autosre.wiring import load_components  # noqa: PLC0415

    components = load_components(settings)
    try:
        if args.name not in components.inventory.hosts:
            raise MaintenanceError(f"unknown host {args.name[:100]!r}: not in the inventory")
        components.recorder.maintenance.enable(args.name, by=_who(), at=time.time())
    finally:
        components.close()
    say(f"{args.name}: automatic remediation re-enabled")
    return 0
