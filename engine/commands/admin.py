"""CLI commands for the store, web UI accounts and API tokens, and the web server."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from engine.settings import Settings
from engine.users import create_token, create_user, disable_user, list_users

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker
from engine.commands.common import UsageError, setup_logging


def cmd_db_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    """Create or migrate the database schema."""
    from engine.store import open_store  # noqa: PLC0415

    sessions = open_store(settings.database_url)
    url = sessions.kw["bind"].url.render_as_string(hide_password=True)
    print(f"database {url} is at the newest schema")
    return 0


@contextmanager
def _accounts_store(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """The store for one command, its connections closed at the end (they hold no state)."""
    from engine.store import open_store  # noqa: PLC0415

    sessions = open_store(settings.database_url)
    try:
        yield sessions
    finally:
        sessions.kw["bind"].dispose()


def _read_password() -> str:
    """The new password: stdin's first line when piped, else typed twice at the terminal."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    password = getpass.getpass("password: ")
    if getpass.getpass("password again: ") != password:
        raise UsageError("the two passwords differ")
    return password


def cmd_users_add(args: argparse.Namespace, settings: Settings) -> int:
    """Create a web UI account."""
    password = _read_password()
    with _accounts_store(settings) as sessions:
        user = create_user(sessions, args.name, password, args.role)
    print(f"user {user.name} created with role {user.role}")
    return 0


def cmd_users_list(args: argparse.Namespace, settings: Settings) -> int:
    """List web UI accounts by name."""
    with _accounts_store(settings) as sessions:
        rows = list_users(sessions)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no users")
        return 0
    print(f"{'NAME':<24} {'ROLE':<9} {'STATE':<9} {'TOKENS':>6}  CREATED")
    for row in rows:
        state = "disabled" if row["disabled"] else "enabled"
        print(
            f"{row['name']:<24} {row['role']:<9} {state:<9} {row['tokens']:>6}  {row['created_at']}"
        )
    return 0


def cmd_users_disable(args: argparse.Namespace, settings: Settings) -> int:
    """Disable an account: signed-in sessions end, tokens stop working."""
    with _accounts_store(settings) as sessions:
        disable_user(sessions, args.name)
    print(f"user {args.name} disabled")
    return 0


def cmd_tokens_create(args: argparse.Namespace, settings: Settings) -> int:
    """Issue an API token; it is printed once and only its hash is kept."""
    with _accounts_store(settings) as sessions:
        token = create_token(sessions, args.user, args.name)
    print(f"token {args.name!r} for {args.user} (shown once, store it now):", file=sys.stderr)
    print(token)
    return 0


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the web UI with werkzeug's threaded server until Ctrl-C or SIGTERM."""
    from werkzeug.serving import make_server  # noqa: PLC0415

    # The CLI is where the parts are put together: the engine's own modules never do this.
    from webui import create_app  # noqa: PLC0415

    setup_logging(settings)
    app = create_app(settings=settings)
    try:
        server = make_server(args.host, args.port, app, threaded=True)
    except (OSError, SystemExit):
        # werkzeug prints why (port in use, no such address) and exits: name what was asked.
        app.extensions["autosre"].kw["bind"].dispose()
        raise UsageError(f"cannot listen on {args.host}:{args.port}") from None
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"AutoSRE web UI on http://{host}:{server.server_port}/ (Ctrl-C stops it)", flush=True)
    if args.host not in {"127.0.0.1", "localhost", "::1"}:
        logging.warning("session cookies are Secure: serve this through HTTPS (a reverse proxy)")
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda _signum, _frame: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="autosre-web", daemon=True)
    thread.start()
    try:
        while not stop.wait(timeout=0.5) and thread.is_alive():
            pass
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        app.extensions["autosre"].kw["bind"].dispose()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        logging.info("web UI stopped")
    if not stop.is_set():
        logging.error("the web server stopped by itself")
        return 1
    return 0
