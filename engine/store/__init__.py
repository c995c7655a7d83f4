"""The SQL store: SQLite embedded by default, PostgreSQL in production.

``open_store`` never changes a schema: it refuses a database whose schema is not this
code's and names the command that migrates it, ``autosre db upgrade``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import StoreError
from engine.store.json_codec import dumps as json_dumps
from engine.store.schema import HEAD, UPGRADE_HINT, check_schema


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the web UI read while the engine writes; busy_timeout rides out
    # short write locks instead of failing a tick.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"AUTOSRE_DATABASE_URL is not a database URL: {exc}") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_file(parsed: URL) -> Path | None:
    """The file of an SQLite URL (None for other databases and in-memory SQLite)."""
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


# A statement of the engine's or the UI's that runs this long is stuck (a lock, a server
# in trouble): better an error the tick reports than a tick held for ever. Migrations run
# without it.
STATEMENT_TIMEOUT = 30.0  # seconds
# A server that vanished (no RST: a partition, a dead VM) is noticed within about this
# long, instead of TCP's retransmissions for a quarter of an hour.
_PG_LIVENESS = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,  # ms of unacknowledged data before the connection fails
}


def open_engine(url: str, statement_timeout: float | None = None) -> Engine:
    """Create an SQLAlchemy engine for the URL (creating the SQLite file's folder); on
    PostgreSQL, dead servers are noticed and statements end after ``statement_timeout``."""
    parsed = _parse(url)
    kwargs: dict[str, Any] = {}
    if parsed.drivername.startswith("sqlite"):
        path = _sqlite_file(parsed)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder of {path}: {exc}") from None
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
    else:
        connect: dict[str, Any] = {"connect_timeout": 10, **_PG_LIVENESS}
        if statement_timeout is not None and "options" not in parsed.query:
            connect["options"] = f"-c statement_timeout={round(statement_timeout * 1000)}"
        # What the URL says wins: a deployment may know its network better.
        connect = {k: v for k, v in connect.items() if k not in parsed.query}
        kwargs.update(pool_pre_ping=True, connect_args=connect)
    try:
        engine = create_engine(parsed, json_serializer=json_dumps, **kwargs)
    except (NoSuchModuleError, ArgumentError) as exc:
        raise StoreError(f"unsupported database URL {parsed.drivername}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_store(url: str, statement_timeout: float = STATEMENT_TIMEOUT) -> sessionmaker[Session]:
    """A session factory on the database; StoreError unless its schema is this code's.

    One query checks the schema; nothing is created or migrated (``autosre db upgrade``
    does that).
    """
    parsed = _parse(url)
    path = _sqlite_file(parsed)
    if path is not None and not path.is_file():
        # Connecting would create an empty file (and its folder) just to refuse it.
        shown = parsed.render_as_string(hide_password=True)
        raise StoreError(
            f"the database at {shown} does not exist, this AutoSRE needs schema {HEAD}: "
            f"{UPGRADE_HINT}"
        )
    engine = open_engine(url, statement_timeout)
    try:
        check_schema(engine)
    except StoreError:
        engine.dispose()
        raise
    return sessionmaker(engine, expire_on_commit=False)
