"""The tables behind several engine replicas on one PostgreSQL store.

``replicas``: each engine process's heartbeat, for liveness, the hosts' fair shares and
/healthz. ``host_leases``: which replica watches and remediates each host. ``run_leases``:
who runs a playbook on a host right now (an engine's run or one by hand), so that two runs
never overlap on one host across machines. Leases expire unless their holder renews them;
a run lease also holds until its run's own deadline, since a killed holder may leave its
``ansible-playbook`` running. Kept beside models.py (same ``Base``), which is at its size
limit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.store.models import Base


class ReplicaRow(Base):
    """One engine replica: alive while its heartbeat is younger than the lease TTL."""

    __tablename__ = "replicas"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    hosts: Mapped[int] = mapped_column(default=0)  # host leases held at the last heartbeat
    run_leases: Mapped[int] = mapped_column(default=0)  # run leases held at the last heartbeat
    ttl: Mapped[float] = mapped_column(default=30.0)  # seconds: its leases' lifetime


class HostLeaseRow(Base):
    """The replica that watches one host, until ``expires_at`` unless it renews."""

    __tablename__ = "host_leases"
    __table_args__ = (Index("ix_host_leases_replica", "replica"),)

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    replica: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class RunLeaseRow(Base):
    """A playbook run on one host: free once both its renewal and its run's deadline passed."""

    __tablename__ = "run_leases"
    __table_args__ = (Index("ix_run_leases_owner", "owner"),)

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    owner: Mapped[str] = mapped_column(String(160))  # the process that renews it
    holder: Mapped[str] = mapped_column(Text)  # what runs: "engine run <ident>", "manual run ..."
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]  # renewed by the owner's heartbeat
    hold_until: Mapped[datetime]  # the run's own deadline: its playbook may outlive its owner
