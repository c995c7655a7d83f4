"""Shared fixtures: real services started on free 127.0.0.1 ports, stopped by pid;
stores migrated once per session and copied per test; a cheap password hash; each
inventory listed once per test process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

from engine import components
from engine.accounts import users
from tests.fixtures.ansible import load_inventory_once

pytest_plugins = [
    "tests.fixtures.fake_awx",
    "tests.fixtures.fake_llm",
    "tests.fixtures.nginx",
    "tests.fixtures.postgres",
    "tests.fixtures.prometheus",
    "tests.fixtures.receivers",
    "tests.fixtures.tcp_proxy",
    "tests.lab.fixture",
]

# Timing belongs in bench/, not in tests: on a shared machine a slow example is no failure.
settings.register_profile("autosre", deadline=None)
settings.load_profile("autosre")

# A few pbkdf2 rounds instead of scrypt (~0.2 s of CPU per hash, for every test user and
# every sign-in). tests/engine/test_passwords.py checks the real method.
TEST_PASSWORD_HASH = "pbkdf2:sha256:1000"
PRODUCTION_PASSWORD_HASH = users.PASSWORD_HASH_METHOD


@pytest.fixture(autouse=True, scope="session")
def cheap_password_hash() -> Iterator[None]:
    """Every test hashes new passwords with TEST_PASSWORD_HASH."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(users, "PASSWORD_HASH_METHOD", TEST_PASSWORD_HASH)
        yield


@pytest.fixture(autouse=True, scope="session")
def inventory_listed_once() -> Iterator[None]:
    """The engine's components read each inventory content once per test process (the real
    ansible-inventory costs about 0.5 s of CPU a call); tests/engine/test_inventory.py
    calls the loader itself."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(components, "load_inventory", load_inventory_once)
        yield
