"""The store's JSON columns are written by orjson where it means the same as json.dumps, and
by json.dumps otherwise: what reads them back (SQLite, PostgreSQL, json.loads) sees the same
values as before, hostile text included."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON, Column, Integer, MetaData, Table, insert, select, text

from engine.store import open_engine
from engine.store.json_codec import dumps
from tests.fixtures.postgres import own_database

# What the store's JSON columns hold: decision payloads, artifacts' summaries, samples.
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_values)
def test_any_value_reads_back_as_json_dumps_wrote_it(value: object) -> None:
    assert json.loads(dumps(value)) == json.loads(json.dumps(value))


class Level(enum.IntEnum):
    LOW = 1


class Kind(enum.StrEnum):
    CPU = "high_cpu"


@dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [
        2**70,  # beyond 64 bits: orjson refuses, json writes it
        -(2**64),
        {1: "a", 2.5: "b", False: "c", None: "d"},  # keys json turns into text
        {"level": Level.LOW, "kind": Kind.CPU, Kind.CPU: [Level.LOW]},
        (1, (2, 3)),
        "\x1b]52;c;ZXZpbA==\x07\x1b[2J\u202e\ud7ff\x00",  # terminal escapes, controls
        {"nested": [[[[[["deep"]]]]]]},
    ],
    ids=["big int", "big negative", "non-text keys", "enums", "tuples", "escapes", "nested"],
)
def test_values_orjson_would_write_otherwise_read_back_the_same(value: object) -> None:
    assert json.loads(dumps(value)) == json.loads(json.dumps(value))


def test_escapes_stay_escaped_in_the_text() -> None:
    # No raw control character reaches a column (or a terminal that prints it).
    written = dumps({"reason": "\x1b[31mred\x07"})
    assert "\x1b" not in written and "\x07" not in written
    assert json.loads(written) == {"reason": "\x1b[31mred\x07"}


@pytest.mark.parametrize("value", [datetime(2026, 12, 1, tzinfo=UTC), Point(1), {1, 2}, b"x"])
def test_what_json_refuses_is_still_refused(value: object) -> None:
    with pytest.raises(TypeError):
        json.dumps(value)
    with pytest.raises(TypeError):
        dumps({"v": value})


def test_a_nan_is_written_as_null_which_every_reader_accepts() -> None:
    assert json.loads(dumps([math.nan, math.inf, 1.5])) == [None, None, 1.5]


_ROWS: list[Any] = [
    [[1764633600.123, 97.25], [1764633615.123, 0.0]],
    {"vars": {"service": "nginx", "note": "\x1b[2J\u00e9\u4e2d"}, "keys": {1: 2}},
    {"big": 2**70, "level": Level.LOW},
]


def _round_trip(url: str) -> list[Any]:
    engine = open_engine(url)
    table = Table(
        "codec_check", MetaData(), Column("id", Integer, primary_key=True), Column("v", JSON)
    )
    try:
        table.create(engine)
        with engine.begin() as connection:
            connection.execute(insert(table), [{"id": n, "v": v} for n, v in enumerate(_ROWS)])
            raw = connection.execute(text("SELECT v FROM codec_check ORDER BY id")).scalars().all()
        with engine.connect() as connection:
            read = connection.execute(select(table.c.v).order_by(table.c.id)).scalars().all()
    finally:
        engine.dispose()
    # SQLite hands back the column's text: JSON any reader parses, with no raw escape in it
    # (psycopg parses PostgreSQL's json itself, which fails on anything else).
    for stored in raw:
        if isinstance(stored, str):
            assert "\x1b" not in stored
            json.loads(stored)
    return list(read)


def _expected() -> list[Any]:
    return [json.loads(json.dumps(row)) for row in _ROWS]


def test_sqlite_reads_back_what_json_dumps_would_have_written(tmp_path: Path) -> None:
    assert _round_trip(f"sqlite:///{tmp_path / 'codec.db'}") == _expected()


def test_postgresql_reads_back_what_json_dumps_would_have_written(postgres_server: None) -> None:
    with own_database(None, "codec") as url:
        assert _round_trip(url) == _expected()
