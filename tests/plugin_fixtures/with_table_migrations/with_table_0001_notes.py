"""with_table: notes.

Revision ID: with_table_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "with_table_0001"
down_revision = None
branch_labels = ("with_table",)
depends_on = "kernel_0001"


def upgrade() -> None:
    op.create_table(
        "with_table_notes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("kernel_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("text", sa.String(280), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("with_table_notes")
