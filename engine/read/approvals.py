"""Approvals: the queue a human works through, and single approvals as of now.

A pending approval past its expiry shows (and filters) as expired, as of the time asked,
whether or not the engine has marked it yet.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from engine.read.models import Approval
from engine.store.models import ApprovalRow
from engine.types import ApprovalStatus


def _at(now: float | None) -> datetime:
    return datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)


def approval_model(row: ApprovalRow, now: datetime) -> Approval:
    """The read model of one approval row as of ``now``."""
    status = row.status
    if status == ApprovalStatus.PENDING and row.expires_at <= now:
        status = ApprovalStatus.EXPIRED
    return Approval.from_row(row, status=status)


def list_approvals(
    sessions: sessionmaker[Session],
    *,
    status: str | None = ApprovalStatus.PENDING,
    limit: int = 50,
    now: float | None = None,
) -> list[Approval]:
    """Approvals in a status as of now (None: all); pending oldest first, others newest first."""
    at = _at(now)
    query = select(ApprovalRow).limit(limit)
    overdue = and_(ApprovalRow.status == ApprovalStatus.PENDING, ApprovalRow.expires_at <= at)
    if status == ApprovalStatus.PENDING:
        query = query.where(ApprovalRow.status == status, ApprovalRow.expires_at > at)
    elif status == ApprovalStatus.EXPIRED:
        query = query.where(or_(ApprovalRow.status == status, overdue))
    elif status is not None:
        query = query.where(ApprovalRow.status == status)
    if status == ApprovalStatus.PENDING:
        # The queue a human works through: the longest waiting first.
        query = query.order_by(ApprovalRow.requested_at, ApprovalRow.id)
    else:
        query = query.order_by(ApprovalRow.id.desc())
    with sessions() as session:
        return [approval_model(row, at) for row in session.scalars(query)]


def get_approval(
    sessions: sessionmaker[Session], approval_id: int, *, now: float | None = None
) -> Approval | None:
    """One approval as of now, or None if no such id."""
    with sessions() as session:
        row = session.get(ApprovalRow, approval_id)
        return None if row is None else approval_model(row, _at(now))
