"""Web UI accounts as the admin sees them: role, state and how many API tokens each has."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.read.models import User
from engine.store import accounts as store


def list_users(sessions: sessionmaker[Session]) -> list[User]:
    """Every account, by name."""
    tokens = (
        select(func.count(store.ApiToken.id))
        .where(store.ApiToken.user_id == store.User.id)
        .correlate(store.User)
        .scalar_subquery()
    )
    with sessions() as session:
        rows = session.execute(select(store.User, tokens).order_by(store.User.name)).all()
    return [User.from_row(user, tokens=count) for user, count in rows]
