"""Maintenance windows and flapping hosts in the web UI and the API: everyone sees them,
only operators and admins change them (CSRF-protected forms, operator tokens), hostile
reasons are shown as text, and bad input is a 4xx that names the problem."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts.users import create_token
from engine.components import Components
from engine.read.maintenance import get_window, list_windows
from engine.settings import Settings, load_settings
from tests.webui.conftest import MakeUser

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "<script>alert(1)</script> {{ 7*7 }} {% raw %}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The lab inventory (group web: web1, web2) and policy."""
    return load_settings(
        {
            "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
            "AUTOSRE_DATABASE_URL": database_url,
            "AUTOSRE_INVENTORY": str(ROOT / "inventory" / "lab.yml"),
            "AUTOSRE_POLICY": str(ROOT / "policies" / "lab.yaml"),
        }
    )


def parts(app: Flask) -> Components:
    found: Components = app.extensions["autosre_components"]
    return found


def form(
    client: FlaskClient, csrf_token: Callable[[FlaskClient], str], **fields: str
) -> dict[str, str]:
    return {"csrf_token": csrf_token(client), **fields}


def start(client: FlaskClient, token: str, **fields: str) -> tuple[int, str]:
    values = {"scope": "host", "target": "web2", "duration": "2h", "reason": "kernel", **fields}
    response = client.post("/maintenance/start", data={"csrf_token": token, **values})
    return response.status_code, response.get_data(as_text=True)


# -- the pages ---------------------------------------------------------------------------------


def test_an_operator_starts_a_window_the_dashboard_shows_it_and_one_click_ends_it(
    app: Flask,
    signed_in: Callable[..., FlaskClient],
    csrf_token: Callable[[FlaskClient], str],
    sessions: sessionmaker[Session],
) -> None:
    operator = signed_in("operator", "olga")
    token = csrf_token(operator)
    status, _ = start(operator, token, scope="group", target="web", reason=HOSTILE)
    assert status == 302
    [window] = list_windows(sessions)
    assert (window.group, window.set_by, window.source, window.reason) == (
        "web",
        "olga",
        "web",
        HOSTILE,
    )
    page = operator.get("/").get_data(as_text=True)
    assert page.count("maintenance until ") == 2  # web1 and web2, both in group web
    # The reason is text: escaped, never run as HTML or evaluated as a template.
    assert "&lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }} {% raw %}" in page
    # Shown as typed ({{ 7*7 }} above, literally), never run: no markup, no template.
    assert "<script>alert(1)" not in page
    assert f'action="/maintenance/{window.id}/end"' in page

    response = operator.post(
        f"/maintenance/{window.id}/end", data={"csrf_token": token, "next": "/"}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"
    ended = get_window(sessions, window.id)
    assert ended is not None and (ended.state, ended.ended_by) == ("ended", "olga")
    assert "maintenance until" not in operator.get("/").get_data(as_text=True)
    again = operator.post(f"/maintenance/{window.id}/end", data={"csrf_token": token})
    assert again.status_code == 409 and "already ended by olga" in again.get_data(as_text=True)
    assert operator.post("/maintenance/999/end", data={"csrf_token": token}).status_code == 404


def test_a_viewer_sees_windows_but_cannot_start_or_end_them(
    app: Flask,
    signed_in: Callable[..., FlaskClient],
    csrf_token: Callable[[FlaskClient], str],
    sessions: sessionmaker[Session],
) -> None:
    operator = signed_in("operator")
    assert start(operator, csrf_token(operator))[0] == 302
    [window] = list_windows(sessions)
    viewer = signed_in("viewer")
    token = csrf_token(viewer)
    page = viewer.get("/maintenance").get_data(as_text=True)
    assert "host web2" in page and "kernel" in page
    assert "End now" not in page and "Start maintenance" not in page
    assert "End now" not in viewer.get("/").get_data(as_text=True)
    assert start(viewer, token, target="web1")[0] == 403
    assert (
        viewer.post(f"/maintenance/{window.id}/end", data={"csrf_token": token}).status_code == 403
    )
    parts(app).recorder.maintenance.take_out("web1", "flapping", at=time.time(), incident_id=None)
    denied = viewer.post("/maintenance/hosts/enable", data={"csrf_token": token, "host": "web1"})
    assert denied.status_code == 403
    assert len(list_windows(sessions)) == 1
    assert get_window(sessions, window.id).state == "active"  # type: ignore[union-attr]


def test_forms_without_the_csrf_token_are_refused(
    app: Flask, signed_in: Callable[..., FlaskClient], sessions: sessionmaker[Session]
) -> None:
    operator = signed_in("operator")
    status, _ = start(operator, "forged")
    assert status == 400
    fields = {"scope": "host", "target": "web2", "duration": "1h", "reason": "x"}
    assert operator.post("/maintenance/start", data=fields).status_code == 400
    assert list_windows(sessions) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"target": "web9"}, "unknown host &#39;web9&#39;: not in the inventory"),
        ({"scope": "group", "target": "nope"}, "unknown group &#39;nope&#39;"),
        ({"scope": "rack"}, "covers a host or a group"),
        ({"duration": ""}, "needs an end"),
        ({"duration": "8d"}, "too long"),
        ({"duration": "soon"}, "expected a duration"),
        ({"reason": ""}, "needs a reason"),
        ({"reason": "red \x1b[31m alert"}, "control characters"),
        ({"reason": "x\x00y"}, "control characters"),
    ],
)
def test_bad_windows_are_a_400_naming_the_problem(
    signed_in: Callable[..., FlaskClient],
    csrf_token: Callable[[FlaskClient], str],
    sessions: sessionmaker[Session],
    fields: dict[str, str],
    message: str,
) -> None:
    operator = signed_in("operator")
    status, page = start(operator, csrf_token(operator), **fields)
    assert status == 400
    assert message in page
    assert list_windows(sessions) == []


