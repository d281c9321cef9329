"""The state store's tables (SQLAlchemy Core). Migrations under migrations/ create exactly these."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Integer, LargeBinary, MetaData, String, Table, Text

metadata = MetaData()

registrations = Table(
    "registrations", metadata,
    Column("namespace", String(63), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("document", LargeBinary, nullable=False),  # the obsctl.dev/v1 document as YAML bytes
    Column("digest", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(200), nullable=False, server_default=""),
)

artifact_status = Table(
    "artifact_status", metadata,
    Column("sink", String(100), primary_key=True),
    Column("artifact_id", String(400), primary_key=True),
    Column("owner", String(400), nullable=False, server_default=""),
    Column("path", String(1000), nullable=False, server_default=""),
    Column("action", String(20), nullable=False, server_default=""),
    Column("state", String(30), nullable=False),
    Column("desired_digest", String(64), nullable=False, server_default=""),
    Column("applied_digest", String(64), nullable=False, server_default=""),
    Column("drifted", Boolean, nullable=False, server_default="0"),
    Column("error", Text, nullable=False, server_default=""),
    Column("error_class", String(20), nullable=False, server_default=""),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("next_retry_at", Float, nullable=True),
    Column("updated_at", Float, nullable=False),
)

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False, index=True),
    Column("actor", String(200), nullable=False),
    Column("action", String(60), nullable=False),
    Column("target", String(400), nullable=False, server_default=""),
    Column("detail", Text, nullable=False, server_default="{}"),  # JSON
)

reports = Table(
    "reports", metadata,
    Column("key", String(200), primary_key=True),
    Column("body", Text, nullable=False),  # JSON
    Column("updated_at", Float, nullable=False),
)

meta = Table(
    "meta", metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),  # JSON
)

leader_lease = Table(
    "leader_lease", metadata,
    Column("lock_key", BigInteger, primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("backend_pid", Integer, nullable=False),  # the holder's PostgreSQL session (gone: it died)
    Column("epoch", BigInteger, nullable=False),  # +1 on every change of holder
    Column("expires_at", Float, nullable=False),  # database clock, epoch seconds
)
