"""The state store and leader election on a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from obsctl.model.status import ArtifactState, ArtifactStatus
from obsctl.store import PostgresLeader, StateStore
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    with PostgresServer(tmp_path_factory.mktemp("pg")) as server:
        yield server


def test_concurrent_migrations_and_store(pg: PostgresServer) -> None:
    pg.create_database("store1")
    url = pg.dsn_for("store1")
    stores = [StateStore(url) for _ in range(3)]
    errors: list[BaseException] = []

    def migrate(s: StateStore) -> None:
        try:
            s.migrate()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    a, b = stores[0], stores[1]
    assert a.put_registration("default", "svc", b"a: 1\n", "t1") is True
    assert b.get_registration("default", "svc") is not None and b.registrations_revision() == 1
    a.save_statuses([ArtifactStatus("files", "x/y", state=ArtifactState.APPLIED, updated_at=1.0)])
    assert [s.id for s in b.load_statuses()] == ["x/y"]
    b.save_report("2026-11", {"ok": True})
    assert a.load_report("2026-11") == '{"ok": true}'
    for s in stores:
        s.close()


def _wait(cond: object, timeout: float) -> float:
    t0 = time.monotonic()
    while not cond():  # type: ignore[operator]
        if time.monotonic() - t0 > timeout:
            raise TimeoutError
        time.sleep(0.01)
    return time.monotonic() - t0


def test_advisory_lock_election(pg: PostgresServer, tmp_path: Path) -> None:
    changes: list[tuple[str, bool]] = []
    e1 = PostgresLeader(pg.dsn, key=4242, on_change=lambda v: changes.append(("e1", v)))
    e2 = PostgresLeader(pg.dsn, key=4242, retry_seconds=0.2, on_change=lambda v: changes.append(("e2", v)))
    try:
        e1.start()
        assert e1.wait_leader(10)
        e2.start()
        time.sleep(0.5)
        assert not e2.is_leader()
        # a clean stop releases the lock; the follower takes it at its next attempt
        e1.stop()
        took = _wait(e2.is_leader, 5)
        assert took < 2
        # the leader's session is killed server-side: it notices at its next check and steps down
        e1 = PostgresLeader(pg.dsn, key=4242, retry_seconds=0.2, on_change=lambda v: changes.append(("e1", v)))
        e1.start()
        with psycopg.connect(pg.libpq_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE application_name = 'obsctl-leader' AND pid IN "
                         "(SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)")
        _wait(lambda: not e2.is_leader(), 5)
        _wait(lambda: e1.is_leader() or e2.is_leader(), 5)
        assert e1.is_leader() != e2.is_leader()
        assert ("e2", False) in changes
    finally:
        e1.stop()
        e2.stop()


def test_concurrent_registrations_never_lose_a_revision(pg: PostgresServer) -> None:
    pg.create_database("store2")
    url = pg.dsn_for("store2")
    StateStore(url).migrate()
    stores = [StateStore(url) for _ in range(4)]
    errors: list[BaseException] = []

    def register(i: int, s: StateStore) -> None:
        try:
            for j in range(10):
                s.put_registration("default", f"svc-{i}-{j}", b"a: 1\n", f"replica-{i}")
                s.put_registration("default", "shared", f"b: {i}-{j}\n".encode(), f"replica-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(i, s)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    # 40 creations, and each of the 40 writes of "shared" changed its bytes
    assert stores[0].registrations_revision() == 80
    assert len(stores[0].list_registrations()) == 41
    for s in stores:
        s.close()
