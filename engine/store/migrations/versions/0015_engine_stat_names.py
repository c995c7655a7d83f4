"""Stat names hold "<stat>@<replica>": a replica id may be 100 characters, so 64 was too short
(PostgreSQL refused the live view's write of a long AUTOSRE_REPLICA_ID).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("engine_stats", schema=None) as batch_op:
        batch_op.alter_column(
            "name", existing_type=sa.String(length=64), type_=sa.String(length=160)
        )


def downgrade() -> None:
    # Rows longer than 64 characters would not fit: a replica's stats are rewritten at its
    # next tick, so they are dropped rather than cut.
    op.execute(sa.text("DELETE FROM engine_stats WHERE length(name) > 64"))
    with op.batch_alter_table("engine_stats", schema=None) as batch_op:
        batch_op.alter_column(
            "name", existing_type=sa.String(length=160), type_=sa.String(length=64)
        )
