"""The tables of the people who sign in: users, their API tokens, web sessions and failed
sign-ins. Beside models.py (same ``Base``), which holds the pipeline's own tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.store.models import Base


class User(Base):
    """A person who may sign in to the web UI; the role bounds what they may do."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))  # viewer | operator | admin
    created_at: Mapped[datetime]
    disabled: Mapped[bool] = mapped_column(default=False)


class ApiToken(Base):
    """A bearer token for /api, stored only as the SHA-256 hex of its value."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]


class WebSession(Base):
    """A signed-in browser: the cookie holds a random token, the store only its SHA-256 hex."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]  # an absolute lifetime from sign-in, never extended
    revoked_at: Mapped[datetime | None]
    # For the user's own list of sessions: where and in what they signed in.
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(200), default="")


class LoginFailure(Base):
    """One failed sign-in, counted by address, by name and by both within a window."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_address_at", "address", "at"),
        Index("ix_login_failures_name_at", "name", "at"),
        Index("ix_login_failures_at", "at"),  # pruning rows older than the window
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    address: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
