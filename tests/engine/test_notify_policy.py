"""The policy's notifications section, routing, backoff and the channels' secrets: an
invalid section is a policy error naming the field; a secret never shows in an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.errors import PolicyError, SettingsError
from engine.notify.deliver import backoff_delay
from engine.notify.notice import Notice
from engine.notify.route import channels_for
from engine.notify.secrets import channel_secrets
from engine.policy.load import load_policy
from engine.policy.notify_schema import Notifications
from tests.engine.test_policy_file import PLAYBOOKS, lab_data, write_policy


def _load(tmp_path: Path, section: Any) -> Notifications:
    data = lab_data()
    data["notifications"] = section
    return load_policy(write_policy(tmp_path, data), playbook_dir=PLAYBOOKS).notifications


def test_no_section_means_no_channels(tmp_path: Path) -> None:
    data = lab_data()
    data.pop("notifications", None)
    policy = load_policy(write_policy(tmp_path, data), playbook_dir=PLAYBOOKS)
    assert policy.notifications.channels == {}


@pytest.mark.parametrize(
    ("section", "field", "reason"),
    [
        ({"channels": {"a": {"type": "email"}}}, "notifications.channels.a.type", "slack"),
        ({"channels": {"a": {"type": "slack"}}}, "notifications.channels.a", "url_env"),
        ({"channels": {"a": {"type": "pagerduty"}}}, "notifications.channels.a", "key_env"),
        # A secret written into the policy itself is refused: only variable names belong there.
        (
            {"channels": {"a": {"type": "slack", "url": "https://hooks.slack.com/services/X"}}},
            "notifications.channels.a.url",
            "",
        ),
        (
            {"channels": {"a": {"type": "slack", "url_env": "X; rm -rf /"}}},
            "notifications.channels.a.url_env",
            "variable name",
        ),
        ({"channels": {"A B": {"type": "slack", "url_env": "X"}}}, "notifications.channels", ""),
        (
            {"channels": {"a": {"type": "slack", "url_env": "X", "route": {"kinds": ["cpu"]}}}},
            "notifications.channels.a.route.kinds",
            "unknown signal kind",
        ),
        (
            {"channels": {"a": {"type": "webhook", "url_env": "X", "route": {"events": []}}}},
            "notifications.channels.a.route.events",
            "at least one",
        ),
        ({"delivery": {"backoff": "10m", "max_backoff": "1m"}}, "notifications.delivery", "max"),
        ({"delivery": {"timeout": "0s"}}, "notifications.delivery.timeout", ""),
    ],
)
def test_an_invalid_section_is_a_policy_error_naming_the_field(
    tmp_path: Path, section: Any, field: str, reason: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        _load(tmp_path, section)
    assert caught.value.field.startswith(field), caught.value
    assert reason in caught.value.reason


def _notice(**changes: Any) -> Notice:
    base: dict[str, Any] = {
        "event": "trigger",
        "incident_id": 7,
        "host": "web1",
        "kind": "high_cpu",
        "groups": ("web",),
        "status": "escalated",
        "summary": "stuck",
        "at": 0.0,
    }
    return Notice(**(base | changes))


def test_routing_by_kind_group_severity_and_event() -> None:
    notifications = Notifications.model_validate(
        {
            "channels": {
                "all": {"type": "webhook", "url_env": "A"},
                "disk": {"type": "slack", "url_env": "B", "route": {"kinds": ["disk_full"]}},
                "db": {"type": "slack", "url_env": "C", "route": {"groups": ["db"]}},
                "pager": {
                    "type": "pagerduty",
                    "key_env": "D",
                    "route": {"severities": ["critical"]},
                },
                "quiet": {"type": "webhook", "url_env": "E", "route": {"events": ["resolve"]}},
            }
        }
    )
    assert channels_for(notifications, _notice()) == ["all"]
    assert channels_for(notifications, _notice(kind="disk_full")) == ["all", "disk"]
    assert channels_for(notifications, _notice(groups=("db", "web"))) == ["all", "db"]
    assert channels_for(notifications, _notice(status="failed")) == ["all", "pager"]
    resolve = _notice(event="resolve")
    assert channels_for(notifications, resolve) == []  # nothing was triggered
    assert channels_for(notifications, resolve, triggered=["pager", "quiet", "gone"]) == [
        "pager",
        "quiet",
    ]


def test_backoff_doubles_up_to_its_cap() -> None:
    delays = [backoff_delay(n, base=2.0, cap=30.0) for n in range(1, 8)]
    assert delays == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff_delay(10_000, base=2.0, cap=30.0) == 30.0


def _channels(**channel: Any) -> Notifications:
    return Notifications.model_validate({"channels": {"c": channel}})


def test_secrets_come_from_the_environment_or_a_file(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("routing-key-from-a-file\n")
    notifications = _channels(type="pagerduty", key_env="PD_KEY", url_env="PD_URL")
    env = {"PD_KEY_FILE": str(key), "PD_URL": "http://127.0.0.1:9/"}
    assert channel_secrets(notifications, env) == {
        "PD_KEY": "routing-key-from-a-file",
        "PD_URL": "http://127.0.0.1:9/",
    }


@pytest.mark.parametrize(
    ("env", "variable", "reason"),
    [
        ({}, "HOOK_URL", "must be set"),
        ({"HOOK_URL": "ftp://user:hunter2secret@example.test/x"}, "HOOK_URL", "http://"),
        ({"HOOK_URL": "https://hunter2secret"}, "HOOK_URL", "one line"),
        ({"HOOK_URL_FILE": "/nonexistent/hunter2secret"}, "HOOK_URL_FILE", "cannot be read"),
    ],
)
def test_a_missing_or_bad_secret_is_named_but_never_shown(
    env: dict[str, str], variable: str, reason: str
) -> None:
    if variable == "HOOK_URL" and reason == "one line":
        env = {"HOOK_URL": "https://example.test/hunter2secret\r\nX-Evil: 1"}
    with pytest.raises(SettingsError) as caught:
        channel_secrets(_channels(type="webhook", url_env="HOOK_URL"), env)
    assert caught.value.variable == variable
    assert reason in str(caught.value)
    assert "hunter2secret" not in str(caught.value)
