"""POST /api/v1/alerts, Alertmanager's webhook receiver: its token, its bounds, what it stores.

The real app on a migrated store, with the default policy (``alerts.token_env`` is
AUTOSRE_ALERTS_TOKEN) and the one-host inventory (``localhost``).
"""

from __future__ import annotations

import base64
import json
import statistics
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.read.alert_events import alert_events
from webui.alerts import ENVIRONMENT_KEY

TOKEN = "alerts-token-" + "s3cr3t" * 4
URL = "/api/v1/alerts"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def alert(
    fingerprint: str = "a1b2c3d4e5f60718",
    *,
    status: str = "firing",
    labels: dict[str, Any] | None = None,
    starts: str = "2026-11-30T10:00:00.123456789Z",
) -> dict[str, Any]:
    """One alert as Alertmanager 0.25 posts it."""
    return {
        "status": status,
        "labels": labels
        if labels is not None
        else {"alertname": "HighCPU", "instance": "localhost:9100", "autosre_kind": "high_cpu"},
        "annotations": {"summary": "CPU is high"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-30T10:05:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }


def payload(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    """Alertmanager's webhook payload (version 4) around the alerts."""
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighCPU"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "autosre",
        "groupLabels": {"alertname": "HighCPU"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


@pytest.fixture
def enabled(app: Flask) -> Flask:
    """The app with the receiver's token in its environment."""
    app.config[ENVIRONMENT_KEY] = {"AUTOSRE_ALERTS_TOKEN": TOKEN}
    return app


def post(client: FlaskClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post(URL, json=body, headers=BEARER if headers is None else headers)


# -- the token ------------------------------------------------------------------------------


def test_without_a_token_configured_the_receiver_is_off_never_open(
    app: Flask, client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    app.config[ENVIRONMENT_KEY] = {}
    for headers in ({}, BEARER, {"Authorization": "Bearer "}):
        response = post(client, payload(alert()), headers)
        assert response.status_code == 404, response.text
        assert "off" in response.json["error"]
    assert alert_events(sessions) == []


def test_missing_wrong_and_right_tokens(enabled: Flask, sessions: sessionmaker[Session]) -> None:
    client = enabled.test_client()
    body = payload(alert())
    wrong = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer " + TOKEN[:-1]},
        {"Authorization": "Bearer " + TOKEN + "x"},
        {"Authorization": "Token " + TOKEN},
        {"Authorization": "Basic !!notbase64"},
        {"Authorization": "Basic " + base64.b64encode(b"am:wrong").decode()},
        {"Authorization": "Bearer " + "x" * 100_000},
    ]
    for headers in wrong:
        response = post(client, body, headers)
        assert response.status_code == 401, (headers.get("Authorization", "")[:40], response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert alert_events(sessions) == []
    assert post(client, body).json == {"accepted": 1, "ignored": 0, "duplicate": 0}
    # The shared secret as Alertmanager's basic_auth password works the same.
    basic = {"Authorization": "Basic " + base64.b64encode(f"am:{TOKEN}".encode()).decode()}
    assert post(client, body, basic).json == {"accepted": 0, "ignored": 0, "duplicate": 1}


def test_the_token_is_compared_in_constant_time(enabled: Flask) -> None:
    """A token wrong in its first character and one wrong in its last take the same time."""
    client = enabled.test_client()
    body = payload(alert())
    early = {"Authorization": "Bearer X" + TOKEN[1:]}
    late = {"Authorization": "Bearer " + TOKEN[:-1] + "X"}
    times: dict[str, list[float]] = {"early": [], "late": []}
    for _ in range(60):
        for name, headers in (("early", early), ("late", late)):
            started = time.perf_counter()
            assert post(client, body, headers).status_code == 401
            times[name].append(time.perf_counter() - started)
    # Both go through hashing and hmac.compare_digest: no difference beyond noise.
    a, b = statistics.median(times["early"]), statistics.median(times["late"])
    assert abs(a - b) < 0.5 * min(a, b), times


def test_a_short_token_turns_the_receiver_off(app: Flask, client: FlaskClient) -> None:
    app.config[ENVIRONMENT_KEY] = {"AUTOSRE_ALERTS_TOKEN": "short"}
    assert post(client, payload(alert()), {"Authorization": "Bearer short"}).status_code == 404


# -- bad payloads ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ([], "JSON object"),
        ("alerts", "JSON object"),
        ({"version": "3", "status": "firing", "alerts": []}, "version"),
        (payload(alert()) | {"alerts": "many"}, "alerts"),
        (payload({**alert(), "labels": ["alertname"]}), "alerts.0.labels"),
        (payload({**alert(), "labels": {"alertname": 1}}), "alerts.0.labels.alertname"),
        (payload({**alert(), "status": "burning"}), "alerts.0.status"),
        (payload({**alert(), "startsAt": "yesterday"}), "alerts.0.startsAt"),
        (payload({**alert(), "startsAt": "2026-11-30T10:00:00"}), "alerts.0.startsAt"),
        (payload({**alert(), "startsAt": "0001-01-01T00:00:00+05:00"}), "out of range"),
        (payload({**alert(), "fingerprint": "../../etc"}), "alerts.0.fingerprint"),
        (payload({k: v for k, v in alert().items() if k != "fingerprint"}), "fingerprint"),
        (payload(alert(labels={"instance": "x" * 5000})), "alerts.0.labels.instance"),
        (payload(alert(labels={f"l{i}": "v" for i in range(65)})), "alerts.0.labels"),
        (payload(alert(labels={"a": {"b": {"c": 1}}})), "nested too deep"),
    ],
)
def test_a_malformed_payload_is_a_400_naming_the_problem(
    enabled: Flask, sessions: sessionmaker[Session], body: Any, named: str
) -> None:
    response = post(enabled.test_client(), body)
    assert response.status_code == 400, response.text
    assert named in response.json["error"], response.json
    assert alert_events(sessions) == []


def test_no_body_non_json_and_broken_json(enabled: Flask) -> None:
    client = enabled.test_client()
    assert client.post(URL, headers=BEARER).status_code == 400
    response = client.post(URL, data="x=1", headers=BEARER, content_type="text/plain")
    assert response.status_code == 415
    response = client.post(URL, data='{"version": "4", ', headers=BEARER, content_type=JSON)
    assert response.status_code == 400 and "malformed JSON" in response.json["error"]


JSON = "application/json"


def test_ten_thousand_alerts_are_refused_whole(
    enabled: Flask, sessions: sessionmaker[Session]
) -> None:
    client = enabled.test_client()
    many = [
        {"status": "firing", "labels": {}, "startsAt": "2026-11-30T10:00:00Z", "fingerprint": "f"}
    ] * 10_000
    big = client.post(URL, data=json.dumps(payload(*many)), headers=BEARER, content_type=JSON)
    assert big.status_code == 413, big.text[:200]
    response = post(client, payload(*[alert(f"{i:016x}") for i in range(1001)]))
    assert response.status_code == 413
    assert "at most 1000" in response.json["error"] and "max_alerts" in response.json["error"]
    assert alert_events(sessions) == []


def test_new_alerts_beyond_the_minute_limit_are_429_and_nothing_is_stored(
    enabled: Flask, sessions: sessionmaker[Session]
) -> None:
    client = enabled.test_client()
    first = [alert(f"{i:016x}") for i in range(600)]
    assert post(client, payload(*first)).json["accepted"] == 600
    # Re-sending what is stored is not new: still answered within the limit.
    assert post(client, payload(*first[:10])).json == {"accepted": 0, "ignored": 0, "duplicate": 10}
    response = post(client, payload(alert("ffff000000000001")))
    assert response.status_code == 429, response.text
    assert response.headers["Retry-After"] == "60"
    assert "max_per_minute" in response.json["error"]
    assert len(alert_events(sessions, limit=1000)) == 600


# -- routing and what is stored -----------------------------------------------------------


def test_alerts_are_routed_ignored_with_the_reason_and_counted(
    enabled: Flask, sessions: sessionmaker[Session]
) -> None:
    client = enabled.test_client()
    hostile = "{{ 7*7 }}<script>alert(1)</script>\x1b[31mred\x1b[0m"
    body = payload(
        alert("0000000000000001"),  # instance with its port, kind by label
        alert("0000000000000002", labels={"alertname": "HighCPU", "instance": "web9:9100"}),
        alert("0000000000000003", labels={"alertname": "Strange", "instance": "localhost"}),
        alert(
            "0000000000000004",
            labels={"alertname": "X", "instance": "localhost", "autosre_kind": "coffee"},
        ),
        alert("0000000000000005", labels={"alertname": hostile, "instance": hostile}),
        alert("0000000000000006", labels={"alertname": "NoHost"}),
    )
    assert post(client, body).json == {"accepted": 1, "ignored": 5, "duplicate": 0}
    assert post(client, body).json == {"accepted": 0, "ignored": 0, "duplicate": 6}
    events = {e.fingerprint[-1]: e for e in alert_events(sessions)}
    assert (events["1"].host, events["1"].kind, events["1"].outcome) == (
        "localhost",
        "high_cpu",
        "new",
    )
    assert events["1"].received == 2
    reasons = {key: e.reason or "" for key, e in events.items() if e.outcome == "ignored"}
    assert "web9:9100" in reasons["2"] and "no inventory host" in reasons["2"]
    assert "not in alerts.kinds" in reasons["3"]
    assert "coffee" in reasons["4"] and "not a signal kind the policy watches" in reasons["4"]
    assert "no instance label" in reasons["6"]
    # Hostile text is kept as data and shown escaped: no terminal sequence in the reason.
    assert "\x1b" not in reasons["5"] and "\\x1b[31m" in reasons["5"]
    assert events["5"].labels["instance"] == hostile  # the row keeps what was sent
    metrics = client.get("/metrics").text
    assert 'autosre_alerts_received_total{outcome="accepted",status="firing"} 1.0' in metrics
    assert 'autosre_alerts_received_total{outcome="ignored",status="firing"} 5.0' in metrics
    assert 'autosre_alerts_received_total{outcome="duplicate",status="firing"} 6.0' in metrics
    assert 'autosre_alert_events{outcome="new"} 1.0' in metrics
    assert hostile not in metrics


def test_the_same_alert_resolved_is_a_new_event_and_a_new_start_too(
    enabled: Flask, sessions: sessionmaker[Session]
) -> None:
    client = enabled.test_client()
    assert post(client, payload(alert())).json["accepted"] == 1
    resolved = payload(alert(status="resolved"), status="resolved")
    assert post(client, resolved).json["accepted"] == 1
    again = payload(alert(starts="2026-11-30T11:00:00Z"))
    assert post(client, again).json["accepted"] == 1
    assert [e.status for e in alert_events(sessions)] == ["firing", "resolved", "firing"]
