"""Schema migrations. Only ``autosre db upgrade`` (and the tests' set-up) calls them:
opening the store checks the schema and never changes it (``engine.store.schema``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from engine.errors import StoreError
from engine.store import open_engine
from engine.store.schema import current_revision, describe, safe_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolates %: a password with % in the URL must survive.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate_to_head(url: str) -> str | None:
    """Bring the database at url to the newest schema; return the revision it had before.

    None means the database had no schema. Any failure is a StoreError naming the database.
    """
    engine = open_engine(url)
    try:
        with engine.connect() as connection:
            before = current_revision(connection)
        upgrade(engine)
    except Exception as exc:
        raise StoreError(f"cannot migrate {safe_url(engine)}: {describe(exc)}") from None
    finally:
        engine.dispose()
    return before


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database schema up to the given revision (default: the newest)."""
    _run(engine, lambda cfg: command.upgrade(cfg, revision))


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database schema back to an older revision."""
    _run(engine, lambda cfg: command.downgrade(cfg, revision))


def _run(engine: Engine, step: Callable[[Config], None]) -> None:
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as connection:
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
