"""Fleet-wide sign-in limits: failures are counted in the store, per address, per name and both.

Each attack here got through while failures were kept in one process's memory, per
(address, name) only.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts import users as users_module
from engine.accounts.login_limits import LoginLimiter, LoginLimits
from engine.settings import Settings
from engine.store.accounts import LoginFailure
from tests.webui.conftest import PASSWORD, TEST_CONFIG, Login, MakeUser
from webui import create_app
from webui.security import LIMITER

WRONG = "Summer2026!Summer"  # the one password sprayed over every name


@pytest.fixture
def second_app(settings: Settings) -> Iterator[Flask]:
    """Another app on the same store, as another process or replica would be."""
    other = create_app(TEST_CONFIG, settings=settings)
    yield other
    other.extensions["autosre"].kw["bind"].dispose()


def failures(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count(LoginFailure.id))) or 0


def test_spraying_one_password_over_many_names_is_refused(
    client: FlaskClient, make_user: MakeUser, login: Login
) -> None:
    make_user("viewer", "vera")
    statuses = [login(client, f"user{n}", WRONG).status_code for n in range(25)]
    assert statuses == [200] * 20 + [429] * 5
    refused = login(client, "someone-new", WRONG)
    assert refused.status_code == 429
    assert "Too many failed sign-ins from your address." in refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 300
    # Even a right password from this address waits; another address may sign in.
    assert login(client, "vera").status_code == 429
    elsewhere = client.application.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "10.0.0.7"
    assert login(elsewhere, "vera").status_code == 302


def test_guessing_one_name_from_many_addresses_is_refused(
    app: Flask, make_user: MakeUser, login: Login
) -> None:
    make_user("admin", "ada")
    for n in range(10):
        guesser = app.test_client()
        guesser.environ_base["REMOTE_ADDR"] = f"198.51.100.{n}"
        assert login(guesser, "ada", f"guess number {n}").status_code == 200
    fresh = app.test_client()
    fresh.environ_base["REMOTE_ADDR"] = "203.0.113.1"
    refused = login(fresh, "ada", "guess number 11")
    assert refused.status_code == 429
    assert "Too many failed sign-ins for this name." in refused.text
    assert login(fresh, "bob", "guess number 11").status_code == 200  # other names are open


def test_two_app_instances_share_the_count(
    app: Flask, second_app: Flask, make_user: MakeUser, login: Login
) -> None:
    make_user("viewer", "vera")
    one, two = app.test_client(), second_app.test_client()
    for client in (one, two, one, two, one):
        assert login(client, "vera", WRONG).status_code == 200
    assert login(two, "vera").status_code == 429
    assert login(one, "vera").status_code == 429


def test_the_limit_survives_a_restart(
    settings: Settings, make_user: MakeUser, login: Login
) -> None:
    make_user("viewer", "vera")
    before = create_app(TEST_CONFIG, settings=settings)
    try:
        for _ in range(5):
            assert login(before.test_client(), "vera", WRONG).status_code == 200
    finally:
        before.extensions["autosre"].kw["bind"].dispose()
    after = create_app(TEST_CONFIG, settings=settings)
    try:
        assert login(after.test_client(), "vera").status_code == 429
    finally:
        after.extensions["autosre"].kw["bind"].dispose()


def test_a_refused_attempt_does_not_check_the_password(
    client: FlaskClient,
    make_user: MakeUser,
    login: Login,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_user("viewer", "vera")
    for _ in range(5):
        login(client, "vera", WRONG)
    checked: list[str] = []
    real = users_module.check_password_hash

    def spy(stored: str, password: str) -> bool:
        checked.append(password)
        return real(stored, password)

    monkeypatch.setattr(users_module, "check_password_hash", spy)
    refused = login(client, "vera", PASSWORD)  # the right password
    assert refused.status_code == 429
    assert checked == []
    assert failures(sessions) == 5  # and a refused attempt is not counted as a failure


def test_success_clears_only_this_address_and_name(
    app: Flask, make_user: MakeUser, login: Login, sessions: sessionmaker[Session]
) -> None:
    make_user("viewer", "vera")
    here, there = app.test_client(), app.test_client()
    there.environ_base["REMOTE_ADDR"] = "10.0.0.9"
    for _ in range(3):
        login(here, "vera", WRONG)
        login(there, "vera", WRONG)
    assert login(here, "vera").status_code == 302
    with sessions() as session:
        left = session.scalars(select(LoginFailure.address)).all()
    assert left == ["10.0.0.9"] * 3


def test_old_failures_are_pruned_and_stop_counting(
    app: Flask, client: FlaskClient, login: Login, sessions: sessionmaker[Session]
) -> None:
    now = [1_000_000.0]
    app.extensions[LIMITER] = LoginLimiter(sessions, LoginLimits(), clock=lambda: now[0])
    for n in range(20):
        login(client, f"user{n}", WRONG)
    assert login(client, "user99", WRONG).status_code == 429
    now[0] += 300
    assert login(client, "user99", WRONG).status_code == 200
    assert failures(sessions) == 1  # the 20 old rows went with that failure


def test_limits_come_from_the_config(settings: Settings, make_user: MakeUser, login: Login) -> None:
    config = {
        **TEST_CONFIG,
        "LOGIN_MAX_FAILURES": 2,
        "LOGIN_MAX_FAILURES_PER_ADDRESS": 3,
        "LOGIN_MAX_FAILURES_PER_NAME": 4,
        "LOGIN_FAILURE_WINDOW": 60.0,
    }
    app = create_app(config, settings=settings)
    try:
        limiter: LoginLimiter = app.extensions[LIMITER]
        assert limiter.limits == LoginLimits(2, 3, 4, 60.0)
        client = app.test_client()
        make_user("viewer", "vera")
        for _ in range(2):
            login(client, "vera", WRONG)
        refused = login(client, "vera")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    finally:
        app.extensions["autosre"].kw["bind"].dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_spraying_and_sharing_on_postgresql(
    app: Flask, second_app: Flask, make_user: MakeUser, login: Login, settings: Settings
) -> None:
    make_user("viewer", "vera")
    one, two = app.test_client(), second_app.test_client()
    for n in range(20):
        assert login(one if n % 2 else two, f"user{n}", WRONG).status_code == 200
    assert login(one, "vera").status_code == 429
    assert login(two, "vera").status_code == 429
    assert settings.database_url.startswith("postgresql")
