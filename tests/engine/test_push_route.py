"""The pure side of pushed alerts: the payload's bounds and the routing of alerts to hosts."""

from __future__ import annotations

from typing import Any

import pytest

from engine.metrics.series_map import HostKeys, SeriesMap
from engine.policy.push_schema import Alerts
from engine.push.payload import MAX_ALERTS, PayloadError, parse_payload
from engine.push.route import Ignored, Routed, route_alert
from engine.push.token import presented_token, token_matches

SERIES = SeriesMap.build(
    [
        HostKeys("web1", "127.0.0.1", "127.0.0.1:9101"),
        HostKeys("web2", "127.0.0.1", "127.0.0.1:9102"),
        HostKeys("db1", "10.0.0.9"),
    ]
)
WATCHED = ("high_cpu", "service_down")
POLICY = Alerts(kinds={"HighCPU": "high_cpu", "DiskFull": "disk_full"})


def one(labels: dict[str, Any]) -> Any:
    body = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "startsAt": "2026-11-30T10:00:00Z",
                "fingerprint": "ab",
            }
        ],
    }
    return parse_payload(body).alerts[0]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"alertname": "HighCPU", "instance": "127.0.0.1:9102"}, Routed("web2", "high_cpu")),
        ({"alertname": "HighCPU", "instance": "10.0.0.9:9100"}, Routed("db1", "high_cpu")),
        (
            {"alertname": "X", "instance": "db1", "autosre_kind": "service_down"},
            Routed("db1", "service_down"),
        ),
        # The address two hosts share names neither: ignored, never credited to the first.
        ({"alertname": "HighCPU", "instance": "127.0.0.1:9100"}, "no inventory host"),
        ({"alertname": "DiskFull", "instance": "db1"}, "not a signal kind the policy watches"),
        ({"alertname": "HighCPU", "instance": "db1", "autosre_kind": "nope"}, "not a signal kind"),
        ({"alertname": "Other", "instance": "db1"}, "not in alerts.kinds"),
        ({"alertname": "HighCPU"}, "no instance label"),
    ],
)
def test_routing_by_labels(labels: dict[str, str], expected: Routed | str) -> None:
    found = route_alert(one(labels), POLICY, SERIES, WATCHED)
    if isinstance(expected, Routed):
        assert found == expected
    else:
        assert isinstance(found, Ignored) and expected in found.reason


def test_hostile_label_values_are_shown_escaped_and_bounded() -> None:
    value = "\x1b]0;pwned\x07{{ lookup('pipe','id') }}<b>" + "x" * 1000
    found = route_alert(one({"alertname": "HighCPU", "instance": value}), POLICY, SERIES, WATCHED)
    assert isinstance(found, Ignored)
    assert "\x1b" not in found.reason and "\x07" not in found.reason
    assert "\\x1b]0;pwned\\x07" in found.reason and len(found.reason) < 200


def test_the_payloads_hard_bounds() -> None:
    alert = {
        "status": "firing",
        "labels": {},
        "startsAt": "2026-11-30T10:00:00Z",
        "fingerprint": "a",
    }
    body = {"version": "4", "status": "firing", "alerts": [alert] * (MAX_ALERTS + 1)}
    with pytest.raises(PayloadError, match="alerts: List should have at most 10000"):
        parse_payload(body)
    with pytest.raises(PayloadError, match=r"version"):
        parse_payload({"version": 4, "status": "firing", "alerts": []})  # strict: no 4 for "4"


def test_tokens_from_headers_and_their_comparison() -> None:
    assert presented_token("Bearer abc") == "abc"
    assert presented_token("bearer   abc  ") == "abc"
    assert presented_token("Basic YW06c2VjcmV0") == "secret"  # am:secret
    assert presented_token("Basic YW0=") is None  # no password
    assert presented_token("Digest abc") is None
    assert token_matches("s" * 20, "s" * 20)
    assert not token_matches("s" * 20, None)
    assert not token_matches("s" * 20, "s" * 19)