def test_a_flapping_host_is_shown_and_re_enabled_with_one_button(
    app: Flask,
    signed_in: Callable[..., FlaskClient],
    csrf_token: Callable[[FlaskClient], str],
) -> None:
    records = parts(app).recorder.maintenance
    records.take_out("web1", "flapping: 5 runs within 3600s", at=time.time(), incident_id=None)
    operator = signed_in("operator", "omar")
    token = csrf_token(operator)
    page = operator.get("/").get_data(as_text=True)
    assert "automation off (flapping)" in page and "Re-enable" in page
    response = operator.post(
        "/maintenance/hosts/enable", data={"csrf_token": token, "host": "web1", "next": "/"}
    )
    assert response.status_code == 302
    assert records.holds("web1", ("web",), time.time()).disabled_at is None
    assert "automation off" not in operator.get("/").get_data(as_text=True)
    again = operator.post("/maintenance/hosts/enable", data={"csrf_token": token, "host": "web1"})
    assert again.status_code == 409
    unknown = operator.post("/maintenance/hosts/enable", data={"csrf_token": token, "host": "x"})
    assert unknown.status_code == 404
    audit = parts(app).settings.audit_log.read_text()
    assert '"by": "omar"' in audit and "host_enabled" in audit


# -- the API -----------------------------------------------------------------------------------


def bearer(sessions: sessionmaker[Session], make_user: MakeUser, role: str) -> dict[str, str]:
    user = make_user(role)
    return {"Authorization": f"Bearer {create_token(sessions, user.name, 'test')}"}


