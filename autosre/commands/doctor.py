"""``autosre doctor [--json] [--timeout S]``: does what the engine needs answer, from here?

One line per check (ok, FAIL, skip and what was seen), then a summary; exit 0 when no
check failed, 1 when one did, 2 on bad input. The checks live in engine/doctor.
"""

from __future__ import annotations

import argparse
import json

from autosre.commands.common import Parser, say, seconds_arg
from engine.settings import Settings

EXIT_FAILED = 1


def add_commands(sub: argparse._SubParsersAction[Parser]) -> None:
    """The ``doctor`` command."""
    doctor = sub.add_parser(
        "doctor",
        help="check Prometheus, Ansible, the store, the policy and the model from this machine",
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.add_argument(
        "--timeout",
        type=seconds_arg,
        default=30.0,
        help="seconds each check may take (default 30)",
    )
    doctor.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    """Run every check side by side, each bounded; print the report."""
    # Imported here: keeps `autosre --help` fast.
    from autosre.wiring import build_transport  # noqa: PLC0415 - the engine's wiring, on use
    from engine.doctor.checks import doctor_checks  # noqa: PLC0415
    from engine.doctor.run import run_checks  # noqa: PLC0415

    checks = doctor_checks(settings, transport=build_transport(settings), timeout=args.timeout)
    report = run_checks(checks)
    if args.json:
        # JSON escapes control characters itself.
        print(json.dumps(report.as_json(), indent=2))
    else:
        for line in report.lines():
            say(line)  # what a host, a server or Ansible said: no terminal escapes
    return EXIT_FAILED if report.failed else 0
