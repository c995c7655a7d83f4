"""Store fixtures shared by the record and approval tests: both real backends, each test its own.

``store_url`` is an empty database (a new SQLite file, or a new schema in the session's
PostgreSQL database); ``sessions`` is it migrated; ``recorder`` writes to it and to a
JSONL audit file of the test's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.record.audit import AuditLog
from engine.record.recorder import Recorder
from engine.store import open_store
from tests.fixtures.postgres import own_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, or a new schema in the session's PostgreSQL db."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'autosre.db'}"
        return
    with own_schema(request.getfixturevalue("postgres_url"), "t") as url:
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
