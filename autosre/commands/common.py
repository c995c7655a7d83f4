"""Shared pieces of the CLI: argument types, the usage error, logging set-up, safe output."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from sqlalchemy.orm import Session, sessionmaker

from engine.redact import RedactingFilter, Redactor
from engine.settings import Settings

EXIT_USAGE = 2  # bad input: a one-line message, never a traceback
# C0 controls but tab and newline, DEL, C1 controls, and the bidi overrides and
# isolates that reorder what a terminal shows (Trojan Source).
_UNPRINTABLE = dict.fromkeys(
    [
        *(c for c in range(0x20) if c not in (0x09, 0x0A)),
        *range(0x7F, 0xA0),
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, printable(f"autosre: error: {message}") + "\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


def record_id(text: str) -> int:
    value = positive_int(text)
    if value > 2**31 - 1:  # the largest id an INTEGER column holds on PostgreSQL
        raise argparse.ArgumentTypeError(f"no such id: {text!r}")
    return value


def seconds_arg(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400 seconds: {text!r}")
    return value


def port_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535: {text!r}")
    return value


def printable(text: str) -> str:
    """Text a model, a host or a playbook wrote, safe for a terminal: no control characters."""
    return text.translate(_UNPRINTABLE)


def say(text: str, *, flush: bool = False) -> None:
    """Print a line of output that may hold text from outside (a model, a host, a playbook)."""
    print(printable(text), flush=flush)


def setup_logging(settings: Settings, redactor: Redactor | None = None) -> None:
    """Log to stderr at the configured level, every record redacted (default: settings' secrets)."""
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        stream=sys.stderr,
    )
    redacting = RedactingFilter(redactor or Redactor(settings.secrets))
    for handler in logging.getLogger().handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(redacting)
    # Migration chatter and per-task runner logs drown the one line per state change.
    for noisy in ("alembic", "ansible_runner"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


@contextmanager
def opened_store(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """The store for one command; its connections are closed when the command is done."""
    from engine.store import open_store  # noqa: PLC0415 - keeps `autosre --help` fast

    sessions = open_store(settings.database_url)
    try:
        yield sessions
    finally:
        sessions.kw["bind"].dispose()
