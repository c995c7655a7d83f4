"""Schema migrations. Only ``autosre db upgrade`` (and the tests' set-up) calls them:
opening the store checks the schema and never changes it (``engine.store.schema``).

On PostgreSQL a migration holds a session-level advisory lock for its whole run, so that
engines started together migrate one after the other: the later ones wait, then find the
schema current. SQLite's own file lock already serialises its writers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from engine.errors import StoreError
from engine.store import open_engine
from engine.store.schema import current_revision, describe, safe_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The advisory lock's key, the same in every AutoSRE: "autosre" in ASCII. Advisory locks
# belong to one database, so databases on one server do not wait for each other.
LOCK_KEY = int.from_bytes(b"autosre", "big")
LOCK_WAIT = 60.0  # seconds a migration waits for another one before it gives up
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE when lock_timeout passes


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolates %: a password with % in the URL must survive.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate_to_head(url: str, *, lock_wait: float = LOCK_WAIT) -> str | None:
    """Bring the database at url to the newest schema; return the revision it had before.

    None means the database had no schema. Any failure is a StoreError naming the database.
    """
    engine = open_engine(url)
    try:
        with engine.connect() as connection, _migration_lock(connection, lock_wait):
            # Read under the lock: a migration that just finished is not "before".
            before = current_revision(connection)
            connection.rollback()
            _apply(connection, lambda cfg: command.upgrade(cfg, "head"))
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"cannot migrate {safe_url(engine)}: {describe(exc)}") from None
    finally:
        engine.dispose()
    return before


def upgrade(engine: Engine, revision: str = "head", *, lock_wait: float = LOCK_WAIT) -> None:
    """Bring the database schema up to the given revision (default: the newest)."""
    _run(engine, lambda cfg: command.upgrade(cfg, revision), lock_wait)


def downgrade(engine: Engine, revision: str, *, lock_wait: float = LOCK_WAIT) -> None:
    """Take the database schema back to an older revision."""
    _run(engine, lambda cfg: command.downgrade(cfg, revision), lock_wait)


def _run(engine: Engine, step: Callable[[Config], None], lock_wait: float) -> None:
    with engine.connect() as connection, _migration_lock(connection, lock_wait):
        _apply(connection, step)


@contextmanager
def _migration_lock(connection: Connection, wait: float) -> Iterator[None]:
    """Hold the migration lock (PostgreSQL only) on this connection, waiting at most
    ``wait`` seconds for another holder; StoreError naming the holder past that."""
    if connection.dialect.name != "postgresql":
        yield
        return
    # Local to the transaction: the migration itself keeps the usual lock_timeout.
    milliseconds = str(max(1, round(wait * 1000)))
    connection.execute(text("SELECT set_config('lock_timeout', :ms, true)"), {"ms": milliseconds})
    try:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        connection.rollback()
        raise StoreError(
            f"cannot migrate {safe_url(connection.engine)}: another migration still holds "
            f"the lock after {wait:g}s ({_holder(connection)})"
        ) from None
    connection.commit()  # a session-level lock outlives the transaction that took it
    try:
        yield
    finally:
        try:
            # A failed migration leaves its transaction aborted; the unlock needs a fresh one.
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
            connection.commit()
        except DBAPIError:
            connection.invalidate()  # closing the session frees its locks


def _holder(connection: Connection) -> str:
    """Who holds the migration lock, as far as pg_stat_activity tells."""
    row = connection.execute(
        text(
            "SELECT a.pid, a.application_name, a.client_addr, a.backend_start"
            " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND l.classid::bigint = :high AND l.objid::bigint = :low"
        ),
        {"high": LOCK_KEY >> 32, "low": LOCK_KEY & 0xFFFFFFFF},
    ).first()
    connection.rollback()
    if row is None:
        return "it was released just now"
    pid, application, address, since = row
    name = f" {application!r}" if application else ""
    where = f" from {address}" if address else ""
    when = f", connected since {since:%Y-%m-%d %H:%M:%S}" if since else ""
    return f"held by server process {pid}{name}{where}{when}"


def _apply(connection: Connection, step: Callable[[Config], None]) -> None:
    """Run one Alembic command on the connection, in one transaction."""
    cfg = alembic_config(connection.engine.url.render_as_string(hide_password=False))
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode recreates tables that others reference, and SQLite checks those
        # references on DROP TABLE; the pragma only switches outside a transaction.
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    try:
        with connection.begin():
            cfg.attributes["connection"] = connection
            step(cfg)
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")
    finally:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()
