"""bad_migration: fails.

Revision ID: bad_migration_0001
Revises:
"""

from alembic import op

revision = "bad_migration_0001"
down_revision = None
branch_labels = ("bad_migration",)
depends_on = "kernel_0001"


def upgrade() -> None:
    op.execute("SELECT * FROM no_such_table_anywhere")


def downgrade() -> None:
    pass
