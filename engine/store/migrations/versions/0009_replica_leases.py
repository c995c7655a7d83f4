"""Replicas and their leases: which replica watches each host, who runs on it now.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hosts", sa.Integer(), nullable=False),
        sa.Column("run_leases", sa.Integer(), nullable=False),
        sa.Column("ttl", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "host_leases",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("replica", sa.String(length=128), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("host"),
    )
    op.create_index("ix_host_leases_replica", "host_leases", ["replica"])
    op.create_table(
        "run_leases",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("owner", sa.String(length=160), nullable=False),
        sa.Column("holder", sa.Text(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hold_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("host"),
    )
    op.create_index("ix_run_leases_owner", "run_leases", ["owner"])


def downgrade() -> None:
    # Leases are live state, not history: dropping them loses nothing a restart won't rebuild.
    op.drop_index("ix_run_leases_owner", table_name="run_leases")
    op.drop_table("run_leases")
    op.drop_index("ix_host_leases_replica", table_name="host_leases")
    op.drop_table("host_leases")
    op.drop_table("replicas")
