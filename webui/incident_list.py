"""The incident list's sorts (an allow-list read from the query string), who is on each
incident ("ack by", "assigned to"), and its CSV export: keyset pages read one after another,
each written and sent before the next is read, cells a spreadsheet would run as a formula
defused.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import Any

from flask import abort, request

from engine.read.handling_marks import handling_marks
from engine.read.incidents import SORT_COLUMNS
from engine.read.models import Incident, IncidentPage
from engine.timeutil import iso
from webui.db import get_sessions

# Each sort's order when none is asked for: newest first, names A to Z.
SORTS = {"opened": "desc", "host": "asc", "status": "asc", "kind": "asc"}
assert set(SORTS) == set(SORT_COLUMNS)

CSV_ROW_CAP = 100_000  # rows in one export: a bounded response; past it a last line says so
CSV_BATCH = 1000  # rows per page read while streaming (one short session each)
CSV_COLUMNS = (
    "id",
    "host",
    "kind",
    "status",
    "opened_at",
    "closed_at",
    "value_before",
    "value_after",
    "summary",
)
# A cell starting with one of these is a formula to a spreadsheet (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

# Reads one page: (the previous page's cursor or None, at most how many rows).
PageReader = Callable[[int | None, int], IncidentPage]


def parse_sort() -> tuple[str, str]:
    """The sort and order from the query string (an allow-list); a 400 page otherwise."""
    sort = request.args.get("sort", "").strip() or "opened"
    if sort not in SORTS:
        abort(400, description=f"sort must be one of {', '.join(SORTS)}.")
    order = request.args.get("order", "").strip() or SORTS[sort]
    if order not in ("asc", "desc"):
        abort(400, description="order must be asc or desc.")
    return sort, order


def with_handling(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Incident rows (dumped read models) with who acknowledged and who is assigned each,
    read in one query for the rows a list shows (a template filter: webui/dashboard.py)."""
    marks = handling_marks(get_sessions(), [row["id"] for row in rows])
    return [{**row, **marks[row["id"]].model_dump()} if row["id"] in marks else row for row in rows]


def spreadsheet_safe(text: str) -> str:
    """The text, with a ``'`` first if a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_row(incident: Incident, hide: Callable[[str], str]) -> list[object]:
    """One incident as the row of CSV_COLUMNS (times in UTC ISO 8601, empty for none)."""
    return [
        incident.id,
        spreadsheet_safe(incident.host),
        spreadsheet_safe(incident.kind),
        spreadsheet_safe(str(incident.status)),
        iso(incident.opened_at),
        iso(incident.closed_at) or "",
        "" if incident.cpu_before is None else incident.cpu_before,
        "" if incident.cpu_after is None else incident.cpu_after,
        spreadsheet_safe(hide(incident.summary)),  # a second line: the recorder redacts first
    ]


def csv_lines(
    read: PageReader, hide: Callable[[str], str], cap: int | None = None
) -> Iterator[str]:
    """The header, then the rows of ``read``'s pages up to ``cap`` (CSV_ROW_CAP when None);
    a last line if cut."""
    cap = CSV_ROW_CAP if cap is None else cap
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # quotes commas, quotes and newlines (RFC 4180)
    writer.writerow(CSV_COLUMNS)
    sent, cursor, more = 0, None, True
    while more and sent < cap:
        page = read(cursor, min(CSV_BATCH, cap - sent))  # module values: tests lower them
        writer.writerows(csv_row(incident, hide) for incident in page.items)
        sent += len(page.items)
        cursor, more = page.next_before, page.next_before is not None
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if more:
        writer.writerow([f"# cut: the first {sent} rows only; narrow the filters"])
        yield buffer.getvalue()
