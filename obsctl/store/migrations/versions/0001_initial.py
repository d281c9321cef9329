"""State store: registrations, artifact status, audit trail, reports, meta.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every table."""
    op.create_table(
        "registrations",
        sa.Column("namespace", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("document", sa.LargeBinary, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False, server_default=""),
    )
    op.create_table(
        "artifact_status",
        sa.Column("sink", sa.String(100), primary_key=True),
        sa.Column("artifact_id", sa.String(400), primary_key=True),
        sa.Column("owner", sa.String(400), nullable=False, server_default=""),
        sa.Column("path", sa.String(1000), nullable=False, server_default=""),
        sa.Column("action", sa.String(20), nullable=False, server_default=""),
        sa.Column("state", sa.String(30), nullable=False),
        sa.Column("desired_digest", sa.String(64), nullable=False, server_default=""),
        sa.Column("applied_digest", sa.String(64), nullable=False, server_default=""),
        sa.Column("drifted", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("error_class", sa.String(20), nullable=False, server_default=""),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_retry_at", sa.Float, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("target", sa.String(400), nullable=False, server_default=""),
        sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("ix_audit_at", "audit", ["at"])
    op.create_table(
        "reports",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    """Drop every table."""
    for name in ("meta", "reports", "audit", "artifact_status", "registrations"):
        op.drop_table(name)
