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


def open_engine(url: str) -> Engine:
    """Create an SQLAlchemy engine for the URL (creating the SQLite file's folder)."""
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
        kwargs.update(pool_pre_ping=True, connect_args={"connect_timeout": 10})
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ArgumentError) as exc:
        raise StoreError(f"unsupported database URL {parsed.drivername}: {exc}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def open_store(url: str) -> sessionmaker[Session]:
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
    engine = open_engine(url)
    try:
        check_schema(engine)
    except StoreError:
        engine.dispose()
        raise
    return sessionmaker(engine, expire_on_commit=False)
