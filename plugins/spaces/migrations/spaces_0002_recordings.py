"""spaces: recordings listed from the database, wherever their files are stored.

Revision ID: spaces_0002
Revises: spaces_0001

A take is written on the disk of the process that mixes its Space, then stored
on the deployment's media backend and recorded here, so that every process of
every host lists the same takes. Takes made before this revision are recorded
the first time their Space's takes are listed (plugins/spaces/recordings.py).
"""

import sqlalchemy as sa
from alembic import op

revision = "spaces_0002"
down_revision = "spaces_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spaces_recordings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("space_id", sa.Integer(), sa.ForeignKey("spaces_spaces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("space_id", "name", name="uq_spaces_recordings_space_name"),
    )


def downgrade() -> None:
    op.drop_table("spaces_recordings")
