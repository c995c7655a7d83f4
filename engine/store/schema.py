"""Which schema a database has: read in one query each time the store opens.

Only ``autosre db upgrade`` (``engine.store.migrate``) changes a schema. Every other
opening of the store compares the database's Alembic revision with ``HEAD`` and refuses a
database that was never migrated, is behind, or was migrated by a newer AutoSRE.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, inspect
from sqlalchemy.exc import DBAPIError

from engine.errors import StoreError

# Every migration in migrations/versions, oldest first. Written out so that opening the
# store never loads the migration scripts; tests/engine/test_store.py checks it against
# Alembic's own list, so a new migration that is not added here fails the tests.
REVISIONS = (
    "0001",
    "0002",
    "0003",
    "0004",
    "0005",
    "0006",
    "0007",
    "0008",
    "0009",
    "0010",
    "0011",
    "0012",
    "0013",
    "0014",
    "0015",
)
HEAD = REVISIONS[-1]
VERSION_TABLE = "alembic_version"
UPGRADE_HINT = "run `autosre db upgrade`"


def safe_url(engine: Engine) -> str:
    """The engine's URL as it may be shown: the password masked."""
    return engine.url.render_as_string(hide_password=True)


def describe(exc: BaseException) -> str:
    """The driver's one-line account of a database error (no SQL, no parameters)."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0].strip()}" if lines else type(cause).__name__


def current_revision(connection: Connection) -> str | None:
    """The database's schema revision, or None when it was never migrated."""
    try:
        rows = connection.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").all()  # noqa: S608 - a constant
    except DBAPIError:
        # Only on the failure path: tell a missing table from any other error.
        connection.rollback()
        if inspect(connection).has_table(VERSION_TABLE):
            raise
        return None
    # Alembic keeps one row per branch head; this project's history is a line.
    return "+".join(sorted(str(row[0]) for row in rows)) or None


def check_schema(engine: Engine) -> None:
    """Return if the database's schema is this code's (``HEAD``); else StoreError saying why."""
    where = f"the database at {safe_url(engine)}"
    try:
        with engine.connect() as connection:
            found = current_revision(connection)
    except DBAPIError as exc:
        raise StoreError(f"cannot read the schema of {where}: {describe(exc)}") from None
    if found == HEAD:
        return
    if found is None:
        raise StoreError(f"{where} has no schema yet, this AutoSRE needs {HEAD}: {UPGRADE_HINT}")
    if found in REVISIONS:
        raise StoreError(f"{where} has schema {found}, this AutoSRE needs {HEAD}: {UPGRADE_HINT}")
    raise StoreError(
        f"{where} has schema {found!r}, which this AutoSRE does not know (it needs {HEAD}): "
        "a newer AutoSRE migrated it; run that version, or restore the database from a backup"
    )
