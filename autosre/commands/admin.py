"""CLI commands for the store, web UI accounts and API tokens, and the web server."""

from __future__ import annotations

import argparse
import errno
import getpass
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from autosre.commands.common import opened_store, setup_logging
from engine.accounts.users import create_token, create_user, disable_user
from engine.errors import UsageError
from engine.read.users import list_users
from engine.settings import Settings

if TYPE_CHECKING:
    from waitress.server import BaseWSGIServer, MultiSocketServer


def cmd_db_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    """Create or migrate the database schema: the only command that changes it."""
    # Imported here: Alembic loads only for this command, never for the others.
    from engine.store.migrate import migrate_to_head  # noqa: PLC0415
    from engine.store.schema import HEAD  # noqa: PLC0415

    before = migrate_to_head(settings.database_url)
    url = make_url(settings.database_url).render_as_string(hide_password=True)
    was = "no schema" if before is None else f"schema {before}"
    print(f"database {url} is at the newest schema, {HEAD} (it had {was})")
    return 0


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
    with opened_store(settings) as sessions:
        user = create_user(sessions, args.name, password, args.role)
    print(f"user {user.name} created with role {user.role}")
    return 0


def cmd_users_list(args: argparse.Namespace, settings: Settings) -> int:
    """List web UI accounts by name."""
    with opened_store(settings) as sessions:
        rows = [user.model_dump(mode="json") for user in list_users(sessions)]
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
    with opened_store(settings) as sessions:
        disable_user(sessions, args.name)
    print(f"user {args.name} disabled")
    return 0


def cmd_users_enable(args: argparse.Namespace, settings: Settings) -> int:
    """Enable a disabled account again, and note it in the audit log (as the web UI does)."""
    # Imported here: the web UI's modules load only for this command.
    from engine.record.audit import AuditLog  # noqa: PLC0415
    from engine.record.events import Journal  # noqa: PLC0415
    from engine.redact import Redactor  # noqa: PLC0415
    from webui.users import enable_user  # noqa: PLC0415

    who = os.environ.get("SUDO_USER") or getpass.getuser()
    with opened_store(settings) as sessions:
        if not enable_user(sessions, args.name):
            print(f"user {args.name} is already enabled")
            return 0
        journal = Journal(
            sessions, AuditLog(settings.audit_log, redactor=Redactor(settings.secrets))
        )
        message = f"{who} enabled user {args.name} (cli)"
        journal.event(time.time(), "user_enabled", message, data={"user": args.name, "by": who})
    print(f"user {args.name} enabled")
    return 0


def cmd_tokens_create(args: argparse.Namespace, settings: Settings) -> int:
    """Issue an API token; it is printed once and only its hash is kept."""
    with opened_store(settings) as sessions:
        token = create_token(sessions, args.user, args.name)
    print(f"token {args.name!r} for {args.user} (shown once, store it now):", file=sys.stderr)
    print(token)
    return 0


# waitress, not gunicorn: one process with a pool of threads, so the by-hand playbook runs
# (background threads) and the app's in-process state work as they are; pure Python with
# no build step; request limits built in. It reads a whole request in its event loop before
# a thread sees it, so a slow client holds a connection, never one of the threads.
WEB_SERVER_OPTIONS: dict[str, Any] = {
    "threads": 8,
    "connection_limit": 100,
    "max_request_body_size": 1024 * 1024,  # as the app's MAX_CONTENT_LENGTH: 413 above it
    "max_request_header_size": 64 * 1024,
    "channel_timeout": 30,  # seconds a connection may sit idle mid-request or between requests
    "cleanup_interval": 10,  # how often idle connections are looked for
    "ident": "AutoSRE",  # the Server header: no server name or version to look up
    "asyncore_use_poll": True,  # select() stops at file descriptor 1024
    "expose_tracebacks": False,
}


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the web UI with waitress (a production WSGI server) until Ctrl-C or SIGTERM."""
    from waitress import wasyncore  # noqa: PLC0415
    from waitress.server import create_server  # noqa: PLC0415

    # The CLI is where the parts are put together: the engine's own modules never do this.
    from engine.components import Components  # noqa: PLC0415
    from webui import create_app  # noqa: PLC0415

    setup_logging(settings)
    app = create_app(components=Components(settings))
    store = app.extensions["autosre"].kw["bind"]
    sockets: dict[int, Any] = {}
    try:
        server = create_server(app, sockets, host=args.host, port=args.port, **WEB_SERVER_OPTIONS)
    except OSError as exc:
        wasyncore.close_all(sockets)  # what was opened before the bind failed
        store.dispose()
        reason = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror or exc
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {reason}") from None
    stopping = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        # waitress's loop runs in this thread and ends on KeyboardInterrupt, as on Ctrl-C.
        stopping.set()
        raise KeyboardInterrupt

    host, port = _listening(server)
    shown = f"[{host}]" if ":" in host else host
    print(f"AutoSRE web UI on http://{shown}:{port}/ (Ctrl-C stops it)", flush=True)
    if args.host not in {"127.0.0.1", "localhost", "::1"}:
        logging.warning("session cookies are Secure: serve this through HTTPS (a reverse proxy)")
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for sig in previous:
            signal.signal(sig, stop)
        server.run()  # waits for running requests (a few seconds at most) once stopped
    except KeyboardInterrupt:
        pass  # the signal came before the loop started
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the cleanup short
        server.close()
        store.dispose()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        logging.info("web UI stopped")
    if not stopping.is_set():
        logging.error("the web server stopped by itself")
        return 1
    return 0


def _listening(server: BaseWSGIServer | MultiSocketServer) -> tuple[str, int]:
    """The address and port the server listens on (the first, when a name has several)."""
    from waitress.server import MultiSocketServer  # noqa: PLC0415

    if isinstance(server, MultiSocketServer):
        host, port = server.effective_listen[0]
        return host, int(port)
    host, port_text = server.getsockname()
    return host, int(port_text)
