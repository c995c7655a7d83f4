"""The notification outbox's table: one row per notice per channel, written with the
escalation (before any network call) and delivered by engine/notify/deliver.py.

Kept beside models.py (same ``Base``) because that module is at its size limit. The row
holds no secret: the channel's URL or key is read from the environment when delivering.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.store.models import Base


class NotificationRow(Base):
    """A notice (trigger, resolve) for one channel: pending until sent, or failed for good."""

    __tablename__ = "notifications"
    __table_args__ = (
        # One trigger and one resolve per incident and channel: enqueueing is idempotent.
        UniqueConstraint("incident_id", "channel", "event", name="uq_notifications_once"),
        # The worker's query: pending rows that are due, oldest first.
        Index("ix_notifications_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    channel: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(16))  # trigger | resolve
    payload: Mapped[dict[str, Any]]  # the notice, channel-neutral, without secrets
    status: Mapped[str] = mapped_column(String(16))  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
