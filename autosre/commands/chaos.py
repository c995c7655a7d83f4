"""CLI commands for the memory, disk and nginx-down chaos experiments (CPU: operate.py)."""

from __future__ import annotations

import argparse

from engine.settings import Settings


def percent_arg(text: str) -> float:
    """A percentage strictly between 0 and 100 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100: {text!r}")
    return value


def _say(line: str) -> None:
    print(f"chaos: {line}", flush=True)


def cmd_chaos_memory(args: argparse.Namespace, _settings: Settings) -> int:
    """Hold memory until the host's use reaches --percent, until the service restarts."""
    from autosre.chaos_fill import hog_memory  # noqa: PLC0415 - keeps `autosre --help` fast

    outcome = hog_memory(
        percent=args.percent,
        seconds=args.seconds,
        stubborn=args.stubborn,
        service=args.service,
        max_mb=args.max_mb,
        on_progress=_say,
    )
    _say(f"ended after {outcome.duration:.1f}s: {outcome.reason}")
    return 0


def cmd_chaos_disk(args: argparse.Namespace, _settings: Settings) -> int:
    """Fill the filesystem holding --path to --percent until the file is cleaned away."""
    from autosre.chaos_fill import fill_disk  # noqa: PLC0415

    outcome = fill_disk(
        path=args.path,
        percent=args.percent,
        seconds=args.seconds,
        stubborn=args.stubborn,
        max_mb=args.max_mb,
        on_progress=_say,
    )
    _say(f"ended after {outcome.duration:.1f}s: {outcome.reason}")
    return 0


def cmd_chaos_nginx_down(args: argparse.Namespace, _settings: Settings) -> int:
    """Stop nginx (stubborn: with a broken config) until it runs again."""
    from autosre.chaos_nginx import stop_nginx  # noqa: PLC0415

    outcome = stop_nginx(seconds=args.seconds, stubborn=args.stubborn, on_progress=_say)
    restored = ", ".join(outcome.restored) or "nothing to restore"
    _say(f"ended after {outcome.duration:.1f}s: {outcome.reason} ({restored})")
    return 0
