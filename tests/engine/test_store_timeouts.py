"""The engine's PostgreSQL connections give up on a stuck statement and a vanished server
(the machine's real PostgreSQL): a statement past its timeout is an error the tick reports,
and libpq gets the keepalive and TCP user timeout settings; a URL's own options win."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from engine.store import open_store
from tests.fixtures.postgres import own_database


def _libpq_parameters(url: str, **kwargs: float) -> dict[str, str]:
    sessions = open_store(url, **kwargs)
    try:
        with sessions() as session:
            raw = session.connection().connection.driver_connection
            return dict(raw.info.get_parameters())  # type: ignore[union-attr]
    finally:
        sessions.kw["bind"].dispose()


def test_a_stuck_statement_ends_at_the_statement_timeout(postgres_template: str) -> None:
    with own_database(postgres_template, "stuck") as url:
        sessions = open_store(url, statement_timeout=1.0)
        try:
            started = time.monotonic()
            with pytest.raises(OperationalError, match="statement timeout"), sessions() as s:
                s.execute(text("SELECT pg_sleep(20)"))
            assert time.monotonic() - started < 6
            with sessions() as s:  # the pool goes on: the next statement is fine
                assert s.execute(text("SELECT 1")).scalar() == 1
        finally:
            sessions.kw["bind"].dispose()
        params = _libpq_parameters(url)
        assert params["keepalives_idle"] == "10" and params["tcp_user_timeout"] == "30000"
        assert "statement_timeout=30000" in params["options"]


def test_the_urls_own_settings_win(postgres_template: str) -> None:
    with own_database(postgres_template, "own") as url:
        mine = f"{url}?tcp_user_timeout=5000&options=-c%20statement_timeout%3D7000"
        params = _libpq_parameters(mine)
        assert params["tcp_user_timeout"] == "5000"
        assert params["options"] == "-c statement_timeout=7000"
