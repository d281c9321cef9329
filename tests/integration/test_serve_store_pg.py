"""The state store and leader election on a real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

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


def _elector(pg: PostgresServer, name: str, changes: list[tuple[str, bool, float]], **kw: float) -> PostgresLeader:
    return PostgresLeader(pg.dsn, key=4242, retry_seconds=0.2,
                          on_change=lambda v: changes.append((name, v, time.monotonic())), **kw)


def test_lease_election_handover_and_killed_session(pg: PostgresServer) -> None:
    StateStore(pg.dsn).migrate()
    changes: list[tuple[str, bool, float]] = []
    e1 = _elector(pg, "e1", changes)
    e2 = _elector(pg, "e2", changes)
    try:
        e1.start()
        assert e1.wait_leader(10)
        e2.start()
        time.sleep(0.5)
        assert not e2.is_leader()
        # a clean stop expires the lease; the follower takes it at its next attempt
        e1.stop()
        took = _wait(e2.is_leader, 5)
        assert took < 2
        # the leader's session is killed server-side: the follower takes over at once (the holder's
        # session is gone: no waiting for the lease to expire), and the old leader steps down
        e1 = _elector(pg, "e1", changes)
        e1.start()
        killed = time.monotonic()
        with psycopg.connect(pg.libpq_dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(backend_pid) FROM leader_lease WHERE lock_key = 4242")
        _wait(e1.is_leader, 5)
        assert time.monotonic() - killed < e1.lease_seconds / 2
        _wait(lambda: not e2.is_leader(), 5)
        assert e1.is_leader() != e2.is_leader()
        assert ("e2", False) in [(n, v) for n, v, _ in changes]
    finally:
        e1.stop()
        e2.stop()


def test_frozen_leader_loses_its_lease_and_stops_first(pg: PostgresServer) -> None:
    """A leader that cannot renew (frozen: its session stays open, it sends nothing) counts itself out
    before its lease expires; the follower takes over after the expiry; the old leader, resumed, stays out."""
    StateStore(pg.dsn).migrate()
    changes: list[tuple[str, bool, float]] = []
    e1 = _elector(pg, "e1", changes, lease_seconds=2.0)
    e2 = _elector(pg, "e2", changes, lease_seconds=2.0)
    thaw = threading.Event()
    try:
        e1.start()
        assert e1.wait_leader(10)
        e2.start()
        real_claim = e1._claim

        def frozen() -> int | None:
            thaw.wait()
            return real_claim()

        e1._claim = frozen  # type: ignore[method-assign]
        frozen_at = time.monotonic()
        # the writer asks before every write (as the fenced sinks do): it is told no within the lease
        stepped_down = frozen_at + _wait(lambda: not e1.is_leader(), 5)
        assert stepped_down - frozen_at <= 2.0
        _wait(e2.is_leader, 10)
        took = time.monotonic() - frozen_at
        assert 1.0 < took < 5.0, took  # after the 2 s lease expired, well before forever
        took_over = next(t for n, v, t in changes if n == "e2" and v)
        assert stepped_down < took_over  # never two writers
        thaw.set()
        time.sleep(1.0)
        assert e2.is_leader() and not e1.is_leader()
    finally:
        thaw.set()
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
