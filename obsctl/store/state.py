"""The state store: registrations, artifact status (last applied digests and outcomes), the audit
trail, report snapshots and small meta values. SQLite by default, PostgreSQL for HA.

Migrations ship inside the package (obsctl/store/migrations) and run at start-up (`migrate()`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Text,
    cast,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from obsctl.errors import TemporaryError
from obsctl.model.status import ArtifactState, ArtifactStatus
from obsctl.store.schema import artifact_status, audit, meta, registrations, reports

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_REG_REVISION = "registrations_revision"


@dataclass(frozen=True)
class Registration:
    """One obsctl.dev/v1 document registered through the API."""

    namespace: str
    name: str
    document: bytes
    digest: str
    created_at: float
    updated_at: float
    updated_by: str


@dataclass(frozen=True)
class AuditEntry:
    """Who did what, when."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


def sqlite_path(url: str) -> Path | None:
    """The database file of a sqlite URL (None for other databases or in-memory)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


class StateStore:
    """State through SQLAlchemy 2. Every method is a short transaction; safe from several threads."""

    def __init__(self, url: str) -> None:
        self.url = url
        u = make_url(url)
        self.backend = u.get_backend_name()
        kwargs: dict[str, Any] = {"future": True}
        if self.backend == "sqlite":
            path = sqlite_path(url)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=5, max_overflow=5,
                          connect_args={"connect_timeout": 5})
        self.engine: Engine = create_engine(url, **kwargs)
        if self.backend == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)

    def file_identity(self) -> tuple[int, int] | None:
        """(device, inode) of the SQLite file; None for other databases, or when the file is gone."""
        path = sqlite_path(self.url)
        if path is None:
            return None
        try:
            st = path.stat()
        except OSError:
            return (0, 0)
        return (st.st_dev, st.st_ino)

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded default (always leader)."""
        return self.backend == "sqlite"

    def migrate(self) -> bool:
        """Bring the schema to the newest revision (idempotent; concurrent replicas serialise on PostgreSQL).

        True when the database was empty: a new install, or a state database that was lost.
        """
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self._begin() as conn:
            if self.backend == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7262616)")  # one migrator at a time
            fresh = not inspect(conn).has_table("alembic_version")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        return fresh

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise TemporaryError(f"state store: {exc.orig or exc}") from exc

    # -- registrations -----------------------------------------------------------------------

    def put_registration(self, namespace: str, name: str, document: bytes, actor: str,
                         detail: Mapping[str, Any] | None = None) -> bool:
        """Create or replace a registration; True when it was created. Bumps the revision.

        `detail` goes into the audit entry (for instance what catalog service it overrides)."""
        try:
            return self._put_registration(namespace, name, document, actor, detail or {})
        except IntegrityError:  # another replica created the same registration a moment ago
            return self._put_registration(namespace, name, document, actor, detail or {})

    def _put_registration(self, namespace: str, name: str, document: bytes, actor: str,
                          detail: Mapping[str, Any]) -> bool:
        now = time.time()
        digest = hashlib.sha256(document).hexdigest()
        with self._begin() as conn:
            row = conn.execute(select(registrations.c.digest).where(
                registrations.c.namespace == namespace, registrations.c.name == name)).first()
            if row is None:
                conn.execute(insert(registrations).values(namespace=namespace, name=name, document=document,
                                                          digest=digest, created_at=now, updated_at=now,
                                                          updated_by=actor))
            elif row.digest != digest:
                conn.execute(update(registrations).where(
                    registrations.c.namespace == namespace, registrations.c.name == name).values(
                    document=document, digest=digest, updated_at=now, updated_by=actor))
            if row is None or row.digest != digest:
                self._bump(conn)
            self._audit(conn, actor, "register" if row is None else "update", f"{namespace}/{name}",
                        {"digest": digest, "changed": row is None or row.digest != digest, **detail})
        return row is None

    def get_registration(self, namespace: str, name: str) -> Registration | None:
        """One registration or None."""
        with self._begin() as conn:
            row = conn.execute(select(registrations).where(
                registrations.c.namespace == namespace, registrations.c.name == name)).first()
        return Registration(**row._mapping) if row is not None else None

    def list_registrations(self) -> list[Registration]:
        """Every registration, sorted by namespace/name."""
        with self._begin() as conn:
            rows = conn.execute(select(registrations).order_by(registrations.c.namespace,
                                                               registrations.c.name)).all()
        return [Registration(**r._mapping) for r in rows]

    def delete_registration(self, namespace: str, name: str, actor: str) -> bool:
        """Remove a registration; False when there was none."""
        with self._begin() as conn:
            res = conn.execute(delete(registrations).where(
                registrations.c.namespace == namespace, registrations.c.name == name))
            if res.rowcount:
                self._bump(conn)
                self._audit(conn, actor, "deregister", f"{namespace}/{name}", {})
        return bool(res.rowcount)

    def registrations_revision(self) -> int:
        """A counter bumped by every registration change (cheap to poll from another replica)."""
        value = self.get_meta(_REG_REVISION)
        return int(value) if isinstance(value, int) else 0

    def _bump(self, conn: Connection) -> None:
        # one atomic UPDATE: concurrent replicas never lose an increment (the row lock serialises them)
        res = conn.execute(update(meta).where(meta.c.key == _REG_REVISION).values(
            value=cast(cast(meta.c.value, Integer) + 1, Text)))
        if not res.rowcount:
            try:
                with conn.begin_nested():
                    conn.execute(insert(meta).values(key=_REG_REVISION, value="1"))
            except IntegrityError:  # another replica created it first
                conn.execute(update(meta).where(meta.c.key == _REG_REVISION).values(
                    value=cast(cast(meta.c.value, Integer) + 1, Text)))

    # -- artifact status ---------------------------------------------------------------------

    def save_statuses(self, statuses: Sequence[ArtifactStatus]) -> None:
        """Insert or replace status rows."""
        if not statuses:
            return
        with self._begin() as conn:
            for st in statuses:
                conn.execute(delete(artifact_status).where(artifact_status.c.sink == st.sink,
                                                           artifact_status.c.artifact_id == st.id))
            conn.execute(insert(artifact_status), [_status_row(st) for st in statuses])

    def delete_statuses(self, keys: Sequence[tuple[str, str]]) -> None:
        """Forget status rows."""
        if not keys:
            return
        with self._begin() as conn:
            for sink, aid in keys:
                conn.execute(delete(artifact_status).where(artifact_status.c.sink == sink,
                                                           artifact_status.c.artifact_id == aid))

    def load_statuses(self) -> list[ArtifactStatus]:
        """Every status row."""
        with self._begin() as conn:
            rows = conn.execute(select(artifact_status).order_by(artifact_status.c.sink,
                                                                 artifact_status.c.artifact_id)).all()
        return [ArtifactStatus(
            sink=r.sink, id=r.artifact_id, owner=r.owner, path=r.path, action=r.action,
            state=ArtifactState(r.state), desired_digest=r.desired_digest, applied_digest=r.applied_digest,
            drifted=bool(r.drifted), error=r.error, error_class=r.error_class, failures=r.failures,
            next_retry_at=r.next_retry_at, updated_at=r.updated_at) for r in rows]

    # -- audit -------------------------------------------------------------------------------

    def audit(self, actor: str, action: str, target: str = "", detail: Mapping[str, Any] | None = None) -> None:
        """Append to the audit trail."""
        with self._begin() as conn:
            self._audit(conn, actor, action, target, detail or {})

    def _audit(self, conn: Connection, actor: str, action: str, target: str, detail: Mapping[str, Any]) -> None:
        conn.execute(insert(audit).values(at=time.time(), actor=actor, action=action, target=target,
                                          detail=json.dumps(dict(detail), sort_keys=True)))

    def list_audit(self, limit: int = 100, target: str | None = None) -> list[AuditEntry]:
        """The newest entries first."""
        q = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if target is not None:
            q = q.where(audit.c.target == target)
        with self._begin() as conn:
            rows = conn.execute(q).all()
        return [AuditEntry(r.id, r.at, r.actor, r.action, r.target, json.loads(r.detail)) for r in rows]

    # -- reports -----------------------------------------------------------------------------

    def save_report(self, key: str, body: str | Mapping[str, Any]) -> None:
        """Store a report snapshot (a JSON text or a JSON-able mapping) under a key such as a period."""
        text = body if isinstance(body, str) else json.dumps(dict(body), sort_keys=True)
        json.loads(text)  # refuse what is not JSON
        with self._begin() as conn:
            conn.execute(delete(reports).where(reports.c.key == key))
            conn.execute(insert(reports).values(key=key, body=text, updated_at=time.time()))

    def load_report(self, key: str) -> str | None:
        """A stored report's JSON text, or None."""
        with self._begin() as conn:
            row = conn.execute(select(reports.c.body).where(reports.c.key == key)).first()
        return str(row.body) if row is not None else None

    def list_reports(self) -> list[str]:
        """Every report key, sorted."""
        with self._begin() as conn:
            return [str(r.key) for r in conn.execute(select(reports.c.key).order_by(reports.c.key)).all()]

    # -- meta --------------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        """Store a small JSON value."""
        text = json.dumps(value, sort_keys=True)
        with self._begin() as conn:
            res = conn.execute(update(meta).where(meta.c.key == key).values(value=text))
            if not res.rowcount:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(meta).values(key=key, value=text))
                except IntegrityError:  # another replica inserted it first
                    conn.execute(update(meta).where(meta.c.key == key).values(value=text))

    def get_meta(self, key: str) -> Any:
        """A stored JSON value, or None."""
        with self._begin() as conn:
            row = conn.execute(select(meta.c.value).where(meta.c.key == key)).first()
        return json.loads(row.value) if row is not None else None

    def ping(self) -> bool:
        """True when the database answers."""
        try:
            with self._begin() as conn:
                conn.execute(select(func.count()).select_from(meta))
            return True
        except TemporaryError:
            return False


def _status_row(st: ArtifactStatus) -> dict[str, Any]:
    return {"sink": st.sink, "artifact_id": st.id, "owner": st.owner, "path": st.path, "action": st.action,
            "state": st.state.value, "desired_digest": st.desired_digest, "applied_digest": st.applied_digest,
            "drifted": st.drifted, "error": st.error, "error_class": st.error_class, "failures": st.failures,
            "next_retry_at": st.next_retry_at, "updated_at": st.updated_at}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
