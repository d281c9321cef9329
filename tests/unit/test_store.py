"""State store on SQLite (the embedded default): migrations, registrations with revision and audit,
artifact status round trip, reports, meta. PostgreSQL is covered in tests/integration/test_serve_store_pg.py."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from obsctl.model.status import ArtifactState, ArtifactStatus
from obsctl.sources.registrations import RegistrationSource
from obsctl.store import StateStore
from obsctl.store.schema import metadata


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    s = StateStore(f"sqlite:///{tmp_path}/nested/dir/state.db")
    s.migrate()
    return s


def test_migrations_create_the_schema_and_are_idempotent(store: StateStore, tmp_path: Path) -> None:
    store.migrate()
    assert (tmp_path / "nested/dir/state.db").is_file()
    insp = sa.inspect(store.engine)
    tables = set(insp.get_table_names())
    assert set(metadata.tables) <= tables and "alembic_version" in tables
    for name, table in metadata.tables.items():
        assert {c["name"] for c in insp.get_columns(name)} == {c.name for c in table.columns}, name
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("select version_num from alembic_version")).scalar() == "0002"


def test_registrations_revision_and_audit(store: StateStore) -> None:
    assert store.registrations_revision() == 0
    assert store.put_registration("default", "a", b"x: 1\n", "token:aaaa") is True
    assert store.put_registration("default", "a", b"x: 1\n", "token:bbbb") is False  # same bytes: no bump
    assert store.registrations_revision() == 1
    assert store.put_registration("default", "a", b"x: 2\n", "token:bbbb") is False
    assert store.registrations_revision() == 2
    reg = store.get_registration("default", "a")
    assert reg is not None and reg.document == b"x: 2\n" and reg.updated_by == "token:bbbb"
    assert reg.created_at <= reg.updated_at
    assert store.delete_registration("default", "a", "token:cccc") is True
    assert store.delete_registration("default", "a", "token:cccc") is False
    assert store.registrations_revision() == 3 and store.list_registrations() == []
    trail = store.list_audit()
    assert [(e.action, e.actor) for e in trail] == [("deregister", "token:cccc"), ("update", "token:bbbb"),
                                                     ("update", "token:bbbb"), ("register", "token:aaaa")]
    assert trail[2].detail == {"changed": False, "digest": trail[2].detail["digest"]}


def test_registration_source_reads_and_watches(store: StateStore) -> None:
    store.put_registration("team-x", "svc", b"apiVersion: obsctl.dev/v1\n", "t")
    src = RegistrationSource(store, poll_seconds=0.02)
    files = src.fetch().files
    assert [(f.path, f.data) for f in files] == [("registration:team-x/svc", b"apiVersion: obsctl.dev/v1\n")]
    woke: list[str] = []
    stop = threading.Event()
    t = threading.Thread(target=src.watch, args=(woke.append, stop), daemon=True)
    t.start()
    try:
        stop.wait(0.1)
        assert woke == []
        store.put_registration("team-x", "svc2", b"a: 1\n", "t")
        for _ in range(100):
            if woke:
                break
            stop.wait(0.02)
        assert woke == ["registration changed"]
    finally:
        stop.set()
        t.join(5)


def test_statuses_round_trip(store: StateStore) -> None:
    rows = [ArtifactStatus("files", "prometheus-rules/default/a", "component:default/a", "rules/a.yml", "create",
                           ArtifactState.APPLIED, "d1", "d1", False, "", "", 0, None, 10.0),
            ArtifactStatus("grafana", "grafana-dashboard/x", "group:default/t", "", "update",
                           ArtifactState.FAILED_TEMPORARY, "d2", "d0", True, "503", "temporary", 2, 99.5, 11.0)]
    store.save_statuses(rows)
    assert store.load_statuses() == sorted(rows, key=lambda r: r.key)
    store.save_statuses([ArtifactStatus("files", "prometheus-rules/default/a", state=ArtifactState.HELD,
                                        updated_at=12.0)])
    assert len(store.load_statuses()) == 2
    store.delete_statuses([("grafana", "grafana-dashboard/x")])
    assert [s.state for s in store.load_statuses()] == [ArtifactState.HELD]


def test_reports_and_meta(store: StateStore) -> None:
    store.save_report("2026-11", {"slos": [1, 2]})
    store.save_report("2026-10", '{"slos": []}')
    assert json.loads(store.load_report("2026-11") or "") == {"slos": [1, 2]}
    assert store.load_report("1999-01") is None and store.list_reports() == ["2026-10", "2026-11"]
    with pytest.raises(ValueError):
        store.save_report("bad", "not json")
    store.set_meta("k", {"a": 1})
    store.set_meta("k", [1, 2])
    assert store.get_meta("k") == [1, 2] and store.get_meta("missing") is None
    assert store.ping()


def test_registration_watch_ignores_changes_the_loop_already_read(store: StateStore) -> None:
    src = RegistrationSource(store, poll_seconds=1.0)
    woke: list[str] = []
    stop = threading.Event()
    t = threading.Thread(target=src.watch, args=(woke.append, stop), daemon=True)
    t.start()
    try:
        stop.wait(0.3)  # the watcher has read the revision once
        store.put_registration("default", "mine", b"a: 1\n", "t")
        src.fetch()  # the leader's own round read it (the API woke the loop directly)
        stop.wait(1.2)  # past the watcher's next poll
        assert woke == []
    finally:
        stop.set()
        t.join(5)
