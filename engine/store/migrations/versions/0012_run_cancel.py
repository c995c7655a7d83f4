"""A person may cancel a run in flight: who asked and when, read by whichever process runs it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The request lives in the store, not in a process: the run may be the engine's (another
    # process, another replica) or a run by hand in the web UI's own process.
    with op.batch_alter_table("playbook_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancel_requested_at", sa.DateTime(timezone=True)))
        batch_op.add_column(sa.Column("cancel_requested_by", sa.String(length=255)))


def downgrade() -> None:
    with op.batch_alter_table("playbook_runs", schema=None) as batch_op:
        batch_op.drop_column("cancel_requested_by")
        batch_op.drop_column("cancel_requested_at")
