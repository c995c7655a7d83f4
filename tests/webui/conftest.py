"""Fixtures for web UI tests: an app on a store of its own, users of each role, signed-in clients.

- ``app``: ``create_app(TEST_CONFIG, settings=settings)`` on a migrated SQLite file in the
  test's data dir (a copy of a template migrated once). For PostgreSQL, parametrize
  ``database_url`` indirectly:
  ``@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)``.
- ``client``: a signed-out test client. ``sessions``: the app's session factory.
- ``make_user(role, name=None, password=PASSWORD)``: a user in the store (a UserInfo).
- ``csrf_token(client)``: the client's session CSRF token, read from a page like a browser.
- ``login(client, name, password=PASSWORD, next=None)``: POST /login (not followed).
- ``signed_in(role)``: a new client signed in as a new user of that role; ``viewer_client``,
  ``operator_client`` and ``admin_client`` are the usual ones (users named after the role).
- ``read_cookie(app, client)``: what the client's signed session cookie holds (or None);
  ``expire_sessions(sessions)``: every web session past its end, as 12 hours later.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from engine.accounts.users import UserInfo, create_user
from engine.components import Components
from engine.settings import Settings, load_settings
from engine.store.accounts import WebSession
from engine.timeutil import to_dt
from tests.fixtures.ansible import load_inventory_once
from tests.fixtures.postgres import own_database
from tests.fixtures.store import migrated_sqlite
from webui import create_app
from webui.dashboard import INVENTORY_KEY, InventoryCache

PASSWORD = "correct horse battery staple"
TEST_CONFIG = {"TESTING": True, "SECRET_KEY": "test-secret-key-" + "x" * 32}
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')

MakeUser = Callable[..., UserInfo]
Login = Callable[..., TestResponse]
COOKIE = "autosre_session"


def read_cookie(app: Flask, client: FlaskClient) -> dict[str, Any] | None:
    """The contents of the client's session cookie, checked with the app's key."""
    found = client.get_cookie(COOKIE)
    if found is None:
        return None
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    assert serializer is not None
    contents: dict[str, Any] = serializer.loads(found.value)
    return contents


def expire_sessions(sessions: sessionmaker[Session]) -> None:
    """Put every web session past its end, as if its 12 hours were up."""
    with sessions.begin() as session:
        session.execute(update(WebSession).values(expires_at=to_dt(time.time() - 1)))


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated store: SQLite in the test's data dir; with param "postgresql", a database
    of its own (copies of the session's migrated templates)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield migrated_sqlite(tmp_path / "data" / "autosre.db")
        return
    with own_database(request.getfixturevalue("postgres_template"), "w") as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for a temporary data dir and database, from an explicit environment."""
    return load_settings(
        {"AUTOSRE_DATA_DIR": str(tmp_path / "data"), "AUTOSRE_DATABASE_URL": database_url}
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    # The engine's parts with the inventory parsed once per session, not once per test.
    components = Components(settings, inventory=load_inventory_once(settings.inventory))
    application = create_app(TEST_CONFIG, components=components)
    # The dashboard's hosts: the inventory parsed once per session, not once per test.
    application.extensions[INVENTORY_KEY] = InventoryCache(
        settings.inventory, loader=load_inventory_once
    )
    yield application
    application.extensions["autosre"].kw["bind"].dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def sessions(app: Flask) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = app.extensions["autosre"]
    return factory


@pytest.fixture
def make_user(sessions: sessionmaker[Session]) -> MakeUser:
    """Create a user: ``make_user("operator")`` or ``make_user("admin", "ada", "pw...")``."""
    numbers = itertools.count(1)

    def make(role: str = "viewer", name: str | None = None, password: str = PASSWORD) -> UserInfo:
        return create_user(sessions, name or f"{role}{next(numbers)}", password, role)

    return make


@pytest.fixture
def csrf_token() -> Callable[[FlaskClient], str]:
    """The CSRF token of the client's session, as a page's <meta name="csrf-token"> shows it."""

    def read(client: FlaskClient) -> str:
        # Signed in, the account page; signed out, the sign-in page it sends you to. Not the
        # dashboard: it spawns ansible-inventory (about 0.5 s) to list the hosts.
        page = client.get("/account", follow_redirects=True)
        found = CSRF_META.search(page.text)
        assert found, page.text
        return found.group(1)

    return read


@pytest.fixture
def login(csrf_token: Callable[[FlaskClient], str]) -> Login:
    """Sign the client in through the form; returns the (unfollowed) response."""

    def post(
        client: FlaskClient, name: str, password: str = PASSWORD, next: str | None = None
    ) -> TestResponse:
        data = {"name": name, "password": password, "csrf_token": csrf_token(client)}
        if next is not None:
            data["next"] = next
        return client.post("/login", data=data)

    return post


@pytest.fixture
def signed_in(app: Flask, make_user: MakeUser, login: Login) -> Callable[..., FlaskClient]:
    """A new client signed in as a new user: ``signed_in("operator", name="otto")``."""

    def sign_in(role: str, name: str | None = None) -> FlaskClient:
        user = make_user(role, name)
        client = app.test_client()
        response = login(client, user.name)
        assert response.status_code == 302, response.text
        return client

    return sign_in


@pytest.fixture
def viewer_client(signed_in: Callable[..., FlaskClient]) -> FlaskClient:
    return signed_in("viewer", "viewer")


@pytest.fixture
def operator_client(signed_in: Callable[..., FlaskClient]) -> FlaskClient:
    return signed_in("operator", "operator")


@pytest.fixture
def admin_client(signed_in: Callable[..., FlaskClient]) -> FlaskClient:
    return signed_in("admin", "admin")
