"""``python -m tests.lab up [--hosts N] [--dir DIR] | down [--dir DIR] | status [--dir DIR]``.

Errors the lab raises on purpose (missing packages, not root, a lab already up, a bad
argument) print one line and exit 2; ``down`` with no lab says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tests.lab.errors import LabError
from tests.lab.lab import STATE, Lab

DEFAULT_DIR = Path(".lab")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="bring a lab of N hosts up")
    up.add_argument("--hosts", type=int, default=4, help="number of hosts (default 4)")
    for command in (up, commands.add_parser("down"), commands.add_parser("status")):
        command.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="lab directory")
    return parser


def _up(directory: Path, hosts: int) -> None:
    if (directory / STATE).exists():
        raise LabError(
            f"a lab already runs in {directory}: `python -m tests.lab down --dir {directory}` first"
        )
    lab = Lab(directory, hosts=hosts).up()
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in lab.timings.items())
    print(f"lab of {hosts} host(s) up in {lab.directory} ({timings})")
    print(f"inventory:  {lab.inventory_path}")
    print(f"prometheus: {lab.prometheus_url}")
    print("point the engine at it:")
    print(
        f"  AUTOSRE_PROMETHEUS_URL={lab.prometheus_url} AUTOSRE_INVENTORY={lab.inventory_path}"
        " AUTOSRE_POLICY=policies/lab.yaml .venv/bin/autosre run"
    )


def main(argv: list[str] | None = None) -> int:
    """Run one lab command; the exit status says how it went."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "up":
            _up(args.dir, args.hosts)
        elif not (args.dir / STATE).exists():
            print(f"no lab in {args.dir}")
            return 0 if args.command == "down" else 2
        elif args.command == "down":
            Lab.attach(args.dir).down()
            print(f"lab in {args.dir} is down")
        else:
            print(json.dumps(Lab.attach(args.dir).status(), indent=2))
    except LabError as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
