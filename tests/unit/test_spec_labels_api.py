"""The registration API checks a spec's `environment` label against the platform's `environment` setting, as the
reconcile loop does: one rule, whichever face loads the spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient

from obsctl.config import Settings
from obsctl.service.http import create_app
from obsctl.service.runtime import Runtime

TOKEN = "labels-write-token-0123456789"


def _doc(environment: str) -> bytes:
    return yaml.safe_dump({"apiVersion": "obsctl.dev/v1", "kind": "Service", "metadata": {"name": "orders"},
                           "spec": {"owner": "team-orders", "slos": [
                               {"name": "availability", "objective": 99.9, "sli": {"availability": {}},
                                "labels": {"environment": environment}}]}}).encode()


def test_a_registered_specs_environment_label_is_checked_against_the_platforms(tmp_path: Path) -> None:
    (tmp_path / "catalog").mkdir()
    rt = Runtime(Settings(out_dir=tmp_path / "out", state_url=f"sqlite:///{tmp_path}/state.db", environment="staging",
                          catalog={"path": tmp_path / "catalog"},
                          serve={"sources": ["directory", "api"], "watch": False, "resync_seconds": 3600,
                                 "write_tokens": [TOKEN]}))
    with TestClient(create_app(rt), base_url="http://127.0.0.1:8080", raise_server_exceptions=False,
                    headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/yaml"}) as client:
        assert rt.reconciler.ready.wait(60)
        refused = client.put("/v1/services/default/orders", content=_doc("production"))
        assert refused.status_code == 422, refused.text
        problems: list[dict[str, Any]] = refused.json()["detail"]["problems"]
        assert [p["field"] for p in problems if p["severity"] == "error"] == ["spec.slos[0].labels.environment"]
        assert "obsctl's environment='staging'" in problems[-1]["message"]
        accepted = client.put("/v1/services/default/orders", content=_doc("staging"))
        assert accepted.status_code in (200, 201), accepted.text
