"""Web sessions in the store on both real backends: start, look up, revoke one or all, expire.

Store fixtures (``store_url``, ``sessions``) are in tests/engine/conftest.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts.sessions import (
    create_session,
    list_sessions,
    revoke_all_sessions,
    revoke_session,
    session_id,
)
from engine.accounts.users import create_user, disable_user, user_for_session
from engine.store.accounts import User, WebSession

PASSWORD = "correct horse battery staple"
T0 = 1_700_000_000.0
HOURS_12 = 12 * 3600.0


def stored(sessions: sessionmaker[Session]) -> list[WebSession]:
    with sessions() as session:
        return list(session.scalars(select(WebSession).order_by(WebSession.created_at)))


def test_a_session_is_stored_as_the_hash_of_its_token(sessions: sessionmaker[Session]) -> None:
    user = create_user(sessions, "alice", PASSWORD, "operator")
    token = create_session(
        sessions, user.id, lifetime=HOURS_12, address="192.0.2.1", user_agent="UA " * 100, at=T0
    )
    assert len(token) >= 40
    (row,) = stored(sessions)
    assert row.id == session_id(token)
    assert token not in (row.id, row.address, row.user_agent)
    assert row.created_at == row.last_seen_at == datetime.fromtimestamp(T0, tz=UTC)
    assert row.expires_at == datetime.fromtimestamp(T0 + HOURS_12, tz=UTC)
    assert row.revoked_at is None
    assert len(row.user_agent) == 200
    assert user_for_session(sessions, token, at=T0 + 1) == (user, row.id)
    assert create_session(sessions, user.id, lifetime=HOURS_12, at=T0) != token


def test_unknown_and_malformed_tokens(sessions: sessionmaker[Session]) -> None:
    user = create_user(sessions, "alice", PASSWORD, "viewer")
    token = create_session(sessions, user.id, lifetime=HOURS_12, at=T0)
    for other in ("", "x", token + "x", session_id(token), "a" * 10_000):
        assert user_for_session(sessions, other, at=T0) is None
    revoke_session(sessions, "a" * 10_000)  # no error, nothing revoked
    assert user_for_session(sessions, token, at=T0) is not None


def test_the_lifetime_is_absolute_from_sign_in(sessions: sessionmaker[Session]) -> None:
    user = create_user(sessions, "alice", PASSWORD, "viewer")
    token = create_session(sessions, user.id, lifetime=HOURS_12, at=T0)
    for at in range(int(T0), int(T0 + HOURS_12), 3600):  # busy all day: never extended
        assert user_for_session(sessions, token, at=at) is not None
    assert user_for_session(sessions, token, at=T0 + HOURS_12 - 1) is not None
    assert user_for_session(sessions, token, at=T0 + HOURS_12) is None


def test_last_seen_is_noted_at_most_once_a_minute(sessions: sessionmaker[Session]) -> None:
    user = create_user(sessions, "alice", PASSWORD, "viewer")
    token = create_session(sessions, user.id, lifetime=HOURS_12, at=T0)

    def last_seen() -> datetime:
        return stored(sessions)[0].last_seen_at

    user_for_session(sessions, token, at=T0 + 30)
    assert last_seen() == datetime.fromtimestamp(T0, tz=UTC)
    user_for_session(sessions, token, at=T0 + 60)
    assert last_seen() == datetime.fromtimestamp(T0 + 60, tz=UTC)
    user_for_session(sessions, token, at=T0 + 119)
    assert last_seen() == datetime.fromtimestamp(T0 + 60, tz=UTC)


def test_revoke_one_session(sessions: sessionmaker[Session]) -> None:
    user = create_user(sessions, "alice", PASSWORD, "viewer")
    laptop = create_session(sessions, user.id, lifetime=HOURS_12, at=T0)
    phone = create_session(sessions, user.id, lifetime=HOURS_12, at=T0 + 1)
    revoke_session(sessions, laptop, at=T0 + 5)
    assert user_for_session(sessions, laptop, at=T0 + 6) is None
    assert user_for_session(sessions, phone, at=T0 + 6) is not None
    revoke_session(sessions, laptop, at=T0 + 9)  # twice is fine; the first time stays
    revoked = {row.id: row.revoked_at for row in stored(sessions)}
    assert revoked[session_id(laptop)] == datetime.fromtimestamp(T0 + 5, tz=UTC)
    assert revoked[session_id(phone)] is None


def test_revoke_all_sessions_of_one_user(sessions: sessionmaker[Session]) -> None:
    alice = create_user(sessions, "alice", PASSWORD, "viewer")
    bob = create_user(sessions, "bob", PASSWORD, "admin")
    mine = [create_session(sessions, alice.id, lifetime=HOURS_12, at=T0) for _ in range(3)]
    theirs = create_session(sessions, bob.id, lifetime=HOURS_12, at=T0)
    revoke_session(sessions, mine[0], at=T0 + 1)
    assert revoke_all_sessions(sessions, alice.id, at=T0 + 2) == 2  # the live ones
    assert all(user_for_session(sessions, t, at=T0 + 3) is None for t in mine)
    assert user_for_session(sessions, theirs, at=T0 + 3) == (bob, session_id(theirs))
    assert revoke_all_sessions(sessions, alice.id, at=T0 + 4) == 0


def test_disabling_revokes_and_enabling_would_not_revive(sessions: sessionmaker[Session]) -> None:
    alice = create_user(sessions, "alice", PASSWORD, "viewer")
    tokens = [create_session(sessions, alice.id, lifetime=HOURS_12, at=T0) for _ in range(2)]
    assert disable_user(sessions, "alice", at=T0 + 1) == 2
    assert all(user_for_session(sessions, t, at=T0 + 2) is None for t in tokens)
    assert all(row.revoked_at is not None for row in stored(sessions))
    with sessions.begin() as session:  # no command enables an account yet: by hand
        session.get_one(User, alice.id).disabled = False
    assert all(user_for_session(sessions, t, at=T0 + 3) is None for t in tokens)


def test_a_disabled_users_live_session_is_refused(sessions: sessionmaker[Session]) -> None:
    alice = create_user(sessions, "alice", PASSWORD, "viewer")
    token = create_session(sessions, alice.id, lifetime=HOURS_12, at=T0)
    with sessions.begin() as session:  # disabled without revoking, as an older engine did
        session.get_one(User, alice.id).disabled = True
    assert user_for_session(sessions, token, at=T0 + 1) is None


def test_list_sessions_and_pruning(sessions: sessionmaker[Session]) -> None:
    alice = create_user(sessions, "alice", PASSWORD, "viewer")
    bob = create_user(sessions, "bob", PASSWORD, "viewer")
    old = create_session(sessions, alice.id, lifetime=60, at=T0)
    ended = create_session(sessions, alice.id, lifetime=HOURS_12, at=T0 + 1)
    live = create_session(
        sessions, alice.id, lifetime=HOURS_12, address="10.0.0.1", user_agent="Firefox", at=T0 + 2
    )
    create_session(sessions, bob.id, lifetime=HOURS_12, at=T0 + 2)
    revoke_session(sessions, ended, at=T0 + 3)
    user_for_session(sessions, live, at=T0 + 100)
    (info,) = list_sessions(sessions, alice.id, at=T0 + 100)
    assert info.id == session_id(live)
    assert (info.address, info.user_agent) == ("10.0.0.1", "Firefox")
    assert info.last_seen_at == datetime.fromtimestamp(T0 + 100, tz=UTC)
    # The next sign-in clears sessions past their end (the 60 s one).
    assert session_id(old) in {row.id for row in stored(sessions)}
    create_session(sessions, bob.id, lifetime=HOURS_12, at=T0 + 200)
    assert session_id(old) not in {row.id for row in stored(sessions)}
    assert len(stored(sessions)) == 4
