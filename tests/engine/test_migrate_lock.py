"""The migration lock on PostgreSQL: engines started together on one fresh database
migrate one after the other, a migration waits a bounded time, and the lock is always
given back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from engine.errors import StoreError
from engine.store import open_engine
from engine.store.migrate import LOCK_KEY, migrate_to_head, upgrade
from engine.store.schema import HEAD
from tests.fixtures.postgres import CONNECT_TIMEOUT, HOST, PORT, USER, own_database

Connection = psycopg.Connection[tuple[object, ...]]

AUTOSRE = Path(sys.executable).with_name("autosre")
WAIT = 30.0  # seconds, for processes to start (the CLI loads Alembic) and to finish


def _connect(
    url: str, application: str = "autosre-tests"
) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=HOST,
        port=PORT,
        user=USER,
        dbname=str(make_url(url).database),
        connect_timeout=CONNECT_TIMEOUT,
        autocommit=True,
        application_name=application,
    )


def _waiting(conn: Connection) -> int:
    """How many sessions wait for the migration lock in this connection's database."""
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid::bigint = %s AND objid::bigint = %s",
        (LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF),
    ).fetchone()
    return int(row[0]) if row else 0


def _lock_is_free(url: str) -> bool:
    with _connect(url) as conn:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
    return bool(row and row[0])  # closing the connection frees it again


def _versions(url: str) -> list[str]:
    with _connect(url) as conn:
        return [str(v) for (v,) in conn.execute("SELECT version_num FROM alembic_version")]


def test_two_upgrades_at_once_both_succeed_and_migrate_once(
    postgres_server: None, tmp_path: Path
) -> None:
    with own_database(None, "lock") as url:
        env = {**os.environ, "AUTOSRE_DATABASE_URL": url, "AUTOSRE_DATA_DIR": str(tmp_path)}
        # Hold the lock first, so that both processes are surely waiting for it together
        # when it is let go: the moment two engines would collide on alembic_version.
        holder = _connect(url)
        procs: list[subprocess.Popen[str]] = []
        try:
            holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            procs = [
                subprocess.Popen(
                    [str(AUTOSRE), "db", "upgrade"],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(2)
            ]
            deadline = time.monotonic() + WAIT
            while _waiting(holder) < 2:
                exited = [p.args for p in procs if p.poll() is not None]
                assert not exited, f"{exited} ended before waiting for the lock"
                assert time.monotonic() < deadline, "the upgrades did not wait for the lock"
                time.sleep(0.05)
        finally:
            holder.close()  # lets both go at once
            outcomes = []
            for proc in procs:
                try:
                    outcomes.append((proc.wait(timeout=WAIT), *proc.communicate()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    outcomes.append((proc.wait(timeout=WAIT), *proc.communicate()))
        assert [code for code, _, _ in outcomes] == [0, 0], outcomes
        # One created the schema; the other waited, then found it current.
        told = sorted(out.strip().rsplit("(", 1)[-1] for _, out, _ in outcomes)
        assert told == ["it had no schema)", f"it had schema {HEAD})"]
        assert _versions(url) == [HEAD]
        assert _lock_is_free(url)


def test_a_migration_waits_a_bounded_time_and_names_the_holder(postgres_server: None) -> None:
    with own_database(None, "lock") as url:
        with _connect(url, application="the-other-engine") as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            started = time.monotonic()
            with pytest.raises(StoreError) as info:
                migrate_to_head(url, lock_wait=0.5)
            waited = time.monotonic() - started
            pid = holder.info.backend_pid
        assert 0.4 < waited < 3.0
        message = str(info.value)
        assert "\n" not in message
        assert "another migration still holds the lock after 0.5s" in message
        assert f"server process {pid} 'the-other-engine'" in message
        # It gave up without touching the schema; once the holder is gone it migrates.
        assert migrate_to_head(url) is None
        assert _versions(url) == [HEAD]


def test_the_lock_is_given_back_after_a_failed_and_a_good_migration(
    postgres_server: None,
) -> None:
    with own_database(None, "lock") as url:
        engine = open_engine(url)
        try:
            with pytest.raises(Exception, match="0099"):
                upgrade(engine, "0099")  # no such revision: Alembic fails mid-run
            assert _lock_is_free(url)
            upgrade(engine)
            # The pool keeps the migration's connection open: the lock must not live on it.
            assert engine.pool.checkedin() == 1
            assert _lock_is_free(url)
        finally:
            engine.dispose()
        assert _versions(url) == [HEAD]
