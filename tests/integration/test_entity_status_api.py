"""`GET /v1/entities/{kind}/{namespace}/{name}/status` in process: shape, links only where configured,
SLOs listed without numbers (and saying why) when Prometheus is not configured or does not answer."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from obsctl.config import Settings
from obsctl.service.http import create_app
from obsctl.service.runtime import Runtime
from tests.support.alerting import UNDELIVERED
from tests.support.binaries import free_port

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "catalog"
READ = {"Authorization": "Bearer status-read-token"}


def _client(root: Path, **extra: Any) -> Iterator[TestClient]:
    shutil.copytree(EXAMPLES, root / "catalog", dirs_exist_ok=True)
    settings = Settings(out_dir=root / "out", state_url=f"sqlite:///{root}/state.db",
                        catalog={"path": root / "catalog"}, alerting=UNDELIVERED,
                        serve={"sources": ["directory"], "watch": False, "resync_seconds": 3600,
                               "read_tokens": ["status-read-token"]}, **extra)
    rt = Runtime(settings)
    with TestClient(create_app(rt), base_url="http://127.0.0.1") as client:
        assert rt.reconciler.ready.wait(60)
        yield client


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[TestClient]:
    yield from _client(tmp_path)


def test_without_prometheus_or_urls_lists_slos_and_no_placeholder_links(bare: TestClient) -> None:
    resp = bare.get("/v1/entities/component/default/ledger/status", headers=READ)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["entity"] == "component:default/ledger" and doc["team"] == "group:default/team-payments"
    assert doc["data"].startswith("unavailable: no Prometheus URL")
    assert [s["name"] for s in doc["slos"]] == ["availability", "latency", "postings", "freshness"]
    assert all(s["status"] == "no-data" and s["error_budget_remaining"] is None for s in doc["slos"])
    assert doc["status"] == "no-data" and doc["firing"] == []
    # No public URL configured: no dashboard, entity or alerts link, never an example.internal one.
    assert doc["links"] == {"runbook": "https://runbooks.example.internal/ledger"}  # the catalog's own link
    assert doc["annotations"]["grafana/dashboard-selector"] == (
        "tags @> 'service:ledger' && tags @> 'namespace:default' && tags @> 'obsctl'")
    assert doc["artifacts"]["total"] > 0


def test_auth_and_unknown_entities(bare: TestClient) -> None:
    assert bare.get("/v1/entities/component/default/ledger/status").status_code == 401
    assert bare.get("/v1/entities/component/default/nope/status", headers=READ).status_code == 404
    assert bare.get("/v1/entities/group/default/team-payments/status", headers=READ).status_code == 404


def test_unreachable_prometheus_is_reported_not_raised(tmp_path: Path) -> None:
    for client in _client(tmp_path, prometheus={"url": f"http://127.0.0.1:{free_port()}"}):
        doc = client.get("/v1/entities/component/default/checkout/status", headers=READ).json()
        assert doc["data"].startswith("unavailable: Prometheus did not answer")
        assert [s["status"] for s in doc["slos"]] == ["no-data", "no-data"]
