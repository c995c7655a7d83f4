"""Indexes for the incident list's sorts by opening time and by kind, paged by (column, id).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_incidents_opened_id", "incidents", ["opened_at", "id"])
    op.create_index("ix_incidents_kind_id", "incidents", ["kind", "id"])


def downgrade() -> None:
    op.drop_index("ix_incidents_kind_id", table_name="incidents")
    op.drop_index("ix_incidents_opened_id", table_name="incidents")
