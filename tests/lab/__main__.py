"""``python -m tests.lab up [--hosts N] | down | status | burn HOST [--seconds S]
[--stubborn]``, each with ``[--dir DIR]``.

``burn`` burns one core inside a lab host until its nginx restarts (``--stubborn``: for
``--seconds`` whatever happens), printing why it ended; Ctrl-C stops it.

Errors the lab raises on purpose (missing packages, not root, a lab already up, a bad
argument) print one line and exit 2; ``down`` with no lab says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
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
    burn = commands.add_parser("burn", help="burn one core inside a lab host")
    burn.add_argument("host", help="the lab host, e.g. web2")
    burn.add_argument("--seconds", type=float, default=300.0, help="at most (default 300)")
    burn.add_argument("--stubborn", action="store_true", help="do not stop on a restart")
    for command in (up, commands.add_parser("down"), commands.add_parser("status"), burn):
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


def _burn(directory: Path, host: str, seconds: float, stubborn: bool) -> None:
    lab = Lab.attach(directory)
    if host not in lab.hosts:
        raise LabError(f"no host {host!r} in the lab (it has {', '.join(sorted(lab.hosts))})")
    if not 0 < seconds <= 3600:
        raise LabError(f"--seconds must be within (0, 3600], not {seconds}")
    burn = lab.burn(host, seconds, stubborn)
    print(f"burning one core on {host} (pid {burn.pid})", flush=True)
    try:
        output, _ = burn.communicate(timeout=seconds + 30)
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        burn.terminate()  # the chaos burn stops its stress-ng on SIGTERM
        try:
            output, _ = burn.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            burn.kill()
            output, _ = burn.communicate(timeout=10)
    print(output.strip() or f"the burn on {host} ended (exit {burn.returncode})")


def main(argv: list[str] | None = None) -> int:
    """Run one lab command; the exit status says how it went."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "up":
            _up(args.dir, args.hosts)
        elif not (args.dir / STATE).exists():
            print(f"no lab in {args.dir}")
            return 0 if args.command == "down" else 2
        elif args.command == "burn":
            _burn(args.dir, args.host, args.seconds, args.stubborn)
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
