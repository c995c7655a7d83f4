"""Sign-in, sessions, CSRF, roles, API tokens, headers and error pages of the web UI.

Fixtures are in tests/webui/conftest.py. ``probe`` adds a few routes guarded by each
decorator, before the first request (Flask refuses routes after that).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask, g, jsonify
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts.login_limits import LoginLimiter, LoginLimits
from engine.accounts.users import create_token, disable_user
from engine.settings import Settings
from engine.store.accounts import WebSession
from tests.webui.conftest import PASSWORD, TEST_CONFIG, Login, MakeUser, expire_sessions
from webui import SECRET_KEY_FILE, create_app
from webui.security import (
    CONTENT_SECURITY_POLICY,
    LIMITER,
    api_auth_required,
    login_required,
    role_required,
    safe_next,
)

CsrfToken = Callable[[FlaskClient], str]


@pytest.fixture(autouse=True)
def probe(app: Flask) -> None:
    """Routes behind each decorator, for the checks below."""

    @login_required
    def page() -> str:
        return "signed in"

    @role_required("operator")
    def operator_page() -> str:
        return "operator page"

    @api_auth_required("operator")
    def api() -> object:
        return jsonify(user=g.user.name, role=g.user.role)

    def boom() -> str:
        raise RuntimeError("secret internals")

    app.add_url_rule("/probe/page", view_func=page, methods=["GET", "POST"])
    app.add_url_rule("/probe/operator", view_func=operator_page)
    app.add_url_rule("/api/probe", view_func=api, methods=["GET", "POST"])
    app.add_url_rule("/probe/boom", view_func=boom)


def cookie(client: FlaskClient) -> str | None:
    found = client.get_cookie("autosre_session")
    return None if found is None else found.value


# -- signing in and out ---------------------------------------------------------------


def test_signed_out_pages_redirect_to_login(client: FlaskClient) -> None:
    response = client.get("/probe/page?x=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/probe/page?x%3D1"
    assert client.get("/").headers["Location"] == "/login?next=/"


def test_login_and_logout(client: FlaskClient, make_user: MakeUser, login: Login) -> None:
    make_user("operator", "otto")
    response = login(client, "otto")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert "otto" in home.text
    assert "operator" in home.text
    assert 'action="/logout"' in home.text
    assert client.get("/login").headers["Location"] == "/"  # already signed in

    token = re.search(r'name="csrf_token" value="([^"]+)"', home.text)
    assert token
    out = client.post("/logout", data={"csrf_token": token.group(1)})
    assert out.status_code == 302
    assert out.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_wrong_password_and_unknown_user_look_the_same(
    client: FlaskClient, make_user: MakeUser, login: Login
) -> None:
    make_user("viewer", "vera")
    wrong = login(client, "vera", "not the password at all")
    unknown = login(client, "nobody", PASSWORD)
    for response in (wrong, unknown):
        assert response.status_code == 200
        assert "Wrong user name or password" in response.text
    assert 'value="vera"' in wrong.text  # the name stays filled in, the password does not
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_login_logout_on_postgresql(
    client: FlaskClient, make_user: MakeUser, login: Login, csrf_token: CsrfToken
) -> None:
    make_user("admin", "ada")
    assert login(client, "ada", "wrong password!!").status_code == 200
    assert login(client, "ada").status_code == 302
    assert "ada" in client.get("/").text
    assert client.post("/logout", data={"csrf_token": csrf_token(client)}).status_code == 302
    assert client.get("/").status_code == 302


def test_session_cookie_flags(client: FlaskClient, make_user: MakeUser, login: Login) -> None:
    make_user("viewer", "vera")
    response = login(client, "vera")
    (set_cookie,) = response.headers.getlist("Set-Cookie")
    assert set_cookie.startswith("autosre_session=")
    for flag in ("Secure", "HttpOnly", "SameSite=Lax", "Expires="):
        assert flag in set_cookie


def test_login_starts_a_new_session(
    app: Flask, client: FlaskClient, make_user: MakeUser, login: Login, csrf_token: CsrfToken
) -> None:
    make_user("viewer", "vera")
    before_token = csrf_token(client)
    before_cookie = cookie(client)
    assert before_cookie
    assert login(client, "vera").status_code == 302
    assert cookie(client) != before_cookie
    assert csrf_token(client) != before_token
    # The pre-login cookie, replayed, signs nobody in.
    other = app.test_client()
    other.set_cookie("autosre_session", before_cookie)
    assert other.get("/").status_code == 302


def test_disabled_user_is_logged_out(
    viewer_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    assert viewer_client.get("/").status_code == 200
    disable_user(sessions, "viewer")
    response = viewer_client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")


def test_session_ends_twelve_hours_after_login(
    app: Flask, viewer_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    assert app.permanent_session_lifetime == timedelta(hours=12)
    with sessions() as session:
        row = session.scalars(select(WebSession)).one()
    assert row.expires_at - row.created_at == timedelta(hours=12)
    expire_sessions(sessions)
    assert viewer_client.get("/").status_code == 302


# -- rate limiting ----------------------------------------------------------------------


def test_failed_logins_are_rate_limited(
    app: Flask,
    client: FlaskClient,
    make_user: MakeUser,
    login: Login,
    sessions: sessionmaker[Session],
) -> None:
    now = [1000.0]
    app.extensions[LIMITER] = LoginLimiter(sessions, LoginLimits(), clock=lambda: now[0])
    make_user("viewer", "vera")
    for _ in range(5):
        assert login(client, "vera", "wrong password!!").status_code == 200
    blocked = login(client, "vera")  # even the right password waits
    assert blocked.status_code == 429
    assert blocked.headers["Retry-After"] == "300"
    assert "Too many failed sign-ins" in blocked.text
    assert "Traceback" not in blocked.text
    now[0] += 299
    assert login(client, "vera").headers["Retry-After"] == "1"
    now[0] += 1
    assert login(client, "vera").status_code == 302


def test_limiter_counts_per_address_and_name(app: Flask, make_user: MakeUser, login: Login) -> None:
    make_user("viewer", "vera")
    make_user("viewer", "walt")
    here = app.test_client()
    there = app.test_client()
    there.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    for _ in range(5):
        login(here, "vera", "wrong password!!")
    assert login(here, "vera").status_code == 429
    assert login(here, "walt").status_code == 302
    assert login(there, "vera").status_code == 302


def test_success_resets_the_count(client: FlaskClient, make_user: MakeUser, login: Login) -> None:
    make_user("viewer", "vera")
    for _ in range(4):
        login(client, "vera", "wrong password!!")
    assert login(client, "vera").status_code == 302
    for _ in range(4):
        login(client, "vera", "wrong password!!")
    assert login(client, "vera").status_code == 302


# -- CSRF -------------------------------------------------------------------------------


def test_post_without_or_with_a_wrong_csrf_token_is_refused(
    viewer_client: FlaskClient, csrf_token: CsrfToken
) -> None:
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": ""}):
        response = viewer_client.post("/logout", data=data)
        assert response.status_code == 400
        assert "security token" in response.text
        assert "Traceback" not in response.text
    assert viewer_client.get("/").status_code == 200  # still signed in
    assert viewer_client.post("/probe/page", data={"csrf_token": "x"}).status_code == 400
    token = csrf_token(viewer_client)
    assert viewer_client.post("/probe/page", data={"csrf_token": token}).text == "signed in"
    sent = viewer_client.post("/probe/page", headers={"X-CSRF-Token": token})
    assert sent.text == "signed in"
    assert viewer_client.delete("/probe/page", headers={"X-CSRF-Token": "no"}).status_code == 400


def test_login_form_needs_its_csrf_token(client: FlaskClient, make_user: MakeUser) -> None:
    make_user("viewer", "vera")
    response = client.post("/login", data={"name": "vera", "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_a_form_posted_after_the_session_expired_leads_to_login(
    viewer_client: FlaskClient, csrf_token: CsrfToken, sessions: sessionmaker[Session]
) -> None:
    token = csrf_token(viewer_client)
    expire_sessions(sessions)
    response = viewer_client.post("/probe/page", data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/probe/page")


# -- roles and redirects --------------------------------------------------------------------


def test_role_required(
    client: FlaskClient,
    viewer_client: FlaskClient,
    operator_client: FlaskClient,
    admin_client: FlaskClient,
) -> None:
    assert client.get("/probe/operator").status_code == 302
    refused = viewer_client.get("/probe/operator")
    assert refused.status_code == 403
    assert "needs the operator role; you are viewer" in refused.text
    assert operator_client.get("/probe/operator").text == "operator page"
    assert admin_client.get("/probe/operator").text == "operator page"


def test_users_link_only_for_admins(
    viewer_client: FlaskClient, operator_client: FlaskClient, admin_client: FlaskClient
) -> None:
    assert 'href="/users"' not in viewer_client.get("/").text
    assert 'href="/users"' not in operator_client.get("/").text
    assert 'href="/users"' in admin_client.get("/").text


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "",
    ],
)
def test_next_outside_the_site_is_ignored(
    client: FlaskClient, make_user: MakeUser, login: Login, target: str
) -> None:
    make_user("viewer", "vera")
    assert 'name="next"' not in client.get("/login", query_string={"next": target}).text
    response = login(client, "vera", next=target)
    assert response.headers["Location"] == "/"


def test_next_on_the_site_is_followed(
    client: FlaskClient, make_user: MakeUser, login: Login
) -> None:
    make_user("viewer", "vera")
    page = client.get("/login", query_string={"next": "/incidents?status=open"})
    assert 'name="next" value="/incidents?status=open"' in page.text
    response = login(client, "vera", next="/incidents?status=open")
    assert response.headers["Location"] == "/incidents?status=open"


def test_safe_next() -> None:
    assert safe_next("/a/b?c=d#e") == "/a/b?c=d#e"
    assert safe_next(None) is None
    assert safe_next("///evil.example") is None
    assert safe_next("/ok\x7f") is None


# -- API tokens ---------------------------------------------------------------------------


def test_api_needs_a_bearer_token(
    client: FlaskClient, operator_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    missing = client.get("/api/probe")
    assert missing.status_code == 401
    assert missing.json == {"error": "a valid API token is required (Bearer)", "status": 401}
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    for header in ("Bearer asr_not-a-token", "Basic dXNlcjpwYXNz", "Bearer ", "asr_x"):
        assert client.get("/api/probe", headers={"Authorization": header}).status_code == 401
    # A browser session is no API credential.
    assert operator_client.get("/api/probe").status_code == 401


def test_api_roles_and_tokens(
    client: FlaskClient, make_user: MakeUser, sessions: sessionmaker[Session]
) -> None:
    make_user("viewer", "vera")
    make_user("operator", "otto")
    viewer = {"Authorization": f"Bearer {create_token(sessions, 'vera', 'ci')}"}
    operator = {"Authorization": f"bearer {create_token(sessions, 'otto', 'ci')}"}
    refused = client.get("/api/probe", headers=viewer)
    assert refused.status_code == 403
    assert refused.json == {
        "error": "this needs the operator role; the token's user is viewer",
        "status": 403,
    }
    assert client.get("/api/probe", headers=operator).json == {"user": "otto", "role": "operator"}
    # API calls authenticate by token only, so they need no CSRF token; without one: 401.
    assert client.post("/api/probe", headers=operator).status_code == 200
    assert client.post("/api/probe").status_code == 401
    disable_user(sessions, "otto")
    assert client.get("/api/probe", headers=operator).status_code == 401


def test_api_errors_are_json(client: FlaskClient) -> None:
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.is_json
    assert response.json is not None
    assert response.json["status"] == 404


# -- headers, errors, assets ------------------------------------------------------------------


def test_security_headers_on_every_response(
    client: FlaskClient, viewer_client: FlaskClient
) -> None:
    responses = [
        client.get("/login"),
        client.get("/"),
        client.get("/no/such/page"),
        client.get("/static/app.css", buffered=True),
        client.get("/api/probe"),
        client.post("/logout"),
        viewer_client.get("/"),
    ]
    for response in responses:
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert viewer_client.get("/").headers["Cache-Control"] == "no-store"


def test_unknown_url_is_a_404_page(client: FlaskClient, viewer_client: FlaskClient) -> None:
    for who in (client, viewer_client):
        response = who.get("/no/such/page")
        assert response.status_code == 404
        assert response.mimetype == "text/html"
        assert "404 · Not Found" in response.text
        assert "Traceback" not in response.text
    assert "Sign out" in viewer_client.get("/no/such/page").text


def test_method_not_allowed_keeps_allow(client: FlaskClient) -> None:
    response = client.get("/logout")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


def test_unhandled_error_is_a_500_page_without_internals(
    app: Flask, viewer_client: FlaskClient
) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False  # TESTING would re-raise it into the test
    response = viewer_client.get("/probe/boom")
    assert response.status_code == 500
    assert "500 · Internal Server Error" in response.text
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_static_assets_are_served(client: FlaskClient) -> None:
    for name, mimetype in (
        ("app.css", "text/css"),
        ("theme.js", "text/javascript"),
        ("app.js", "text/javascript"),
        ("favicon.svg", "image/svg+xml"),
    ):
        with client.get(f"/static/{name}") as response:  # a file stream: close it
            assert response.status_code == 200, name
            assert response.mimetype == mimetype
            assert len(response.data) > 200 or name == "favicon.svg"


def test_pages_load_nothing_from_elsewhere_and_have_no_inline_code(
    client: FlaskClient, admin_client: FlaskClient
) -> None:
    pages = [client.get("/login").text, admin_client.get("/").text]
    pages.append(admin_client.get("/nothing").text)
    for page in pages:
        assert re.findall(r'(?:src|href)="([^"]+)"', page)
        for url in re.findall(r'(?:src|href|action)="([^"]+)"', page):
            assert url.startswith("/"), url
        for tag in re.findall(r"<script[^>]*>", page):
            assert " src=" in tag, tag  # CSP forbids inline scripts
        assert "<script>" not in page
        assert " style=" not in page  # nor inline styles
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", page)  # nor event-handler attributes


def test_theme_script_is_not_deferred(client: FlaskClient) -> None:
    head = client.get("/login").text.split("</head>")[0]
    assert '<script src="/static/theme.js"></script>' in head
    assert '<script src="/static/app.js" defer></script>' in head


# -- the app factory ------------------------------------------------------------------------


def test_secret_key_is_made_once_and_kept(settings: Settings) -> None:
    first = create_app({"TESTING": True}, settings=settings)
    second = create_app({"TESTING": True}, settings=settings)
    try:
        path = Path(settings.data_dir) / SECRET_KEY_FILE
        assert path.stat().st_mode & 0o777 == 0o600
        assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == path.read_text()
        assert len(first.config["SECRET_KEY"]) >= 32
    finally:
        for app in (first, second):
            app.extensions["autosre"].kw["bind"].dispose()


def test_secret_key_from_the_environment(settings: Settings) -> None:
    key = "k" * 40
    app = create_app({"TESTING": True}, settings=replace(settings, secret_key=key))
    try:
        assert app.config["SECRET_KEY"] == key
        assert not (Path(settings.data_dir) / SECRET_KEY_FILE).exists()
        assert key not in repr(settings) + repr(replace(settings, secret_key=key))
    finally:
        app.extensions["autosre"].kw["bind"].dispose()


def test_test_config_comes_last(settings: Settings) -> None:
    app = create_app({**TEST_CONFIG, "SESSION_COOKIE_SECURE": False}, settings=settings)
    try:
        assert app.config["SESSION_COOKIE_SECURE"] is False
        assert app.config["AUTOSRE_DATABASE_URL"] == settings.database_url
        assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    finally:
        app.extensions["autosre"].kw["bind"].dispose()
