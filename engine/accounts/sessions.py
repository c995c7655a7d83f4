"""Web UI sessions kept in the store, so signing out, "sign out everywhere" and disabling revoke.

The browser holds a random token (inside Flask's signed cookie); the store holds only its
SHA-256 hex, so neither a copy of the database nor the signing key yields a usable session.
A session lasts a fixed time from sign-in and is never extended. Which user a token belongs
to is asked of ``engine.accounts.users.user_for_session``.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.store.accounts import WebSession
from engine.timeutil import to_dt

MAX_SESSION_TOKEN_LENGTH = 128  # a cookie's value is the client's: hash nothing huge
MAX_ADDRESS_LENGTH = 64
MAX_USER_AGENT_LENGTH = 200


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One live session of a user, for their list of where they are signed in."""

    id: str  # the SHA-256 hex of the token: it cannot be turned back into a session
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    address: str
    user_agent: str


def session_id(token: str) -> str:
    """The stored id of a session token: its SHA-256 hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def _now(at: float | None) -> datetime:
    return to_dt(time.time() if at is None else at)


def create_session(
    sessions: sessionmaker[Session],
    user_id: int,
    *,
    lifetime: float,
    address: str = "",
    user_agent: str = "",
    at: float | None = None,
) -> str:
    """Start a session for the user; returns its token (only the hash is stored)."""
    token = secrets.token_urlsafe(32)
    now = _now(at)
    with sessions.begin() as session:
        # Sign-ins are rare: clearing sessions past their end here keeps the table small.
        session.execute(delete(WebSession).where(WebSession.expires_at <= now))
        session.add(
            WebSession(
                id=session_id(token),
                user_id=user_id,
                created_at=now,
                last_seen_at=now,
                expires_at=to_dt(now.timestamp() + lifetime),
                revoked_at=None,
                address=address[:MAX_ADDRESS_LENGTH],
                user_agent=user_agent[:MAX_USER_AGENT_LENGTH],
            )
        )
    return token


def revoke_session(sessions: sessionmaker[Session], token: str, *, at: float | None = None) -> None:
    """End one session (sign out); an unknown or ended token is no error."""
    if len(token) > MAX_SESSION_TOKEN_LENGTH:
        return
    with sessions.begin() as session:
        session.execute(
            update(WebSession)
            .where(WebSession.id == session_id(token), WebSession.revoked_at.is_(None))
            .values(revoked_at=_now(at))
        )


def revoke_all_in(session: Session, user_id: int, now: datetime) -> int:
    """End every live session of the user inside the caller's transaction; how many ended."""
    result = session.execute(
        update(WebSession)
        .where(
            WebSession.user_id == user_id,
            WebSession.revoked_at.is_(None),
            WebSession.expires_at > now,
        )
        .values(revoked_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def revoke_all_sessions(
    sessions: sessionmaker[Session], user_id: int, *, at: float | None = None
) -> int:
    """End every session of the user ("sign out everywhere"); how many ended."""
    with sessions.begin() as session:
        return revoke_all_in(session, user_id, _now(at))


def list_sessions(
    sessions: sessionmaker[Session], user_id: int, *, at: float | None = None
) -> list[SessionInfo]:
    """The user's live sessions, the most recently used first."""
    now = _now(at)
    with sessions() as session:
        rows = session.scalars(
            select(WebSession)
            .where(
                WebSession.user_id == user_id,
                WebSession.revoked_at.is_(None),
                WebSession.expires_at > now,
            )
            .order_by(WebSession.last_seen_at.desc(), WebSession.created_at.desc())
        ).all()
    return [
        SessionInfo(
            id=row.id,
            created_at=row.created_at,
            last_seen_at=row.last_seen_at,
            expires_at=row.expires_at,
            address=row.address,
            user_agent=row.user_agent,
        )
        for row in rows
    ]
