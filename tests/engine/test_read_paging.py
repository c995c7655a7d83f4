"""The keyset paging helper: pure cutting, the query it writes, and walks on both backends.

``sessions`` (tests/engine/conftest.py) is a migrated SQLite file, then a PostgreSQL
schema of its own. Rows are inserted directly, so each page is known in advance.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session, sessionmaker

from engine.read.incidents import list_incidents
from engine.read.paging import cut, keyset, read_page
from engine.read.runs import list_runs
from engine.store.models import Incident, PlaybookRun

T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)


def add_incidents(sessions: sessionmaker[Session], hosts: list[str]) -> list[int]:
    """One open incident per host name, an hour apart; their ids, oldest first."""
    with sessions.begin() as session:
        rows = [
            Incident(
                host=host,
                kind="high_cpu",
                status="open" if n % 2 else "resolved",
                attempts=0,
                opened_at=T0 + timedelta(hours=n),
                updated_at=T0 + timedelta(hours=n),
                summary=f"incident on {host}",
            )
            for n, host in enumerate(hosts)
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def test_cut_keeps_the_page_and_says_where_the_next_starts() -> None:
    assert cut([9, 8, 7], 2, lambda n: n) == ([9, 8], 8)
    assert cut([9, 8], 2, lambda n: n) == ([9, 8], None)  # no empty last page
    assert cut([], 5, lambda n: n) == ([], None)


def test_keyset_reads_one_row_more_than_the_page_below_the_cursor() -> None:
    sql = str(
        keyset(select(Incident), Incident.id, limit=20, before_id=100).compile(
            dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
        )
    )
    assert "incidents.id < 100" in sql
    assert "ORDER BY incidents.id DESC" in sql
    assert "LIMIT 21" in sql
    with pytest.raises(ValueError, match="at least one row"):
        keyset(select(Incident), Incident.id, limit=0, before_id=None)


def test_a_walk_sees_every_row_once_newest_first(sessions: sessionmaker[Session]) -> None:
    ids = add_incidents(sessions, [f"web{n}" for n in range(7)])
    seen: list[int] = []
    sizes: list[int] = []
    before: int | None = None
    with sessions() as session:
        while True:
            rows, before = read_page(
                session, select(Incident), Incident.id, limit=3, before_id=before
            )
            seen += [row.id for row in rows]
            sizes.append(len(rows))
            if before is None:
                break
            assert before == rows[-1].id
    assert seen == ids[::-1]
    assert sizes == [3, 3, 1]


def test_the_incident_lister_pages_within_its_filters(sessions: sessionmaker[Session]) -> None:
    ids = add_incidents(sessions, ["web1", "db1", "web1", "web2", "web1", "db1"])
    first = list_incidents(sessions, host="web1", limit=2)
    assert [i.id for i in first.items] == [ids[4], ids[2]]
    assert first.next_before == ids[2]
    rest = list_incidents(sessions, host="web1", limit=2, before_id=first.next_before)
    assert [i.id for i in rest.items] == [ids[0]] and rest.next_before is None
    opened = list_incidents(sessions, status=("open",), q="DB", limit=10)
    assert [i.id for i in opened.items] == [ids[5], ids[1]]
    assert list_incidents(sessions, status="resolved", q="web", limit=10).next_before is None


def test_runs_page_the_same_way(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        for n in range(3):
            session.add(
                PlaybookRun(
                    ident=f"run-{n}",
                    action="restart_nginx",
                    playbook="restart_nginx.yml",
                    hosts=["web1"],
                    trigger="engine",
                    requested_by="engine",
                    extra_var_names=[],
                    status="successful",
                    rc=0,
                    stats={},
                    artifact_dir=f"/tmp/run-{n}",
                    created_at=T0,
                )
            )
    first = list_runs(sessions, limit=2)
    assert [r.ident for r in first.items] == ["run-2", "run-1"]
    last = list_runs(sessions, limit=2, before_id=first.next_before)
    assert [r.ident for r in last.items] == ["run-0"] and last.next_before is None
