"""The engine's heartbeat in /metrics: a real engine ticks over the web UI's own store,
stops, and /metrics shows timestamps that no longer move and ages that grow.

Also: a tick whose metrics query fails moves the tick's timestamp but not the metrics
read's; replicas get a series each; a failed write is counted once the store answers.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from engine.loop import Engine
from engine.plan.rules import RulesPlanner
from engine.record.live import LivePublisher
from engine.types import MetricsBatch
from tests.fixtures.scripted import ScriptedSource
from tests.webui.test_health import Samples, parse, value
from webui.db import get_components
from webui.health import bp

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

TICK = "autosre_engine_last_tick_timestamp_seconds"
READ = "autosre_engine_last_metrics_read_success_timestamp_seconds"
WRITE = "autosre_engine_last_store_write_success_timestamp_seconds"
AGES = (
    "autosre_engine_last_tick_age_seconds",
    "autosre_engine_last_metrics_read_success_age_seconds",
    "autosre_engine_last_store_write_success_age_seconds",
)


@pytest.fixture(autouse=True)
def health(app: Flask) -> None:
    if "health" not in app.blueprints:
        app.register_blueprint(bp)


class Flaky(ScriptedSource):
    """Scripted samples; the metrics server "down" while ``down`` is set."""

    down = False

    def fetch(self, now: float) -> MetricsBatch:
        if self.down:
            return MetricsBatch(fetched_at=now, windows={}, error="connection refused")
        return super().fetch(now)


def engine_on(app: Flask, source: ScriptedSource) -> Engine:
    """A real engine on the app's components (its store, policy and inventory)."""
    with app.app_context():
        parts = get_components()
    return Engine(
        parts,
        metrics=source,
        planner=RulesPlanner(),
        publisher=LivePublisher(parts.sessions, every=0.0),
    )


def scrape(client: FlaskClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    return parse(response.get_data(as_text=True))


def test_a_stopped_engine_shows_frozen_timestamps_and_growing_ages(
    app: Flask, client: FlaskClient
) -> None:
    source = Flaky(lambda _host, _t: 20.0, ("localhost",))
    engine = engine_on(app, source)
    try:
        before = time.time()
        for _ in range(2):
            engine.tick()
        source.down = True  # Prometheus goes away: ticks go on, reads do not
        engine.tick()
    finally:
        engine.shutdown(timeout=5)
    first = scrape(client)
    assert before <= value(first, READ) < value(first, TICK) <= value(first, WRITE)
    assert value(first, "autosre_engine_store_write_failures_total") == 0
    assert value(first, "autosre_engine_tick_interval_seconds") == 10.0
    time.sleep(0.3)
    second = scrape(client)
    for name in (TICK, READ, WRITE):
        assert value(second, name) == value(first, name), name  # stopped: no movement
    for name in AGES:
        assert value(second, name) >= value(first, name) + 0.25, name  # and it shows


def test_no_heartbeat_series_before_the_first_tick(client: FlaskClient) -> None:
    samples = scrape(client)
    names = {name for name, _ in samples}
    assert not names & {TICK, READ, WRITE, *AGES}
    assert value(samples, "autosre_engine_store_write_failures_total") == 0


def test_each_replica_beats_on_its_own_and_failed_writes_are_counted(
    client: FlaskClient, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """Replica a read its metrics last at 120 and b at 200; a's one failed write (its store
    gone for a moment) is counted once its next write commits."""
    clock = {"a": 100.0, "b": 200.0}
    a = LivePublisher(sessions, every=0.0, replica="a", clock=lambda: clock["a"])
    b = LivePublisher(sessions, every=0.0, replica="b", clock=lambda: clock["b"])
    a.publish({}, {}, 0.1)
    b.publish({}, {}, 0.1)
    clock["a"] = 120.0
    a.sessions = sessionmaker(create_engine(f"sqlite:///{tmp_path}/no/such/dir/x.db"))
    a.publish({}, {}, 0.1)  # fails, and the tick goes on
    assert a.write_failures == 1
    a.sessions = sessions
    clock["a"] = 150.0
    a.publish({}, {}, 0.1, read_ok=False)
    samples = scrape(client)
    assert value(samples, READ) == 200.0  # the latest of any replica's
    assert value(samples, TICK) == 200.0
    assert value(samples, "autosre_engine_store_write_failures_total") == 1
    read = "autosre_replica_last_metrics_read_success_timestamp_seconds"
    assert value(samples, read, replica="a") == 120.0  # read then, written at 150
    assert value(samples, read, replica="b") == 200.0
    tick = "autosre_replica_last_tick_timestamp_seconds"
    assert value(samples, tick, replica="a") == 150.0


def test_a_hostile_replica_name_cannot_forge_a_series(
    client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    """A replica id is text from a setting: quoted and escaped, it stays one label value."""
    name = 'x"} 1\nautosre_store_up 0\n#'
    LivePublisher(sessions, every=0.0, replica=name, clock=lambda: 42.0).publish({}, {}, 0.1)
    text = client.get("/metrics").get_data(as_text=True)
    samples = parse(text)
    assert value(samples, "autosre_store_up") == 1  # not the forged 0
    assert value(samples, TICK) == 42.0
    assert value(samples, "autosre_replica_last_tick_timestamp_seconds", replica=name) == 42.0
