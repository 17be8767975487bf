"""calls: each side's reconnect deadline, kept in the call row so that every process honours it.

Revision ID: calls_0002
Revises: calls_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "calls_0002"
down_revision = "calls_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("calls_calls", sa.Column("caller_grace_until", sa.DateTime(), nullable=True))
    op.add_column("calls_calls", sa.Column("callee_grace_until", sa.DateTime(), nullable=True))


def downgrade() -> None:
    # SQLite drops columns only by copying the table: batch mode does that there and plain ALTERs elsewhere.
    with op.batch_alter_table("calls_calls") as batch:
        batch.drop_column("callee_grace_until")
        batch.drop_column("caller_grace_until")
