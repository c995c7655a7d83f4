"""The store check: the database answers and its schema is this AutoSRE's newest."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from engine.doctor.report import Finding, fail, ok
from engine.errors import StoreError
from engine.store import open_store
from engine.store.schema import HEAD, describe, safe_url

NAME = "store"


def check_store(database_url: str) -> list[Finding]:
    """ok at schema HEAD; FAIL when missing, unreachable, never migrated, behind or ahead.
    Opened as the engine opens it (engine.store.open_store): nothing is created."""
    try:
        sessions = open_store(database_url)
    except StoreError as exc:
        return [fail(NAME, str(exc))]
    except SQLAlchemyError as exc:  # a URL the driver refuses
        return [fail(NAME, describe(exc))]
    engine = sessions.kw["bind"]
    engine.dispose()
    return [ok(NAME, f"{safe_url(engine)} is at schema {HEAD}")]
