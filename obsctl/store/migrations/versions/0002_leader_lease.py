"""Leader lease: one row per lock key, renewed by the leader, taken over when it expires.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the lease table."""
    op.create_table(
        "leader_lease",
        sa.Column("lock_key", sa.BigInteger, primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("backend_pid", sa.Integer, nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),  # database clock, epoch seconds
    )


def downgrade() -> None:
    """Drop the lease table."""
    op.drop_table("leader_lease")
