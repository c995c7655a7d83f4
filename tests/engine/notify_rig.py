"""A notifier and its worker on a test's store, pointed at the fake receivers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.notify.deliver import DeliveryWorker
from engine.notify.outbox import OutboxNotifier
from engine.notify.secrets import channel_secrets
from engine.policy.notify_schema import Notifications
from engine.record.notifications import NotificationRecords
from engine.record.recorder import Recorder
from engine.redact import Redactor
from tests.fixtures.receivers import Receiver

SLACK_PATH = "/services/T0AUTOSRE/B0TEST/slackSECRETpath42x"
PD_KEY = "pdROUTINGkey0123456789abcdef"
HOOK_TOKEN = "hookBEARERtoken-77aa99"
GROUPS = {"web1": ("web",), "db1": ("db",)}


def policy(**routes: dict[str, Any]) -> Notifications:
    """Three channels (one per receiver), with optional routes per channel name."""
    channels = {
        "team": {"type": "slack", "url_env": "T_SLACK_URL"},
        "oncall": {"type": "pagerduty", "url_env": "T_PD_URL", "key_env": "T_PD_KEY"},
        "hook": {"type": "webhook", "url_env": "T_HOOK_URL", "key_env": "T_HOOK_TOKEN"},
    }
    for name, route in routes.items():
        channels[name]["route"] = route
    delivery = {"timeout": "1s", "backoff": "1s", "max_backoff": "4s", "poll": "0.05s"}
    return Notifications.model_validate({"channels": channels, "delivery": delivery})


def environment(receivers: Mapping[str, Receiver]) -> dict[str, str]:
    """The variables the channels name, pointing at the receivers."""
    return {
        "T_SLACK_URL": receivers["slack"].url + SLACK_PATH,
        "T_PD_URL": receivers["pagerduty"].url,
        "T_PD_KEY": PD_KEY,
        "T_HOOK_URL": receivers["webhook"].url + "/autosre",
        "T_HOOK_TOKEN": HOOK_TOKEN,
    }


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_900_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def build(
    recorder: Recorder,
    receivers: Mapping[str, Receiver],
    notifications: Notifications,
    clock: Clock,
) -> tuple[OutboxNotifier, DeliveryWorker]:
    """A notifier whose worker is not started: tests call ``run_once`` themselves."""
    secrets = channel_secrets(notifications, environment(receivers))
    records = NotificationRecords(recorder.journal)
    redactor = Redactor().with_secrets(secrets.values())
    worker = DeliveryWorker(
        records=records,
        notifications=notifications,
        secrets=secrets,
        redactor=redactor,
        clock=clock,
    )
    notifier = OutboxNotifier(
        records=records,
        notifications=notifications,
        groups=GROUPS,
        redactor=redactor,
        worker=worker,
        clock=clock,
    )
    return notifier, worker
