"""The table of alert events pushed by Alertmanager: one row per alert per (start, status).

Written by the web UI's receiver (engine/record/alert_events.py), read and moved on by the
engine's inbox (engine/push/inbox.py) on its next tick: the two may be different processes.
Kept beside models.py (same ``Base``) because that module is at its size limit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.store.models import Base


class AlertEventRow(Base):
    """One alert as Alertmanager sent it, where it was routed, and what the engine made of it."""

    __tablename__ = "alert_events"
    __table_args__ = (
        # Alertmanager re-sends a group's alerts (group_interval, repeat_interval): the same
        # alert, started at the same moment, in the same status, is one row, counted again.
        UniqueConstraint("fingerprint", "starts_at", "status", name="uq_alert_events_once"),
        Index("ix_alert_events_outcome", "outcome"),  # the engine's question each tick
        Index("ix_alert_events_received_at", "received_at"),  # the receiver's rate limit
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # firing | resolved
    alertname: Mapped[str] = mapped_column(String(255))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    labels: Mapped[dict[str, Any]]
    host: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str | None] = mapped_column(String(32))
    # ignored (at receipt) | new | pending | joined | linked | hinted | unconfirmed | dropped
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    received_at: Mapped[datetime]
    last_received_at: Mapped[datetime]
    received: Mapped[int] = mapped_column(default=1)  # posts that carried it
    confirm_by: Mapped[datetime | None]  # pending: the engine's data must show it by then
    decided_at: Mapped[datetime | None]
