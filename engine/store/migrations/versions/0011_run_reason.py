"""Runs by hand say why: the reason a person gave and an optional ticket reference.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns only: the engine's runs (and every run so far) have no reason, and
    # adding them is a cheap ALTER on both SQLite and PostgreSQL.
    with op.batch_alter_table("playbook_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("ticket", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("playbook_runs", schema=None) as batch_op:
        batch_op.drop_column("ticket")
        batch_op.drop_column("reason")
