"""`obsctl serve` in process: poison in a catalog file (names that collide once normalised) isolates
those services only: the others converge, the failure is in /status, /metrics and the audit log;
/readyz turns 503 when rounds keep failing."""

from __future__ import annotations

import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from obsctl.config import Settings
from obsctl.service.http import create_app
from obsctl.service.runtime import FAILING_ROUNDS, Runtime
from tests.support.alerting import UNDELIVERED

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "catalog"
POISON = """\
apiVersion: obsctl.dev/v1
kind: Service
metadata: {name: search.api}
spec:
  owner: team-search
  slos: [{name: availability, objective: 99.9, sli: {availability: {}}}]
---
apiVersion: obsctl.dev/v1
kind: Service
metadata: {name: fresh-svc}
spec:
  owner: team-search
  slos: [{name: availability, objective: 99.9, sli: {availability: {}}}]
"""


def runtime(tmp_path: Path) -> Runtime:
    shutil.copytree(EXAMPLES, tmp_path / "catalog")
    return Runtime(Settings(out_dir=tmp_path / "out", state_url=f"sqlite:///{tmp_path}/state.db",
                            catalog={"path": tmp_path / "catalog"}, alerting=UNDELIVERED,
                            serve={"sources": ["directory"], "watch": False, "resync_seconds": 3600}))


def test_colliding_catalog_entry_is_isolated_and_blocks_nothing(tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    with TestClient(create_app(rt), base_url="http://127.0.0.1:8080") as client:
        assert rt.reconciler.ready.wait(60)
        (tmp_path / "catalog" / "poison.yaml").write_text(POISON)
        report = rt.reconciler.run_once(reason="test")
        assert report.complete and not report.error
        assert list(report.isolated) == ["default/search.api"]
        assert (tmp_path / "out" / "prometheus" / "rules" / "default" / "fresh-svc.rules.yml").is_file()
        status = client.get("/status").json()
        assert "collides" in status["isolated"]["default/search.api"]
        assert client.get("/status/default/search.api").json()["isolated"]
        assert "obsctl_isolated_services 1.0" in client.get("/metrics").text
        assert any(e.action == "isolate" and e.target == "default/search.api" for e in rt.store.list_audit(20))
        assert client.get("/readyz").status_code == 200  # one isolated service is not a failing round


def test_readyz_reflects_rounds_failing_repeatedly(tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    with TestClient(create_app(rt), base_url="http://127.0.0.1:8080") as client:
        assert rt.reconciler.ready.wait(60)
        shutil.rmtree(tmp_path / "catalog")  # every read fails from now on
        first = client.get("/readyz")
        for _ in range(FAILING_ROUNDS):
            rt.reconciler.run_once(reason="test")
        ready = client.get("/readyz")
        assert first.status_code == 200
        assert ready.status_code == 503 and "failed" in ready.json()["reason"]
