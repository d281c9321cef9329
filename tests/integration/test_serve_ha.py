"""Two `obsctl serve` replicas on a real PostgreSQL: one leader reconciles, the follower serves reads
and accepts registrations; SIGKILL the leader and the follower takes over within seconds."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer
from tests.support.serve import EXAMPLES, ServeProcess, service_doc

pytestmark = pytest.mark.integration

TAKEOVER_LIMIT_S = 10.0


def _files_for(out: Path, name: str) -> list[Path]:
    return [p for p in out.rglob(f"*{name}*") if p.is_file()]


def test_leader_killed_follower_takes_over(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(EXAMPLES, catalog)
    out = tmp_path / "out"
    with PostgresServer(tmp_path / "pg") as pg:
        shared = {"state_url": pg.dsn, "out_dir": str(out), "catalog": {"path": str(catalog)},
                  "serve": {"sources": ["directory", "api"]}}
        a = ServeProcess(tmp_path / "a", shared, copy_catalog=False, name="a")
        b = ServeProcess(tmp_path / "b", shared, copy_catalog=False, name="b")
        try:
            a.start()
            assert a.is_leader()
            b.start()  # ready as a follower: the store answers and a leader has reconciled
            assert not b.is_leader()
            assert "obsctl_leader 0.0" in b.client.get("/metrics").text

            # a registration through the follower is reconciled by the leader
            assert b.client.put("/v1/services/default/ha-one", json=service_doc("ha-one")).status_code == 201
            a.wait_for(lambda: _files_for(out, "ha-one"), what="ha-one artifacts by the leader")
            # the follower reads the leader's outcomes (recorded once the round's sinks are all applied)
            st = b.wait_for(lambda: (s := b.service_status("default", "ha-one")) and s["artifacts"] and s["in_sync"]
                            and s, what="ha-one status through the follower")
            assert st["registered"]

            # kill the leader hard: no clean unlock, PostgreSQL drops its session
            killed_at = time.monotonic()
            a.stop(signal.SIGKILL)
            b.wait_for(b.is_leader, timeout=TAKEOVER_LIMIT_S + 5, interval=0.02, what="follower takeover")
            takeover = time.monotonic() - killed_at
            print(f"leader SIGKILLed -> follower leads after {takeover:.2f}s")
            assert takeover < TAKEOVER_LIMIT_S

            # the new leader reconciles
            assert b.client.put("/v1/services/default/ha-two", json=service_doc("ha-two")).status_code == 201
            b.wait_for(lambda: _files_for(out, "ha-two"), what="ha-two artifacts by the new leader")
            assert "obsctl_leader 1.0" in b.client.get("/metrics").text

            # the old leader comes back as a follower; a clean SIGTERM of the leader hands over the lock
            a.start()
            assert not a.is_leader()
            handed = time.monotonic()
            assert b.stop(signal.SIGTERM) == 0
            a.wait_for(a.is_leader, timeout=TAKEOVER_LIMIT_S, interval=0.02, what="handover after SIGTERM")
            print(f"leader SIGTERMed -> other replica leads after {time.monotonic() - handed:.2f}s")
        finally:
            a.close()
            b.close()


def test_frozen_leader_is_replaced_and_stays_out(tmp_path: Path) -> None:
    """SIGSTOP the leader: its database session stays open (the old advisory lock was never released),
    but its lease runs out and the follower takes over; resumed, the old leader knows it lost."""
    catalog = tmp_path / "catalog"
    shutil.copytree(EXAMPLES, catalog)
    out = tmp_path / "out"
    lease = 3.0
    with PostgresServer(tmp_path / "pg") as pg:
        shared = {"state_url": pg.dsn, "out_dir": str(out), "catalog": {"path": str(catalog)},
                  "serve": {"sources": ["directory", "api"], "leader_lease_seconds": lease}}
        a = ServeProcess(tmp_path / "a", shared, copy_catalog=False, name="a")
        b = ServeProcess(tmp_path / "b", shared, copy_catalog=False, name="b")
        try:
            a.start()
            assert a.is_leader()
            b.start()
            assert not b.is_leader()
            assert a.proc is not None
            frozen = time.monotonic()
            a.proc.send_signal(signal.SIGSTOP)
            b.wait_for(b.is_leader, timeout=lease * 4, interval=0.05, what="takeover from a frozen leader")
            took = time.monotonic() - frozen
            print(f"leader SIGSTOPped -> follower leads after {took:.2f}s (lease {lease:.0f}s)")
            assert took >= lease * 0.5
            a.proc.send_signal(signal.SIGCONT)
            assert not a.is_leader()
            assert b.client.put("/v1/services/default/ha-frozen", json=service_doc("ha-frozen")).status_code == 201
            b.wait_for(lambda: _files_for(out, "ha-frozen"), what="ha-frozen artifacts by the new leader")
            time.sleep(lease)
            assert b.is_leader() and not a.is_leader()
        finally:
            if a.proc is not None and a.alive():
                a.proc.send_signal(signal.SIGCONT)
            a.close()
            b.close()
