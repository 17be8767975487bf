"""Kernel: the deployment's identity.

Revision ID: kernel_0004
Revises: kernel_0003

One row naming this deployment with a random id, made once by this
migration. Every process that reaches the database reads the same id,
whatever URL it reaches it by, and names its Redis channels after it.
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "kernel_0004"
down_revision = "kernel_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "kernel_deployment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "deployment_id": uuid.uuid4().hex, "created_at": datetime.now(UTC).replace(tzinfo=None)}])


def downgrade() -> None:
    op.drop_table("kernel_deployment")
