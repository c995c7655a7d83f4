"""The password hash production uses. Every other test hashes with a cheap stand-in
(tests/conftest.py); this one puts the real method back and checks it end to end."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts import users
from engine.accounts.users import authenticate, create_user, set_password
from engine.store.accounts import User
from tests.conftest import PRODUCTION_PASSWORD_HASH, TEST_PASSWORD_HASH

PASSWORD = "correct horse battery staple"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_production_hashes_with_scrypt_and_verifies(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert PRODUCTION_PASSWORD_HASH == "scrypt"  # what the module says before the tests swap it
    assert users.PASSWORD_HASH_METHOD == TEST_PASSWORD_HASH
    monkeypatch.setattr(users, "PASSWORD_HASH_METHOD", PRODUCTION_PASSWORD_HASH)

    alice = create_user(sessions, "alice", PASSWORD, "viewer")
    with sessions() as session:
        stored = session.get_one(User, alice.id).password_hash
    assert stored.startswith("scrypt:32768:8:1$"), stored  # werkzeug's default cost
    assert PASSWORD not in stored
    assert authenticate(sessions, "alice", PASSWORD) == alice
    assert authenticate(sessions, "alice", PASSWORD + "!") is None
    assert authenticate(sessions, "nobody", PASSWORD) is None  # checked against a scrypt dummy
    assert users._dummy_hash("scrypt").startswith("scrypt:")

    set_password(sessions, "alice", PASSWORD[::-1])
    assert authenticate(sessions, "alice", PASSWORD[::-1]) == alice
    assert authenticate(sessions, "alice", PASSWORD) is None
