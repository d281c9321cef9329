"""The per-entity status endpoint as a Backstage card reads it: through the proxy plugin of a REAL
Backstage backend (tests/support/backstage.py) to a real `obsctl serve` HTTP server, whose numbers
come from a real Prometheus holding three days of SLO history (tests/integration/_slo_env.py).

The proxy configuration is the one docs/platforms.md recommends for a Backstage app:

    proxy:
      endpoints:
        /obsctl:
          target: <obsctl URL>
          headers: {Authorization: Bearer <obsctl read token>}
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from obsctl.app import load_path, load_templates
from obsctl.config import Settings, load_settings
from obsctl.service.http import create_app
from obsctl.service.runtime import Runtime
from obsctl.slo.query import build_report
from obsctl.slo.report import ReportFilter
from tests.integration._slo_env import END, start_prometheus
from tests.support.alerting import UNDELIVERED
from tests.support.backstage import BackstageCatalog
from tests.support.binaries import free_port

pytestmark = pytest.mark.integration

TEMPLATES = load_templates(load_settings(None))
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "catalog"
READ_TOKEN = "entity-status-read-token"
GRAFANA = "https://grafana.test"
BACKSTAGE_UI = "https://backstage.test"


class _Server:
    """`obsctl serve`'s app on a real loopback port (uvicorn in a thread), its clock pinned to END."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        self.rt = Runtime(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(self.rt, clock=lambda: END), host="127.0.0.1",
                                                    port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "obsctl serve did not start"
            time.sleep(0.05)
        assert self.rt.reconciler.ready.wait(60), "the first reconcile round did not complete"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Server, BackstageCatalog, Path]]:
    root = tmp_path_factory.mktemp("entity-status")
    shutil.copytree(EXAMPLES, root / "catalog")
    prom, _origin = start_prometheus(root / "prom-data", TEMPLATES)
    settings = Settings(out_dir=root / "out", state_url=f"sqlite:///{root}/state.db",
                        catalog={"path": root / "catalog"}, alerting=UNDELIVERED,
                        prometheus={"url": prom.url, "public_url": "https://prometheus.test"},
                        grafana={"public_url": GRAFANA}, backstage={"public_url": BACKSTAGE_UI},
                        serve={"sources": ["directory"], "watch": False, "resync_seconds": 3600,
                               "read_tokens": [READ_TOKEN], "write_tokens": ["entity-status-write-token"]})
    try:
        with _Server(settings) as server:
            proxy = (f"proxy:\n  endpoints:\n    /obsctl:\n      target: {server.url}\n      headers:\n"
                     f"        Authorization: Bearer {READ_TOKEN}\n")
            with BackstageCatalog(extra_config=proxy) as backstage:
                yield server, backstage, root
    finally:
        prom.stop()


def _via_backstage(bs: BackstageCatalog, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or bs.token}"} if token != "" else {}
    return httpx.get(f"{bs.base_url}/api/proxy/obsctl{path}", headers=headers, timeout=30)


def test_backstage_card_reads_an_entity_status_through_the_proxy(
        stack: tuple[_Server, BackstageCatalog, Path]) -> None:
    server, backstage, root = stack
    # The card starts from the entity Backstage serves and asks for its kind/namespace/name.
    entity = backstage.client.get("/entities/by-name/component/default/checkout").json()
    path = (f"/v1/entities/{entity['kind'].lower()}/{entity['metadata'].get('namespace', 'default')}/"
            f"{entity['metadata']['name']}/status")
    resp = _via_backstage(backstage, path)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    direct = httpx.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=30).json()
    assert doc == direct  # the proxy passes obsctl's answer through unchanged
    assert doc["entity"] == "component:default/checkout" and doc["data"] == "ok"

    catalog = load_path(root / "catalog", server.rt.settings, TEMPLATES).catalog
    svc = next(s for s in catalog.services if s.name == "checkout")
    report = build_report(catalog, TEMPLATES, server.rt.settings.prometheus.url,
                          ReportFilter(None, "default/checkout", None), "rolling", END)
    expected = {s.slo: s for s in report.slos}
    assert [s["name"] for s in doc["slos"]] == [s.name for s in svc.slos]
    for slo in doc["slos"]:
        want = expected[slo["name"]]
        assert slo["status"] == want.status.value
        assert slo["error_budget_remaining"] == pytest.approx(want.budget_remaining)
        assert slo["sli"] == pytest.approx(want.sli)
        assert [f["tier"] for f in slo["firing"]] == [t.name for t in want.tiers if t.firing and t.enabled]
        assert slo["alert_labels"] == {"service": "checkout", "catalog_namespace": "default", "slo": slo["name"]}
    # checkout's synthetic history burns budget: something to show, and the worst status on top.
    assert any(s["error_budget_remaining"] is not None for s in doc["slos"])
    ranks = ["exhausted", "burning", "no-data", "healthy"]
    assert doc["status"] == min((s["status"] for s in doc["slos"]), key=ranks.index)
    assert doc["firing"] == [{"slo": s["name"], **f} for s in doc["slos"] for f in s["firing"]]
    assert doc["links"]["dashboard"] == f"{GRAFANA}/d/obsctl-svc-default-checkout"
    assert doc["links"]["entity"] == f"{BACKSTAGE_UI}/catalog/default/component/checkout"
    assert doc["annotations"]["prometheus.io/labels"] == "service=checkout,catalog_namespace=default"
    assert doc["artifacts"]["total"] > 0 and doc["artifacts"]["in_sync"] is True


def test_proxy_keeps_obsctl_errors_and_backstage_auth(stack: tuple[_Server, BackstageCatalog, Path]) -> None:
    _server, backstage, _root = stack
    missing = _via_backstage(backstage, "/v1/entities/component/default/no-such-service/status")
    assert missing.status_code == 404 and "no-such-service" in missing.json()["detail"]
    assert _via_backstage(backstage, "/v1/entities/group/default/team-payments/status").status_code == 404
    # Backstage itself refuses callers without Backstage credentials; obsctl's token stays server-side.
    assert _via_backstage(backstage, "/v1/entities/component/default/checkout/status", token="").status_code == 401
