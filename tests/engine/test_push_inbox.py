"""Pushed alerts on the engine's side: joined, linked, unconfirmed, hinted, never twice.

An engine on a temporary store with scripted metrics (tests/engine/test_loop.py's Lab);
the alerts are stored as the receiver stores them, then the engine's ticks take them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.loop import MIN_POLL
from engine.read.alert_events import alert_events
from engine.record.alert_events import AlertEventRecords, Received
from tests.engine.test_loop import Lab
from tests.fixtures.reads import incident_detail

STARTED = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    made = Lab(tmp_path)
    yield made
    for engine in made.engines:
        engine.shutdown()


def push(lab: Lab, host: str, *, status: str = "firing", fingerprint: str = "f00d") -> None:
    """Store one alert for the host's high_cpu as the receiver would."""
    alert = Received(
        fingerprint=fingerprint,
        status=status,
        alertname="HighCPU",
        starts_at=STARTED,
        ends_at=None,
        labels={"alertname": "HighCPU", "instance": f"{host}:9100"},
        host=host,
        kind="high_cpu",
        reason=None,
    )
    AlertEventRecords(lab.recorder.journal).receive([alert], lab.clock(), per_minute=600)


def notes(lab: Lab, incident_id: int) -> list[str]:
    detail = incident_detail(lab.sessions, incident_id)
    assert detail is not None
    return [entry["message"] for entry in detail["timeline"] if entry["kind"] == "alert"]


def test_an_alert_before_the_data_polls_at_once_then_links_the_engines_incident(
    lab: Lab,
) -> None:
    engine = lab.engine()
    push(lab, "web1")
    report = engine.tick()
    # The engine polls again right away, and opens nothing on the alert's word.
    assert report.due == report.at and report.poll == MIN_POLL
    assert lab.incidents("web1") == []
    assert [e.outcome for e in alert_events(lab.sessions)] == ["pending"]
    push(lab, "web1")  # Alertmanager re-sends it (group_interval): the same event
    assert engine.tick().due is None
    lab.values["web1"] = 95.0
    engine.tick()
    incidents = lab.incidents("web1")
    assert len(incidents) == 1
    (event,) = alert_events(lab.sessions)
    assert (event.outcome, event.incident_id, event.received) == ("linked", incidents[0]["id"], 2)
    for _ in range(3):
        push(lab, "web1")
        engine.tick()
    assert engine.wait_idle(60)
    noted = notes(lab, incidents[0]["id"])
    assert len(noted) == 1 and noted[0].startswith("Alertmanager: HighCPU firing (confirmed")
    assert len(lab.incidents("web1")) == 1


def test_an_alert_on_an_open_incident_joins_it_and_resolved_is_only_a_hint(lab: Lab) -> None:
    engine = lab.engine()
    lab.values["web2"] = 97.0
    engine.tick()
    (incident,) = lab.incidents("web2")
    push(lab, "web2")
    engine.tick()
    assert notes(lab, incident["id"]) == ["Alertmanager: HighCPU firing"]
    assert engine.wait_idle(60)
    push(lab, "web2", status="resolved")
    report = engine.tick()
    assert report.due == report.at  # verification gets fresh data at once
    assert notes(lab, incident["id"])[-1] == (
        "Alertmanager says HighCPU resolved; verification decides"
    )
    # Still high on the engine's own data: the resolved alert closed nothing.
    assert lab.status("web2") != "resolved"
    assert [e.outcome for e in alert_events(lab.sessions)] == ["hinted", "joined"]
    lab.values["web2"] = 10.0
    lab.tick_until(
        engine, "resolved on the engine's data", lambda: lab.status("web2") == "resolved"
    )
    assert len(lab.incidents("web2")) == 1


def test_an_alert_the_engines_data_never_confirms_is_recorded_and_nothing_runs(
    lab: Lab,
) -> None:
    engine = lab.engine()
    push(lab, "web3")
    engine.tick()
    lab.clock.advance(lab.policy.alerts.confirm_within + 1)
    engine.tick()
    (event,) = alert_events(lab.sessions)
    assert event.outcome == "unconfirmed"
    assert event.reason is not None and "not confirmed by the engine's metrics" in event.reason
    assert lab.incidents("web3") == []
    assert not engine.busy()
    lab.values["web3"] = 99.0  # later the engine's own data shows a problem: its own incident
    engine.tick()
    assert len(lab.incidents("web3")) == 1
    assert notes(lab, lab.incidents("web3")[0]["id"]) == []


def test_an_alert_resolved_before_the_data_showed_it_is_unconfirmed(lab: Lab) -> None:
    engine = lab.engine()
    push(lab, "web1")
    engine.tick()
    push(lab, "web1", status="resolved")
    engine.tick()
    outcomes = {e.status: (e.outcome, e.reason) for e in alert_events(lab.sessions)}
    assert outcomes["firing"][0] == "unconfirmed"
    assert outcomes["resolved"][0] == "no_incident"
    assert lab.incidents("web1") == []


def test_two_engines_never_note_one_alert_twice(lab: Lab) -> None:
    first, second = lab.engine(), lab.engine()
    lab.values["web1"] = 95.0
    first.tick()
    (incident,) = lab.incidents("web1")
    second.tracks.update(first.tracks)  # as a second replica resuming the same incident
    push(lab, "web1")
    events = first.inbox.records.open_events(limit=10)
    assert first.inbox.records.move(events[0], "joined", lab.clock(), note="one")
    assert not second.inbox.records.move(events[0], "joined", lab.clock(), note="two")
    assert notes(lab, incident["id"]) == []  # incident_id was not given: not on its timeline
    assert [e.outcome for e in alert_events(lab.sessions)] == ["joined"]
