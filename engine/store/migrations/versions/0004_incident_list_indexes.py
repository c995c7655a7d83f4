"""Indexes for newest-first incident pages filtered by status or host.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_incidents_status_id", "incidents", ["status", "id"], unique=False)
    op.create_index("ix_incidents_host_id", "incidents", ["host", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_incidents_host_id", table_name="incidents")
    op.drop_index("ix_incidents_status_id", table_name="incidents")