def test_the_api_starts_lists_and_ends_windows_for_operators_only(
    client: FlaskClient, sessions: sessionmaker[Session], make_user: MakeUser
) -> None:
    viewer = bearer(sessions, make_user, "viewer")
    operator = bearer(sessions, make_user, "operator")
    body = {"host": "web1", "duration": "90m", "reason": HOSTILE}
    denied = client.post("/api/v1/maintenance", json=body, headers=viewer)
    assert denied.status_code == 403 and denied.json["status"] == 403  # type: ignore[index]
    assert client.post("/api/v1/maintenance", json=body).status_code == 401
    made = client.post("/api/v1/maintenance", json=body, headers=operator)
    assert made.status_code == 200, made.text
    window = made.json
    assert window is not None
    assert (window["host"], window["state"], window["source"], window["reason"]) == (
        "web1",
        "active",
        "api",
        HOSTILE,
    )
    listed = client.get("/api/v1/maintenance", headers=viewer).json
    assert [w["id"] for w in listed["items"]] == [window["id"]]  # type: ignore[index]
    url = f"/api/v1/maintenance/{window['id']}/end"
    assert client.post(url, headers=viewer).status_code == 403
    ended = client.post(url, headers=operator)
    assert ended.status_code == 200 and ended.json["state"] == "ended"  # type: ignore[index]
    assert client.post(url, headers=operator).status_code == 409
    assert client.post("/api/v1/maintenance/4242/end", headers=operator).status_code == 404
    assert client.get("/api/v1/maintenance", headers=viewer).json["items"] == []  # type: ignore[index]
    everything = client.get("/api/v1/maintenance?all=true", headers=viewer).json
    assert len(everything["items"]) == 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"host": "web9", "duration": "1h", "reason": "r"}, "unknown host 'web9'"),
        ({"group": "web", "reason": "r"}, "needs an end"),
        ({"host": "web1", "duration": "9d", "reason": "r"}, "too long"),
        ({"host": "web1", "until": "2001-01-01T00:00:00Z", "reason": "r"}, "must end after"),
        ({"host": "web1", "duration": "1h", "reason": "\x1b[2J"}, "control characters"),
        ({"host": "web1", "duration": "1h"}, "reason"),
        ({"host": "web1", "duration": "1h", "reason": "r", "by": "eve"}, "unknown field"),
        ({"host": "web1", "duration": "forever", "reason": "r"}, "duration"),
        ([1, 2], "JSON object"),
    ],
)
def test_the_api_refuses_bad_windows_with_a_clear_400(
    client: FlaskClient,
    sessions: sessionmaker[Session],
    make_user: MakeUser,
    body: object,
    message: str,
) -> None:
    operator = bearer(sessions, make_user, "operator")
    response = client.post("/api/v1/maintenance", json=body, headers=operator)
    assert response.status_code == 400, response.text
    assert response.json is not None and message in response.json["error"]
    assert list_windows(sessions) == []


def test_the_api_lists_and_re_enables_flapping_hosts(
    app: Flask, client: FlaskClient, sessions: sessionmaker[Session], make_user: MakeUser
) -> None:
    viewer = bearer(sessions, make_user, "viewer")
    operator = bearer(sessions, make_user, "operator")
    parts(app).recorder.maintenance.take_out("web2", "flapping", at=time.time(), incident_id=None)
    listed = client.get("/api/v1/hosts/disabled", headers=viewer).json
    assert [h["host"] for h in listed["items"]] == ["web2"]  # type: ignore[index]
    assert (
        client.post("/api/v1/hosts/enable", json={"host": "web2"}, headers=viewer).status_code
        == 403
    )
    enabled = client.post("/api/v1/hosts/enable", json={"host": "web2"}, headers=operator)
    assert enabled.status_code == 200 and enabled.json["host"] == "web2"  # type: ignore[index]
    again = client.post("/api/v1/hosts/enable", json={"host": "web2"}, headers=operator)
    assert again.status_code == 409
    unknown = client.post("/api/v1/hosts/enable", json={"host": "web9"}, headers=operator)
    assert unknown.status_code == 404
    assert client.get("/api/v1/hosts/disabled", headers=viewer).json["items"] == []  # type: ignore[index]
