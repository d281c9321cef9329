"""Losing the state database: while running, writes are refused (never a 201 that a restart forgets)
and /readyz says why; after a restart on an empty database, services the targets hold and the
catalog lacks (their registrations were lost) are held, not pruned, until registered again or released."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from obsctl.config import Settings
from obsctl.service.http import create_app
from obsctl.service.runtime import Runtime
from tests.support.alerting import UNDELIVERED

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "catalog"
TOKEN = "state-write-token-0123"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def doc(name: str) -> dict[str, Any]:
    return {"apiVersion": "obsctl.dev/v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"owner": "team-payments", "slos": [{"name": "availability", "objective": 99.9,
                                                         "sli": {"availability": {}}}]}}


def runtime(tmp_path: Path) -> Runtime:
    if not (tmp_path / "catalog").exists():
        shutil.copytree(EXAMPLES, tmp_path / "catalog")
    return Runtime(Settings(out_dir=tmp_path / "out", state_url=f"sqlite:///{tmp_path}/state.db",
                            catalog={"path": tmp_path / "catalog"}, alerting=UNDELIVERED,
                            serve={"sources": ["directory", "api"], "watch": False, "resync_seconds": 3600,
                                   "write_tokens": [TOKEN], "deletion_grace_seconds": 0}))


def client(rt: Runtime) -> TestClient:
    return TestClient(create_app(rt), base_url="http://127.0.0.1:8080", headers=HEADERS)


def rule_file(tmp_path: Path, name: str) -> Path:
    return tmp_path / "out" / "prometheus" / "rules" / "default" / f"{name}.rules.yml"


def test_state_file_removed_while_running_refuses_writes(tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    with client(rt) as c:
        assert rt.reconciler.ready.wait(60)
        assert c.put("/v1/services/default/before", json=doc("before")).status_code == 201
        (tmp_path / "state.db").unlink()
        resp = c.put("/v1/services/default/after", json=doc("after"))
        assert resp.status_code == 503 and "state database" in resp.json()["detail"]
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.json()["reason"] == "state database lost"


def test_lost_database_holds_what_the_targets_own_until_registered_or_released(tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    with client(rt) as c:
        assert rt.reconciler.ready.wait(60)
        for name in ("kept", "back"):
            assert c.put(f"/v1/services/default/{name}", json=doc(name)).status_code == 201
        rt.reconciler.run_once(reason="test")
    assert rule_file(tmp_path, "kept").is_file() and rule_file(tmp_path, "back").is_file()
    for p in tmp_path.glob("state.db*"):
        p.unlink()  # the database is lost

    rt2 = runtime(tmp_path)
    with client(rt2) as c:
        assert rt2.reconciler.ready.wait(60)
        rt2.reconciler.run_once(reason="test")
        assert rule_file(tmp_path, "kept").is_file() and rule_file(tmp_path, "back").is_file()
        status = c.get("/status").json()
        assert {"default/kept", "default/back"} <= set(status["held_after_state_loss"])
        assert rule_file(tmp_path, "checkout").is_file()  # the catalog's own services are untouched
        # registering again ends the hold for that one
        assert c.put("/v1/services/default/back", json=doc("back")).status_code == 201
        rt2.reconciler.run_once(reason="test")
        held = c.get("/status").json()["held_after_state_loss"]
        assert "default/back" not in held and "default/kept" in held
        # an explicit release lets the rest go (after the grace, 0 here)
        released = c.post("/v1/state/release").json()["released"]
        assert "default/kept" in released
        rt2.reconciler.run_once(reason="test")
        rt2.reconciler.run_once(reason="test")
        assert not rule_file(tmp_path, "kept").exists() and rule_file(tmp_path, "back").is_file()
        assert any(e.action == "release-held" for e in rt2.store.list_audit(20))
