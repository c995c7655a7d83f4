"""Web UI accounts, API tokens and whose a web session is: who may sign in, with which role.

Passwords are stored as werkzeug hashes (scrypt), tokens and session tokens as the SHA-256
hex of their value; none is ever stored or logged in clear. Roles are ordered:
viewer < operator < admin. Sessions are started and ended by ``engine.accounts.sessions``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from functools import cache

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import check_password_hash, generate_password_hash

from engine.accounts.sessions import MAX_SESSION_TOKEN_LENGTH, revoke_all_in, session_id
from engine.errors import UserError
from engine.store.accounts import ApiToken, User, WebSession
from engine.timeutil import to_dt

ROLES = ("viewer", "operator", "admin")
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # hashing megabytes per login attempt would be a cheap DoS
TOKEN_PREFIX = "asr_"  # noqa: S105 - a marker that says what a string is, not a secret
MAX_TOKEN_LENGTH = 256
# last_used_at (tokens) and last_seen_at (sessions) are for humans ("used today?"): one
# write a minute keeps busy clients from contending with the engine for SQLite's write lock.
LAST_USED_RESOLUTION = 60.0
# How new passwords are hashed (werkzeug's method string). A stored hash names its own
# method, so checking never reads this. Tests swap in a cheap one (tests/conftest.py).
PASSWORD_HASH_METHOD = "scrypt"  # noqa: S105 - a method name, not a password


@dataclass(frozen=True, slots=True)
class UserInfo:
    """An enabled account as the web UI sees it."""

    id: int
    name: str
    role: str


def has_role(user: UserInfo, needed: str) -> bool:
    """Whether the user's role is at least the needed one."""
    return ROLES.index(user.role) >= ROLES.index(_valid_role(needed))


def _valid_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


def _valid_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"password too long: at most {MAX_PASSWORD_LENGTH} characters")
    return password


def _info(user: User) -> UserInfo:
    return UserInfo(id=user.id, name=user.name, role=user.role)


def _now(at: float | None) -> float:
    return time.time() if at is None else at


@cache
def _dummy_hash(method: str) -> str:
    # Checked against when the user is unknown, so a miss costs as long as a hit.
    return generate_password_hash(secrets.token_urlsafe(16), method=method)


def _hash_password(password: str) -> str:
    return generate_password_hash(password, method=PASSWORD_HASH_METHOD)


def _by_name(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise UserError(f"no user named {name!r}")
    return user


def create_user(
    sessions: sessionmaker[Session], name: str, password: str, role: str, *, at: float | None = None
) -> UserInfo:
    """Add an account; UserError names what is wrong with the request."""
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(
            f"invalid user name {name!r}: 1-64 characters, a lowercase letter first, "
            "then lowercase letters, digits, '_', '.' or '-'"
        )
    _valid_password(password)
    _valid_role(role)
    user = User(
        name=name,
        password_hash=_hash_password(password),
        role=role,
        created_at=to_dt(_now(at)),
        disabled=False,
    )
    with sessions() as session:
        if session.scalar(select(User.id).where(User.name == name)) is not None:
            raise UserError(f"user {name!r} already exists")
        session.add(user)
        try:
            session.commit()
        except IntegrityError:  # created by someone else since the check above
            raise UserError(f"user {name!r} already exists") from None
        return _info(user)


def set_password(sessions: sessionmaker[Session], name: str, password: str) -> None:
    """Replace a user's password."""
    password_hash = _hash_password(_valid_password(password))
    with sessions.begin() as session:
        _by_name(session, name).password_hash = password_hash


def set_role(sessions: sessionmaker[Session], name: str, role: str) -> UserInfo:
    """Change a user's role."""
    with sessions.begin() as session:
        user = _by_name(session, name)
        user.role = _valid_role(role)
        return _info(user)


def disable_user(sessions: sessionmaker[Session], name: str, *, at: float | None = None) -> int:
    """Disable an account: its web sessions are revoked, its tokens stop working.

    Returns how many live web sessions were ended.
    """
    with sessions.begin() as session:
        user = _by_name(session, name)
        user.disabled = True
        # Revoked, not only refused while disabled: enabling again must not revive them.
        return revoke_all_in(session, user.id, to_dt(_now(at)))


def authenticate(sessions: sessionmaker[Session], name: str, password: str) -> UserInfo | None:
    """The enabled user with this name and password, or None (same cost either way)."""
    with sessions() as session:
        user = session.scalar(select(User).where(User.name == name))
    stored = user.password_hash if user is not None else _dummy_hash(PASSWORD_HASH_METHOD)
    # Every path runs one hash check, so timing does not tell which names exist.
    candidate = password if len(password) <= MAX_PASSWORD_LENGTH else ""
    if not check_password_hash(stored, candidate) or user is None or user.disabled:
        return None
    return _info(user)


def get_user(sessions: sessionmaker[Session], user_id: int) -> UserInfo | None:
    """The enabled user with this id, or None."""
    with sessions() as session:
        user = session.get(User, user_id)
    if user is None or user.disabled:
        return None
    return _info(user)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    sessions: sessionmaker[Session], user_name: str, token_name: str, *, at: float | None = None
) -> str:
    """Issue an API token for the user; the value is returned once and only its hash is stored."""
    token_name = token_name.strip()
    if not 1 <= len(token_name) <= 64:
        raise UserError("token name must be 1-64 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with sessions.begin() as session:
        user = _by_name(session, user_name)
        if user.disabled:
            raise UserError(f"user {user_name!r} is disabled")
        session.add(
            ApiToken(
                user_id=user.id,
                name=token_name,
                token_hash=_token_hash(token),
                created_at=to_dt(_now(at)),
            )
        )
    return token


def user_for_token(
    sessions: sessionmaker[Session], token: str, *, at: float | None = None
) -> UserInfo | None:
    """The enabled user a bearer token belongs to, or None; notes when the token was used."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        return None
    now = to_dt(_now(at))
    with sessions() as session:
        row = session.execute(
            select(ApiToken, User)
            .join(User, ApiToken.user_id == User.id)
            .where(ApiToken.token_hash == _token_hash(token))
        ).first()
        if row is None:
            return None
        api_token, user = row
        if user.disabled:
            return None
        last = api_token.last_used_at
        if last is None or (now - last).total_seconds() >= LAST_USED_RESOLUTION:
            api_token.last_used_at = now
            session.commit()
        return _info(user)


def user_for_session(
    sessions: sessionmaker[Session], token: str, *, at: float | None = None
) -> tuple[UserInfo, str] | None:
    """The enabled user and session id of a live web session token, or None; notes its use.

    Missing, revoked and expired sessions, and those of a disabled user, are all None.
    """
    if not token or len(token) > MAX_SESSION_TOKEN_LENGTH:
        return None
    now = to_dt(_now(at))
    with sessions() as session:
        row = session.execute(
            select(WebSession, User)
            .join(User, WebSession.user_id == User.id)
            .where(WebSession.id == session_id(token))
        ).first()
        if row is None:
            return None
        web_session, user = row
        if web_session.revoked_at is not None or web_session.expires_at <= now or user.disabled:
            return None
        if (now - web_session.last_seen_at).total_seconds() >= LAST_USED_RESOLUTION:
            web_session.last_seen_at = now
            session.commit()
        return _info(user), web_session.id
