"""The engine replicas as their heartbeats say, for /healthz and /metrics: each one's hosts
and run leases, whether it is alive. Counts only: never which hosts."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.store.leases import ReplicaRow


class ReplicaView(BaseModel):
    """One replica: alive while its heartbeat is younger than its lease TTL."""

    id: str
    alive: bool
    started_at: datetime
    heartbeat_at: datetime
    heartbeat_age_seconds: float
    hosts: int  # host leases it held at its last heartbeat
    run_leases: int  # playbook runs (its own) holding hosts at its last heartbeat
    lease_ttl_seconds: float


def read_replicas(sessions: sessionmaker[Session], *, now: datetime) -> list[ReplicaView]:
    """Every replica that beat within the last day, by name."""
    with sessions() as session:
        rows = session.scalars(select(ReplicaRow).order_by(ReplicaRow.id)).all()
    views = []
    for row in rows:
        age = max(0.0, (now - row.heartbeat_at).total_seconds())
        views.append(
            ReplicaView(
                id=row.id,
                alive=age <= row.ttl,
                started_at=row.started_at,
                heartbeat_at=row.heartbeat_at,
                heartbeat_age_seconds=round(age, 3),
                hosts=row.hosts,
                run_leases=row.run_leases,
                lease_ttl_seconds=row.ttl,
            )
        )
    return views
