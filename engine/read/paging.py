"""Keyset pages, newest first by id: every paged list of the read side goes through here.

``before_id`` is the smallest id of the previous page (its ``next_before``). A page reads
``limit + 1`` rows to tell whether another follows, so the last page says so itself
(``next_before`` None) instead of leaving the caller an empty page to fetch. Filtering on
``id < before_id`` with ``ORDER BY id DESC`` walks an index whatever the depth, where an
OFFSET would read every row it skips.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

RowT = TypeVar("RowT")


def keyset(
    query: Select[RowT], id_column: InstrumentedAttribute[int], *, limit: int, before_id: int | None
) -> Select[RowT]:
    """The query ordered newest first, below ``before_id``, one row longer than the page."""
    if limit < 1:
        raise ValueError(f"a page holds at least one row, not {limit}")
    query = query.order_by(id_column.desc()).limit(limit + 1)
    if before_id is not None:
        query = query.where(id_column < before_id)
    return query


def cut(
    rows: Sequence[RowT], limit: int, id_of: Callable[[RowT], int]
) -> tuple[list[RowT], int | None]:
    """The page (at most ``limit`` rows) and the ``before_id`` of the next one, or None."""
    if len(rows) > limit:
        page = list(rows[:limit])
        return page, id_of(page[-1])
    return list(rows), None


def read_page(
    session: Session,
    query: Select[RowT],
    id_column: InstrumentedAttribute[int],
    *,
    limit: int,
    before_id: int | None,
) -> tuple[list[RowT], int | None]:
    """One page of the query's entities (newest first) and the next page's ``before_id``."""
    rows = session.scalars(keyset(query, id_column, limit=limit, before_id=before_id)).all()
    return cut(rows, limit, lambda row: int(getattr(row, id_column.key)))
