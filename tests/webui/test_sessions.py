"""Server-side sessions: logout, "sign out everywhere" and disabling revoke; no forged cookies.

Each attack here worked while the session was a signed cookie holding the user's id.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts.sessions import session_id
from engine.store.accounts import WebSession
from tests.webui.conftest import COOKIE, Login, MakeUser, read_cookie

CsrfToken = Callable[[FlaskClient], str]
SignedIn = Callable[..., FlaskClient]


def signed_out(client: FlaskClient) -> bool:
    """Whether a page that needs sign-in sends the client to the login page."""
    response = client.get("/")
    return response.status_code == 302 and response.headers["Location"].startswith("/login")


def client_as(app: Flask, name: str, login: Login) -> FlaskClient:
    client = app.test_client()
    assert login(client, name).status_code == 302
    return client


def rows(sessions: sessionmaker[Session]) -> list[WebSession]:
    with sessions() as session:
        return list(session.scalars(select(WebSession).order_by(WebSession.created_at)))


# -- what the cookie holds ----------------------------------------------------------------


def test_cookie_holds_a_random_token_and_the_store_only_its_hash(
    app: Flask, admin_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    admin_client.get("/")  # a page makes the CSRF token
    contents = read_cookie(app, admin_client)
    assert contents is not None
    assert set(contents) == {"_permanent", "sid", "csrf"}  # no user id, nothing but tokens
    token = contents["sid"]
    assert len(token) >= 40
    (row,) = rows(sessions)
    assert row.id == session_id(token) != token
    assert row.revoked_at is None
    assert row.expires_at - row.created_at == timedelta(hours=12)
    assert row.address == "127.0.0.1"


def test_saved_cookie_replayed_after_logout_is_refused(
    app: Flask, admin_client: FlaskClient, csrf_token: CsrfToken
) -> None:
    saved = admin_client.get_cookie(COOKIE)
    assert saved is not None
    assert admin_client.get("/users").status_code == 200
    out = admin_client.post("/logout", data={"csrf_token": csrf_token(admin_client)})
    assert out.status_code == 302
    thief = app.test_client()
    thief.set_cookie(COOKIE, saved.value)
    response = thief.get("/users")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/users"
    assert signed_out(thief)


def test_forged_cookies_sign_nobody_in(
    app: Flask, make_user: MakeUser, admin_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    # Whoever holds SECRET_KEY can sign any cookie: none of these may be a session.
    admin = make_user("admin", "root")
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    (stored,) = rows(sessions)  # admin_client's session, as a leaked database would show it
    forged = [
        {"user_id": admin.id, "login_at": time.time()},  # the old cookie's contents
        {"sid": secrets.token_urlsafe(32)},  # a token that was never issued
        {"sid": stored.id},  # the stored hash is not the token
        {"sid": ["not", "a", "string"]},
        {"sid": "x" * 10_000},
    ]
    for contents in forged:
        forger = app.test_client()
        forger.set_cookie(COOKIE, serializer.dumps(contents))
        assert forger.get("/users").status_code == 302, contents
        assert signed_out(forger), contents
    assert admin_client.get("/users").status_code == 200  # the real session is untouched


# -- ending sessions ----------------------------------------------------------------------


def test_logout_ends_only_this_session(
    app: Flask, make_user: MakeUser, login: Login, csrf_token: CsrfToken
) -> None:
    make_user("viewer", "vera")
    laptop = client_as(app, "vera", login)
    phone = client_as(app, "vera", login)
    laptop.post("/logout", data={"csrf_token": csrf_token(laptop)})
    assert signed_out(laptop)
    assert not signed_out(phone)


def test_disabling_a_user_signs_out_all_their_clients(
    app: Flask,
    make_user: MakeUser,
    login: Login,
    admin_client: FlaskClient,
    csrf_token: CsrfToken,
    sessions: sessionmaker[Session],
) -> None:
    make_user("operator", "otto")
    laptop = client_as(app, "otto", login)
    phone = client_as(app, "otto", login)
    saved = phone.get_cookie(COOKIE)
    assert saved is not None
    token = csrf_token(admin_client)
    response = admin_client.post(
        "/users/otto/disable", data={"csrf_token": token, "confirm": "yes"}
    )
    assert response.status_code == 302
    assert "Disabled otto; 2 signed-in sessions ended." in admin_client.get("/users").text
    assert signed_out(laptop)
    assert signed_out(phone)
    replay = app.test_client()
    replay.set_cookie(COOKIE, saved.value)
    assert signed_out(replay)
    otto = [row for row in rows(sessions) if row.address and row.revoked_at is not None]
    assert len(otto) == 2
    assert not signed_out(admin_client)


def test_sign_out_everywhere(
    app: Flask,
    make_user: MakeUser,
    login: Login,
    csrf_token: CsrfToken,
    admin_client: FlaskClient,
) -> None:
    make_user("viewer", "vera")
    laptop = client_as(app, "vera", login)
    phone = client_as(app, "vera", login)
    saved = phone.get_cookie(COOKIE)
    assert saved is not None
    response = laptop.post("/logout/all", data={"csrf_token": csrf_token(laptop)})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    assert "Signed out everywhere: 2 sessions ended." in laptop.get("/login").text
    assert signed_out(laptop)
    assert signed_out(phone)
    replay = app.test_client()
    replay.set_cookie(COOKIE, saved.value)
    assert signed_out(replay)
    assert not signed_out(admin_client)  # other users keep their sessions
    # Signing in again works as usual.
    assert not signed_out(client_as(app, "vera", login))


def test_sign_out_everywhere_needs_the_csrf_token_and_a_session(
    client: FlaskClient, viewer_client: FlaskClient
) -> None:
    assert viewer_client.post("/logout/all").status_code == 400
    assert viewer_client.post("/logout/all", data={"csrf_token": "forged"}).status_code == 400
    assert not signed_out(viewer_client)
    assert client.get("/logout/all").status_code == 405


def test_signing_in_again_rotates_the_session(
    app: Flask,
    make_user: MakeUser,
    login: Login,
    csrf_token: CsrfToken,
    sessions: sessionmaker[Session],
) -> None:
    make_user("viewer", "vera")
    client = client_as(app, "vera", login)
    first, first_csrf = read_cookie(app, client), csrf_token(client)
    assert first is not None
    assert login(client, "vera").status_code == 302  # signing in while signed in
    second = read_cookie(app, client)
    assert second is not None
    assert second["sid"] != first["sid"]
    assert csrf_token(client) != first_csrf
    old, new = rows(sessions)
    assert old.id == session_id(first["sid"])
    assert old.revoked_at is not None
    assert new.revoked_at is None
    assert not signed_out(client)


# -- the account page ---------------------------------------------------------------------


def test_account_page_lists_the_users_sessions(
    app: Flask, make_user: MakeUser, login: Login, admin_client: FlaskClient
) -> None:
    make_user("viewer", "vera")
    laptop = client_as(app, "vera", login)
    phone = app.test_client()
    phone.environ_base["REMOTE_ADDR"] = "10.1.2.3"
    phone.environ_base["HTTP_USER_AGENT"] = "<b>PhoneBrowser</b>"
    assert login(phone, "vera").status_code == 302
    page = laptop.get("/account")
    assert page.status_code == 200
    assert page.text.count("<tr>") == 1 + 2  # the header and two sessions; not the admin's
    assert "this browser" in page.text
    assert "10.1.2.3" in page.text
    assert "&lt;b&gt;PhoneBrowser&lt;/b&gt;" in page.text
    assert 'action="/logout/all"' in page.text
    for token in (read_cookie(app, c) for c in (laptop, phone)):
        assert token is not None
        assert token["sid"] not in page.text
        assert session_id(token["sid"]) not in page.text
    assert 'href="/account"' in laptop.get("/").text  # the header links to it
    assert app.test_client().get("/account").status_code == 302


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_sessions_on_postgresql(
    app: Flask, make_user: MakeUser, login: Login, csrf_token: CsrfToken
) -> None:
    make_user("viewer", "vera")
    laptop = client_as(app, "vera", login)
    phone = client_as(app, "vera", login)
    saved = laptop.get_cookie(COOKIE)
    assert saved is not None
    laptop.post("/logout", data={"csrf_token": csrf_token(laptop)})
    replay = app.test_client()
    replay.set_cookie(COOKIE, saved.value)
    assert signed_out(replay)
    assert not signed_out(phone)
    phone.post("/logout/all", data={"csrf_token": csrf_token(phone)})
    assert signed_out(phone)
