"""An incident a person resolves (web UI, API, CLI) tells the channels its trigger went to,
on the same PagerDuty dedup key, through the outbox an engine's worker delivers."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.components import Components
from engine.notify.person_resolve import PersonResolveNotices
from engine.record.notifications import NotificationRecords
from engine.record.recorder import Recorder
from engine.redact import Redactor
from engine.settings import load_settings
from tests.engine.notify_rig import GROUPS, PD_KEY, Clock, build, policy
from tests.fixtures.receivers import Receiver


def _open(recorder: Recorder, host: str) -> int:
    return recorder.incidents.open(host, "high_cpu", 97.0, "cpu 97% for 10s", at=1.0, since=1.0)


def test_a_person_resolving_a_paged_incident_resolves_the_page(
    recorder: Recorder, receivers: dict[str, Receiver]
) -> None:
    clock = Clock()
    notifications = policy(team={"kinds": ["disk_full"]})  # slack never got the trigger
    notifier, worker = build(recorder, receivers, notifications, clock)
    recorder.handling.on_resolved = PersonResolveNotices(
        records=NotificationRecords(recorder.journal),
        notifications=notifications,
        groups=GROUPS,
        redactor=Redactor(),
    )
    paged = _open(recorder, "web1")
    notifier.escalate(host="web1", incident_id=paged, reason="ladder done", status="escalated")
    assert worker.run_once() == 2
    quiet = _open(recorder, "db1")  # never paged: closing it pages nobody

    recorder.handling.resolve(paged, by="alice", at=clock.now, note="disk was full, cleaned")
    recorder.handling.resolve(quiet, by="alice", at=clock.now, note="false alarm")
    assert worker.run_once() == 2
    resolve = receivers["pagerduty"].received[-1][1]
    assert resolve == {
        "routing_key": PD_KEY,
        "event_action": "resolve",
        "dedup_key": f"autosre-{paged}",
    }
    hook = receivers["webhook"].received[-1][1]
    assert hook["event"] == "resolve" and hook["incident_id"] == paged
    assert hook["summary"] == "resolved by alice: disk was full, cleaned"
    assert hook["status"] == "resolved"
    assert receivers["slack"].received == []
    assert worker.run_once() == 0  # nothing more: the quiet incident queued nothing


def test_a_policy_that_cannot_load_does_not_undo_a_persons_close(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sessions: sessionmaker[Session]
) -> None:
    # The composition root builds the notices at the first close; a policy that cannot be
    # read then must not turn a committed close into an error: the log says what is missing.
    env = {"AUTOSRE_POLICY": str(tmp_path / "missing.yaml"), "AUTOSRE_DATA_DIR": str(tmp_path)}
    components = Components(load_settings(env), sessions=sessions)
    incident = _open(components.recorder, "web1")
    marks = components.recorder.handling.resolve(incident, by="bob", at=5.0, note="done")
    assert marks.status == "resolved" and marks.resolved_by == "bob"
    assert f"incident {incident} was resolved, but no resolve notice" in caplog.text
