"""The outbox against fake receivers that speak Slack's, PagerDuty's and a webhook's
protocols: the payloads each gets, retries until a receiver answers (across a restart),
hostile receivers, and no secret in the store or the audit log."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import select

from engine.record.recorder import Recorder
from engine.store.models import Event
from engine.store.outbox import NotificationRow
from tests.engine.notify_rig import HOOK_TOKEN, PD_KEY, SLACK_PATH, Clock, build, policy
from tests.fixtures.receivers import Receiver
from webui.health import StoreCollector

SECRETS = (SLACK_PATH.rsplit("/", 1)[-1], PD_KEY, HOOK_TOKEN)


def _incident(recorder: Recorder, host: str = "web1", kind: str = "high_cpu") -> int:
    return recorder.incidents.open(host, kind, 97.0, "cpu 97% for 10s", at=1.0, since=1.0)


def _rows(recorder: Recorder) -> list[NotificationRow]:
    with recorder.sessions() as session:
        return list(session.scalars(select(NotificationRow).order_by(NotificationRow.id)))


def _everything_stored(recorder: Recorder, audit_path: Path) -> str:
    """Every notification row and event as text, and the audit log."""
    with recorder.sessions() as session:
        rows = [
            repr((r.payload, r.last_error, r.channel))
            for r in session.scalars(select(NotificationRow))
        ]
        rows += [repr((e.message, e.data)) for e in session.scalars(select(Event))]
    audit = audit_path.read_text() if audit_path.exists() else ""
    return "\n".join(rows) + audit


def test_each_channel_gets_its_protocol_and_pagerduty_resolves_on_the_same_key(
    recorder: Recorder, receivers: dict[str, Receiver], audit_path: Path
) -> None:
    clock = Clock()
    notifier, worker = build(recorder, receivers, policy(), clock)
    incident = _incident(recorder)
    notifier.escalate(host="web1", incident_id=incident, reason="ladder done", status="failed")
    assert worker.run_once() == 3
    ((path, slack, _),) = receivers["slack"].received
    assert path == SLACK_PATH
    assert f"incident {incident} on web1" in slack["text"] and "ladder done" in slack["text"]
    assert slack["blocks"][0]["type"] == "section"
    ((path, trigger, _),) = receivers["pagerduty"].received
    assert path == "/v2/enqueue"
    assert trigger["routing_key"] == PD_KEY and trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == f"autosre-{incident}"
    assert trigger["payload"]["source"] == "web1"
    assert trigger["payload"]["severity"] == "critical"  # a failed remediation
    assert trigger["payload"]["custom_details"]["reason"] == "ladder done"
    ((path, hook, headers),) = receivers["webhook"].received
    assert path == "/autosre" and headers["Authorization"] == f"Bearer {HOOK_TOKEN}"
    assert hook["event"] == "trigger" and hook["host"] == "web1" and hook["groups"] == ["web"]

    notifier.resolved(host="web1", incident_id=incident, reason="recovered", status="failed")
    assert worker.run_once() == 3
    resolve = receivers["pagerduty"].received[-1][1]
    assert resolve == {
        "routing_key": PD_KEY,
        "event_action": "resolve",
        "dedup_key": f"autosre-{incident}",
    }
    assert "closed" in receivers["slack"].received[-1][1]["text"]
    assert {r.status for r in _rows(recorder)} == {"sent"}
    # Queued twice, sent once: enqueueing is idempotent.
    notifier.escalate(host="web1", incident_id=incident, reason="again")
    assert worker.run_once() == 0
    stored = _everything_stored(recorder, audit_path)
    assert not [s for s in SECRETS if s in stored]


def test_a_resolve_goes_only_where_a_trigger_was_queued(
    recorder: Recorder, receivers: dict[str, Receiver]
) -> None:
    clock = Clock()
    routes = {"team": {"kinds": ["disk_full"]}, "oncall": {"groups": ["db"]}, "hook": {}}
    notifier, worker = build(recorder, receivers, policy(**routes), clock)
    web = _incident(recorder, "web1", "high_cpu")
    notifier.escalate(host="web1", incident_id=web, reason="stuck", kind="high_cpu")
    notifier.resolved(
        host="web1", incident_id=web, reason="ok", kind="high_cpu", status="escalated"
    )
    quiet = _incident(recorder, "db1", "high_cpu")
    notifier.resolved(host="db1", incident_id=quiet, reason="ok", status="resolved")
    worker.run_once()
    assert receivers["slack"].received == []  # kind not routed there
    assert receivers["pagerduty"].received == []  # group not routed there
    assert [b["event"] for _, b, _ in receivers["webhook"].received] == ["trigger", "resolve"]
    assert {(r.incident_id, r.channel) for r in _rows(recorder)} == {(web, "hook")}


def test_a_receiver_that_is_down_is_retried_until_it_answers_even_after_a_restart(
    recorder: Recorder, receivers: dict[str, Receiver]
) -> None:
    clock = Clock()
    only_pd = policy(team={"events": ["resolve"]}, hook={"events": ["resolve"]})
    notifier, worker = build(recorder, receivers, only_pd, clock)
    pd = receivers["pagerduty"]
    pd.mode = "down"
    incident = _incident(recorder)
    notifier.escalate(host="web1", incident_id=incident, reason="stuck")
    notifier.resolved(host="web1", incident_id=incident, reason="ok", status="escalated")
    assert worker.run_once() == 1  # the resolve waits behind its trigger
    (trigger, resolve) = _rows(recorder)
    assert (trigger.status, trigger.attempts) == ("pending", 1)
    assert "503" in (trigger.last_error or "") and resolve.attempts == 0
    assert worker.run_once() == 0  # backing off: not due yet
    clock.now += 1.0
    assert worker.run_once() == 1
    clock.now += 2.0
    assert worker.run_once() == 1
    assert _rows(recorder)[0].attempts == 3
    registry = CollectorRegistry()
    registry.register(StoreCollector(recorder.sessions, clock=clock))
    scraped = generate_latest(registry).decode()
    assert 'autosre_notifications_pending{channel="oncall"} 2.0' in scraped
    assert 'autosre_notification_delivery_failures_total{channel="oncall"} 3.0' in scraped

    # The engine stops; a new one on the same store delivers once the receiver is back.
    worker.stop()
    pd.mode = "ok"
    clock.now += 60.0
    _, restarted = build(recorder, receivers, only_pd, clock)
    assert restarted.run_once() == 2
    assert [b["event_action"] for _, b, _ in pd.received] == ["trigger", "resolve"]
    assert [(r.status, r.attempts) for r in _rows(recorder)] == [("sent", 4), ("sent", 1)]
    registry = CollectorRegistry()
    registry.register(StoreCollector(recorder.sessions, clock=clock))
    scraped = generate_latest(registry).decode()
    assert 'autosre_notifications_total{channel="oncall",status="sent"} 2.0' in scraped
    assert 'autosre_notifications_pending{channel="oncall"} 0.0' in scraped


def test_hostile_receivers_cannot_stall_redirect_or_leak(
    recorder: Recorder, receivers: dict[str, Receiver], audit_path: Path
) -> None:
    clock = Clock()
    notifier, worker = build(recorder, receivers, policy(), clock)
    elsewhere = Receiver("webhook")
    try:
        receivers["slack"].mode = "redirect"
        receivers["slack"].redirect_to = elsewhere.url + "/stolen"
        receivers["pagerduty"].mode = "echo"  # answers 500 with the routing key in it
        receivers["webhook"].mode = "drip"
        incident = _incident(recorder)
        notifier.escalate(host="web1", incident_id=incident, reason="stuck")
        started = time.monotonic()
        assert worker.run_once() == 3
        assert time.monotonic() - started < 3 * 1.0 + 2.0  # each held to its 1 s deadline
        assert elsewhere.hits == 0  # the redirect was not followed
        rows = {r.channel: r for r in _rows(recorder)}
        assert rows["team"].status == "failed" and "redirect" in (rows["team"].last_error or "")
        assert rows["oncall"].status == "pending" and "500" in (rows["oncall"].last_error or "")
        assert rows["hook"].status == "pending" and "within 1s" in (rows["hook"].last_error or "")
        stored = _everything_stored(recorder, audit_path)
        assert not [s for s in SECRETS if s in stored]

        receivers["pagerduty"].mode = "slow"
        receivers["pagerduty"].delay = 5.0
        receivers["webhook"].mode = "huge"
        clock.now += 10
        started = time.monotonic()
        assert worker.run_once() == 2
        assert time.monotonic() - started < 2 * 1.0 + 2.0
        rows = {r.channel: r for r in _rows(recorder)}
        assert rows["oncall"].status == "pending"  # too slow: retried later
        assert rows["hook"].status == "sent"  # a 2xx; only the first 64 KiB were read
    finally:
        elsewhere.close()
