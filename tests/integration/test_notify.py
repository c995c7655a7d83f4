"""People get paged, end to end: the engine's own escalation, through the wiring that
`autosre run` uses, reaches a fake Slack and PagerDuty on 127.0.0.1, the close resolves the
PagerDuty incident, and a failing receiver shows on the incident page, the dashboard and
/metrics, with no secret in any of them or in the logs."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import yaml

from autosre.wiring import build_engine, load_components
from engine.incident.life import IncidentStatus, Track
from engine.incident.steps import Close, Escalate
from engine.notify.outbox import OutboxNotifier
from engine.plan.rules import RulesPlanner
from engine.settings import load_settings
from tests.engine.notify_rig import HOOK_TOKEN, PD_KEY, SLACK_PATH, environment
from tests.engine.test_policy_file import PLAYBOOKS, lab_data
from tests.fixtures.receivers import Receiver, wait_for
from tests.fixtures.scripted import ScriptedSource
from tests.fixtures.store import migrated_sqlite
from tests.integration.harness import sign_in
from webui import create_app

pytestmark = pytest.mark.integration

SECRETS = (SLACK_PATH.rsplit("/", 1)[-1], PD_KEY, HOOK_TOKEN)
INVENTORY = """
all:
  children:
    web:
      hosts:
        web1: {ansible_connection: local}
    db:
      hosts:
        db1: {ansible_connection: local}
"""


def test_an_escalation_pages_slack_and_pagerduty_and_a_failure_shows_everywhere(
    tmp_path: Path,
    receivers: dict[str, Receiver],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = lab_data()
    data["notifications"] = {
        "channels": {
            "team": {"type": "slack", "url_env": "T_SLACK_URL", "route": {"groups": ["web"]}},
            "oncall": {"type": "pagerduty", "url_env": "T_PD_URL", "key_env": "T_PD_KEY"},
        },
        "delivery": {"timeout": "1s", "backoff": "30s", "poll": "0.1s"},
    }
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    migrated_sqlite(tmp_path / "data" / "autosre.db")
    for name, value in environment(receivers).items():
        monkeypatch.setenv(name, value)
    settings = load_settings(
        {
            "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
            "AUTOSRE_POLICY": str(tmp_path / "policy.yaml"),
            "AUTOSRE_INVENTORY": str(tmp_path / "inventory.yml"),
            "AUTOSRE_PLAYBOOK_DIR": str(PLAYBOOKS),
        }
    )
    caplog.set_level(logging.DEBUG)
    components = load_components(settings)
    source = ScriptedSource(lambda _host, _t: 20.0, ("web1", "db1"))
    engine = build_engine(components, metrics=source, planner=RulesPlanner())
    notifier = engine.notifier
    assert isinstance(notifier, OutboxNotifier) and notifier.worker is not None
    slack, pagerduty = receivers["slack"], receivers["pagerduty"]
    recorder = components.recorder
    try:
        now = time.time()
        web = recorder.incidents.open("web1", "high_cpu", 97.0, "cpu 97%", at=now, since=now)
        track = Track(web, "web1", kind="high_cpu")
        engine.tracks["web1"] = track
        engine.steps.run(track, [Escalate("ladder exhausted", IncidentStatus.FAILED)], now)
        assert wait_for(lambda: slack.received and pagerduty.received)
        assert f"incident {web} on web1" in slack.received[0][1]["text"]
        assert pagerduty.received[0][1]["dedup_key"] == f"autosre-{web}"
        closing = [Close(IncidentStatus.FAILED, "recovered", "host recovered", 12.0)]
        engine.steps.run(track, closing, now + 5)
        assert wait_for(lambda: len(pagerduty.received) == 2)
        resolve = pagerduty.received[1][1]
        assert (resolve["event_action"], resolve["dedup_key"]) == ("resolve", f"autosre-{web}")

        # PagerDuty now fails (echoing the request, routing key included); db1 is not in
        # Slack's route.
        pagerduty.mode = "echo"
        db = recorder.incidents.open("db1", "high_cpu", 99.0, "cpu 99%", at=now, since=now)
        db_track = Track(db, "db1", kind="high_cpu")
        engine.tracks["db1"] = db_track
        engine.steps.run(db_track, [Escalate("approval rejected")], now + 6)
        assert wait_for(lambda: pagerduty.hits == 3)
        assert len(slack.received) == 2  # web1's trigger and resolve only

        app = create_app({"TESTING": True}, settings=settings)
        viewer = sign_in(app, "vera", "viewer")
        assert wait_for(lambda: "answered 500" in viewer.get(f"/incidents/{db}").text)
        page = viewer.get(f"/incidents/{db}").text
        assert "Notifications" in page and "oncall" in page and "pending" in page
        sent_page = viewer.get(f"/incidents/{web}").text
        assert sent_page.count("notification-sent") == 4
        dashboard = viewer.get("/").text
        assert 'id="notifications-stat"' in dashboard and "1 pending" in dashboard
        metrics = app.test_client().get("/metrics").text
        assert 'autosre_notifications_pending{channel="oncall"} 1.0' in metrics
        assert 'autosre_notifications_total{channel="team",status="sent"} 2.0' in metrics
        shown = page + sent_page + dashboard + metrics + caplog.text
        assert not [s for s in SECRETS if s in shown]
    finally:
        engine.shutdown()
        components.close()
    assert notifier.worker._thread is None  # stopped with the engine
