"""Incidents handled by people: who acknowledged one and when, who it is assigned to, and
who resolved it by hand (the note is in its summary and its timeline).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns only: existing incidents were never acknowledged, assigned or resolved
    # by a person, and adding them is a cheap ALTER on both SQLite and PostgreSQL.
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("acknowledged_by", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("assigned_to", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("resolved_by", sa.String(length=255), nullable=True))
    # "My incidents": the lists will filter on the assignee.
    op.create_index("ix_incidents_assigned_to", "incidents", ["assigned_to"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_incidents_assigned_to", table_name="incidents")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("resolved_by")
        batch_op.drop_column("assigned_to")
        batch_op.drop_column("acknowledged_by")
        batch_op.drop_column("acknowledged_at")
