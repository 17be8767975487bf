"""Kernel: stored files, for the database media backend.

Revision ID: kernel_0003
Revises: kernel_0002

A file is one ``kernel_stored_files`` row and its bytes in fixed-size
``kernel_stored_file_chunks``: a byte-range read (a video seeking) loads only
the chunks it needs, and an upload never sits in memory whole. A file's row has
no ``key`` until its last chunk is written, so a half-written upload is never
served; such rows left behind by a crash are swept by the backend.
"""

import sqlalchemy as sa
from alembic import op

revision = "kernel_0003"
down_revision = "kernel_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kernel_stored_files",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(400), nullable=True, unique=True),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "kernel_stored_file_chunks",
        sa.Column("file_id", sa.Integer(), sa.ForeignKey("kernel_stored_files.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("kernel_stored_file_chunks")
    op.drop_table("kernel_stored_files")
