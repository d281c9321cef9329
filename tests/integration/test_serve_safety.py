"""`obsctl serve` safety: a catalog outage deletes nothing, a mass deletion is refused until allowed,
and a replica killed in the middle of an apply converges when it restarts."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support.alerting import UNDELIVERED
from tests.support.serve import REPO_ROOT, ServeProcess, snapshot

pytestmark = pytest.mark.integration

DIRECTORY_ONLY = {"serve": {"sources": ["directory"]}}


def test_catalog_outage_deletes_nothing(tmp_path: Path) -> None:
    with ServeProcess(tmp_path, DIRECTORY_ONLY) as srv:
        before = snapshot(srv.out_dir)
        assert len(before) > 20
        moved = tmp_path / "catalog-away"
        wall = time.time()
        srv.catalog_dir.rename(moved)  # the catalog cannot be read at all
        srv.client.post("/reconcile")
        rnd = srv.wait_round_after(wall)
        assert not rnd["catalog"]["ok"] and "does not exist" in rnd["catalog"]["error"]
        assert snapshot(srv.out_dir) == before
        metrics = srv.client.get("/metrics").text
        errors = next(float(line.split()[-1]) for line in metrics.splitlines()
                      if line.startswith("obsctl_catalog_errors_total"))
        assert errors >= 1  # the retry timer may have tried again already
        # an empty (but readable) catalog is a mass deletion: refused as well
        srv.catalog_dir.mkdir()
        wall = time.time()
        srv.client.post("/reconcile")
        rnd = srv.wait_for(lambda: (r := srv.wait_round_after(wall)) and r["catalog"]["ok"] and r, what="empty read")
        assert rnd["prune_refused"] and snapshot(srv.out_dir) == before
        # the catalog comes back: nothing to do
        srv.catalog_dir.rmdir()
        moved.rename(srv.catalog_dir)
        wall = time.time()
        srv.client.post("/reconcile")
        srv.wait_for(lambda: (r := srv.wait_round_after(wall)) and r["complete"] and not r["prune_refused"],
                     what="recovered")
        assert snapshot(srv.out_dir) == before


def test_mass_delete_refused_until_allowed(tmp_path: Path) -> None:
    srv = ServeProcess(tmp_path, DIRECTORY_ONLY)
    try:
        srv.start()
        before = snapshot(srv.out_dir)
        for name in ("ledger.yaml", "search-api.yaml", "sloth-inventory.yml", "openslo-notifications.yaml"):
            (srv.catalog_dir / name).unlink()
        wall = time.time()
        srv.client.post("/reconcile")
        rnd = srv.wait_round_after(wall)
        assert any("shrank from 5 to 1" in msg for msg in rnd["prune_refused"]), rnd
        assert set(snapshot(srv.out_dir)) == set(before)  # nothing deleted
        assert "obsctl_prune_refused 1.0" in srv.client.get("/metrics").text
        status = srv.client.get("/status").json()
        assert status["last_round"]["prune_refused"]
        srv.stop()
        # a restart does not forget the refusal: the baseline lives in the state store
        srv.start()
        srv.client.post("/reconcile")
        assert srv.wait_round_after(time.time() - 0.001)["prune_refused"]
        assert set(snapshot(srv.out_dir)) == set(before)
        srv.stop()
        srv.settings["serve"]["allow_mass_delete"] = True
        srv.settings["serve"]["deletion_grace_seconds"] = 0
        srv.start()
        wall = time.time()
        srv.client.post("/reconcile")  # a service leaves after two complete reads without it
        srv.wait_round_after(wall)
        remaining = snapshot(srv.out_dir)
        assert not any("ledger" in p for p in remaining) and any("checkout" in p for p in remaining)
        assert len(remaining) < len(before)
    finally:
        srv.close()


def _many_services(root: Path, count: int) -> None:
    shutil.copy(REPO_ROOT / "examples/catalog/teams.yaml", root / "teams.yaml")
    for i in range(count):
        (root / f"svc-{i:03d}.yaml").write_text(
            "apiVersion: obsctl.dev/v1\nkind: Service\n"
            f"metadata:\n  name: svc-{i:03d}\nspec:\n  owner: team-payments\n  tier: 2\n  slos:\n"
            "    - name: availability\n      objective: 99.9\n      sli:\n        availability: {}\n")


def _render(catalog: Path, out: Path) -> None:
    """`obsctl render` with the receivers ServeProcess runs with (obsctl refuses alerts that reach nobody)."""
    config = out.parent / "render-settings.yaml"
    config.write_text(yaml.safe_dump({"alerting": UNDELIVERED}))
    subprocess.run([sys.executable, "-m", "obsctl.cli", "--config", str(config), "render", str(catalog), "--out",
                    str(out)], check=True, capture_output=True, cwd=out.parent)


def test_restart_mid_apply_converges(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    _many_services(catalog, 30)
    expected_dir = tmp_path / "expected"
    _render(catalog, expected_dir)
    expected = snapshot(expected_dir)
    srv = ServeProcess(tmp_path, DIRECTORY_ONLY, copy_catalog=False)
    try:
        srv.start(wait_ready=False)
        # kill it hard once some, but not all, artifacts are written
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = len(snapshot(srv.out_dir)) if srv.out_dir.exists() else 0
            if len(expected) * 0.1 < n < len(expected) * 0.7:
                break
            time.sleep(0.01)
        partial = len(snapshot(srv.out_dir))
        srv.stop(signal.SIGKILL)
        assert 0 < partial < len(expected), (partial, len(expected))
        srv.start()
        assert snapshot(srv.out_dir) == expected
        plan = srv.client.get("/plan").json()
        assert all(sum(v for k, v in s["summary"].items() if k != "unchanged") == 0 for s in plan["sinks"].values())
        print(f"killed after {partial}/{len(expected)} artifacts; converged after restart")
    finally:
        srv.close()


def test_sigterm_mid_apply_finishes_the_round(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    _many_services(catalog, 30)
    expected_dir = tmp_path / "expected"
    _render(catalog, expected_dir)
    expected = snapshot(expected_dir)
    srv = ServeProcess(tmp_path, DIRECTORY_ONLY, copy_catalog=False)
    try:
        srv.start(wait_ready=False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = len(snapshot(srv.out_dir)) if srv.out_dir.exists() else 0
            if len(expected) * 0.1 < n < len(expected) * 0.7:
                break
            time.sleep(0.01)
        partial = len(snapshot(srv.out_dir))
        assert srv.stop(signal.SIGTERM, timeout=120) == 0
        assert partial < len(expected) and snapshot(srv.out_dir) == expected  # the in-flight apply finished
    finally:
        srv.close()
