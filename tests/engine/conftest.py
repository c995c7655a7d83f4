"""Store fixtures shared by the record and approval tests: both real backends, each test its own.

``store_url`` is a database at the newest schema (a copy of the session's migrated SQLite
file, or of its migrated PostgreSQL template); ``empty_store_url`` is one with no schema,
for the migration tests; ``sessions`` opens ``store_url``; ``recorder`` writes to it and to
a JSONL audit file of the test's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.record.audit import AuditLog
from engine.record.recorder import Recorder
from engine.store import open_store
from tests.fixtures.postgres import own_database
from tests.fixtures.store import migrated_sqlite

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database at the newest schema, of its own: SQLite, or PostgreSQL."""
    if request.param == "sqlite":
        yield migrated_sqlite(tmp_path / "data" / "autosre.db")
        return
    with own_database(request.getfixturevalue("postgres_template"), "t") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema: a new SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'autosre.db'}"
        return
    request.getfixturevalue("postgres_server")
    with own_database(None, "e") as url:
        yield url


@pytest.fixture
def opened() -> Iterator[list[sessionmaker[Session]]]:
    """Every session factory a test opens, disposed at teardown."""
    factories: list[sessionmaker[Session]] = []
    yield factories
    for factory in factories:
        factory.kw["bind"].dispose()


@pytest.fixture
def sessions(store_url: str, opened: list[sessionmaker[Session]]) -> sessionmaker[Session]:
    factory = open_store(store_url)
    opened.append(factory)
    return factory


@pytest.fixture
def audit_path(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "audit.jsonl"


@pytest.fixture
def recorder(sessions: sessionmaker[Session], audit_path: Path) -> Recorder:
    return Recorder(sessions, AuditLog(audit_path))
