"""Every time a page shows is server-rendered in a <time datetime> in UTC (ISO 8601 with a
Z), its text labelled UTC, so it reads correctly without JavaScript (times.js localises it)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.settings import Settings, load_settings
from tests.webui.seed import seed
from webui.times import utc_iso

ROOT = Path(__file__).resolve().parents[2]
TIME = re.compile(r'<time datetime="([^"]+)"[^>]*>([^<]*)</time>')
UTC_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The lab inventory and policy, so that a maintenance window can be started."""
    return load_settings(
        {
            "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
            "AUTOSRE_DATABASE_URL": database_url,
            "AUTOSRE_INVENTORY": str(ROOT / "inventory" / "lab.yml"),
            "AUTOSRE_POLICY": str(ROOT / "policies" / "lab.yaml"),
        }
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05Z"),  # naive: UTC
        (
            datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-02T03:04:05Z",
        ),
        ("2026-01-02T03:04:05+00:00", "2026-01-02T03:04:05Z"),
        ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05Z"),
        ("2026-01-02T03:04:05", "2026-01-02T03:04:05Z"),
        (None, None),
        ("", None),
        ("not a time", "not a time"),
    ],
)
def test_utc_iso(value: datetime | str | None, expected: str | None) -> None:
    assert utc_iso(value) == expected


def test_every_page_emits_utc_times_labelled_utc(
    app: Flask,
    sessions: sessionmaker[Session],
    signed_in: Callable[..., FlaskClient],
    csrf_token: Callable[[FlaskClient], str],
) -> None:
    seed(sessions)
    admin = signed_in("admin", "ada")
    values = {"scope": "host", "target": "web2", "duration": "2h", "reason": "kernel"}
    started = admin.post("/maintenance/start", data={"csrf_token": csrf_token(admin), **values})
    assert started.status_code == 302
    pages = [
        "/",
        "/incidents",
        "/incidents/1",
        "/playbooks",
        "/playbooks/runs/r1",
        "/approvals",
        "/maintenance",
        "/users",
        "/account",
    ]
    seen = 0
    for path in pages:
        response = admin.get(path)
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        times = TIME.findall(html)
        assert times, f"{path}: no <time> element"
        for stamp, text in times:
            assert UTC_ISO.match(stamp), f"{path}: {stamp!r} is not UTC ISO with a Z"
            assert text.endswith(" UTC"), f"{path}: {text!r} is not labelled UTC"
            shown = text.removesuffix(" UTC")  # a date and time, or the time of day
            assert shown in stamp.replace("T", " "), f"{path}: {text!r} is not {stamp!r}"
        seen += len(times)
    assert seen > 20
    assert "times.js" in admin.get("/").get_data(as_text=True)
