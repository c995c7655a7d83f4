"""Freshness on every page: the engine's last tick, the metrics' age, hosts without data, the
store; a banner when any is stale or down. Stats are published by the LivePublisher with a
clock of the test's, as the engine would have at that time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from engine.record.live import LivePublisher
from engine.types import HostState, HostStatus
from webui.freshness import age, read_freshness

BOTH_BACKENDS = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
PAGES = ("/account", "/incidents", "/approvals", "/maintenance", "/playbooks")


def tick(
    sessions: sessionmaker[Session], at: float, states: dict[str, HostStatus], sample_age: float
) -> None:
    """The engine's publish at ``at``: the hosts' states, samples ``sample_age`` s old."""
    found = {
        host: HostState(
            host,
            status,
            None if status is HostStatus.UNKNOWN else 40.0,
            at - 60,
            "reason",
            None if status is HostStatus.UNKNOWN else at - sample_age,
        )
        for host, status in states.items()
    }
    LivePublisher(sessions, every=0.0, clock=lambda: at).publish(found, {}, 0.1)


@BOTH_BACKENDS
def test_a_fresh_engine_shows_its_ages_and_no_banner(
    viewer_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    tick(sessions, time.time(), {"web1": HostStatus.NORMAL, "web2": HostStatus.UNKNOWN}, 2.0)
    for url in PAGES:
        page = viewer_client.get(url)
        assert page.status_code == 200, url
        assert 'data-status-url="/status/bar"' in page.text, url
        assert "stale-banner" not in page.text, url
        assert "Engine: last tick 0 s ago" in page.text or "last tick 1 s ago" in page.text, url
        assert "Metrics: 2 s old" in page.text or "Metrics: 3 s old" in page.text, url
        assert "Prometheus: no data for 1 of 2 hosts" in page.text, url
        assert "Store: ok" in page.text, url
        assert "data-offline-marker" in page.text, url
    fragment = viewer_client.get("/status/bar")
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert "Store: ok" in fragment.text


@BOTH_BACKENDS
def test_an_old_tick_shows_the_banner(
    viewer_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    now = time.time()
    tick(sessions, now - 600, {"web1": HostStatus.NORMAL}, 1.0)  # 10 minutes: 60 intervals
    for url in ("/status/bar", *PAGES):
        text = viewer_client.get(url).text
        assert "stale-banner" in text, url
        assert "The engine&#39;s last tick was 10 min ago: it may be stopped." in text, url
        assert "Metrics are 10 min old" in text, url


def test_a_fresh_tick_with_old_metrics_shows_the_banner(
    viewer_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    tick(sessions, time.time(), {"web1": HostStatus.NORMAL}, 900.0)
    text = viewer_client.get("/status/bar").text
    assert "Metrics are 15 min old: states below are not current." in text
    assert "last tick was" not in text


def test_no_tick_and_no_data(viewer_client: FlaskClient, sessions: sessionmaker[Session]) -> None:
    text = viewer_client.get("/status/bar").text
    assert "The engine has not published a tick yet." in text
    assert "Prometheus: no hosts yet" in text
    tick(sessions, time.time(), {"web1": HostStatus.UNKNOWN}, 0.0)
    text = viewer_client.get("/status/bar").text
    assert "No host has metrics" in text  # Prometheus down: every host UNKNOWN, no samples
    assert "Prometheus: no data for 1 of 1 host" in text
    assert "last tick was" not in text


def test_signed_out_pages_show_no_bar(client: FlaskClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert "status-bar" not in page.text


@pytest.fixture
def store_down(app: Flask, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """The app's store swapped for one that cannot connect (SQLite in a missing folder)."""
    engine = create_engine(f"sqlite:///{tmp_path / 'missing' / 'autosre.db'}")
    real = app.extensions["autosre"]
    app.extensions["autosre"] = sessionmaker(engine)
    try:
        yield app.extensions["autosre"]
    finally:
        app.extensions["autosre"] = real
        engine.dispose()


def test_the_store_down_is_a_503_page_with_the_banner(
    viewer_client: FlaskClient, store_down: sessionmaker[Session]
) -> None:
    for url in ("/", "/account", "/status/bar", "/status/needs-you"):
        page = viewer_client.get(url)
        assert page.status_code == 503, url
        assert "stale-banner" in page.text, url
        assert "The store is not answering (OperationalError: " in page.text, url
        assert "Store: down" in page.text, url
        assert "SELECT" not in page.text, url  # no SQL, no parameters
    api = viewer_client.get("/api/v1/incidents", headers={"Authorization": "Bearer x"})
    assert api.status_code == 503
    assert api.json == {"error": "the store is not answering", "status": 503}
    found = read_freshness(store_down, interval=10.0, staleness=30.0, now=time.time())
    assert found.store_error is not None and found.store_error.startswith("OperationalError")
    assert found.problems[0].startswith("The store is not answering")


def test_ages_read_short() -> None:
    assert [age(s) for s in (0.4, 119, 120, 7199, 7200, 172_800)] == [
        "0 s",
        "119 s",
        "2 min",
        "120 min",
        "2.0 h",
        "2 d",
    ]
