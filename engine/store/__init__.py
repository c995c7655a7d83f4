"""The SQL store: SQLite embedded by default, PostgreSQL in production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import StoreError
from engine.store.migrate import upgrade


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the web UI read while the engine writes; busy_timeout rides out
    # short write locks instead of failing a tick.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def open_engine(url: str) -> Engine:
    """Create an SQLAlchemy engine for the URL (creating the SQLite file's folder)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"AUTOSRE_DATABASE_URL is not a database URL: {exc}") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    kwargs: dict[str, Any] = {}
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
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


def open_store(url: str, *, migrate: bool = True) -> sessionmaker[Session]:
    """Open the database, bring its schema up to date, and return a session factory."""
    engine = open_engine(url)
    if migrate:
        try:
            upgrade(engine)
        except Exception as exc:
            safe = engine.url.render_as_string(hide_password=True)
            raise StoreError(f"cannot migrate {safe}: {exc.__class__.__name__}: {exc}") from None
    return sessionmaker(engine, expire_on_commit=False)
