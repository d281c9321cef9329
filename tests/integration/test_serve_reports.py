"""SLO reports through the service's HTTP API (`GET /v1/reports`), in process, against a real Prometheus
holding three days of SLO history (tests/integration/_slo_env.py): the same report as the CLI,
every format, auth, and closed calendar periods kept as snapshots in the state store that outlive
Prometheus and catalog changes."""

from __future__ import annotations

import io
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from obsctl.app import load_path, load_templates
from obsctl.cli import main
from obsctl.config import Settings, load_settings
from obsctl.service.http import create_app
from obsctl.service.runtime import Runtime
from obsctl.slo.query import build_report
from obsctl.slo.report import Report, ReportFilter
from tests.integration._slo_env import END, start_prometheus
from tests.support.alerting import UNDELIVERED
from tests.support.prom import Prometheus

pytestmark = pytest.mark.integration

TEMPLATES = load_templates(load_settings(None))
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "catalog"
READ = {"Authorization": "Bearer reports-read-token"}
WRITE = {"Authorization": "Bearer reports-write-token"}
MONTH = "2026-10"  # closed at END (2026-11-02): snapshotted


def _settings(work: Path, prometheus_url: str) -> Settings:
    return Settings(out_dir=work / "out", state_url=f"sqlite:///{work.parent}/state.db",
                    catalog={"path": work.parent / "catalog"}, prometheus={"url": prometheus_url},
                    alerting=UNDELIVERED,
                    serve={"sources": ["directory"], "watch": False, "resync_seconds": 3600,
                           "read_tokens": ["reports-read-token"], "write_tokens": ["reports-write-token"]})


class Service:
    """One in-process `obsctl serve` (runtime + FastAPI app) with its clock pinned to END."""

    def __init__(self, work: Path, prometheus_url: str) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.rt = Runtime(_settings(work, prometheus_url))
        self.client = TestClient(create_app(self.rt, clock=lambda: END), base_url="http://127.0.0.1")

    def __enter__(self) -> Service:
        self.client.__enter__()
        assert self.rt.reconciler.ready.wait(60), "the first reconcile round did not complete"
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(*exc)

    def get(self, path: str = "/v1/reports", headers: dict[str, str] | None = None, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=READ if headers is None else headers)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Prometheus, Path]]:
    root = tmp_path_factory.mktemp("serve-reports")
    shutil.copytree(EXAMPLES, root / "catalog")
    t0 = time.monotonic()
    prom, origin = start_prometheus(root / "prom-data", TEMPLATES)
    print(f"\nPrometheus with 3 days of SLO history ready in {time.monotonic() - t0:.1f}s (rules: {origin})")
    try:
        yield prom, root
    finally:
        prom.stop()


@pytest.fixture(scope="module")
def svc(env: tuple[Prometheus, Path]) -> Iterator[Service]:
    prom, root = env
    with Service(root / "a", prom.url) as s:
        yield s


def _library(prom: Prometheus, root: Path, period: str, filters: ReportFilter | None = None,
             charts: bool = False) -> Report:
    cat = load_path(root / "catalog", load_settings(None), TEMPLATES, routing=False).catalog
    return build_report(cat, TEMPLATES, prom.url, filters, period, END, charts=charts)


def _slos(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(sv["service"], s["slo"]): s for t in doc["teams"] for sv in t["services"] for s in sv["slos"]}


def test_rolling_json_equals_cli_and_library(env: tuple[Prometheus, Path], svc: Service) -> None:
    prom, root = env
    t0 = time.monotonic()
    resp = svc.get(period="rolling")
    elapsed = time.monotonic() - t0
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["x-obsctl-report-origin"] == "prometheus" and "x-obsctl-snapshot" not in resp.headers
    assert resp.text == _library(prom, root, "rolling").to_json()
    out, err = io.StringIO(), io.StringIO()
    code = main(["slo", "report", "--catalog", str(root / "catalog"), "--prometheus", prom.url, "--now", str(END),
                 "-o", "json"], out, err)
    assert code == 0, err.getvalue()
    assert resp.text == out.getvalue()
    assert _slos(resp.json())[("checkout", "availability")]["status"] == "burning"
    print(f"rolling report over HTTP: {elapsed * 1000:.0f} ms, {resp.json()['summary']['slos']} SLOs, "
          f"{resp.json()['queries']} queries")
    # filters, as the CLI's
    one = svc.get(service="checkout", slo="availability").json()
    assert list(_slos(one)) == [("checkout", "availability")]
    assert svc.get(team="nobody").status_code == 404
    bad = svc.get(period="2026-13")
    assert bad.status_code == 400 and "unknown period 2026-13" in bad.json()["detail"]
    assert svc.get(format="pdf").status_code == 422


def test_formats_and_content_types(svc: Service) -> None:
    md = svc.get(period="this-month", format="markdown")
    assert md.status_code == 200 and md.headers["content-type"] == "text/markdown; charset=utf-8"
    assert md.text.startswith("# SLO report: 2026-11")
    html = svc.get(format="html", charts="true")
    assert html.status_code == 200 and html.headers["content-type"] == "text/html; charset=utf-8"
    assert html.text.startswith("<!DOCTYPE html>") and html.text.count("<svg") >= 2
    table = svc.get(format="table", team="team-payments")
    assert table.status_code == 200 and table.headers["content-type"] == "text/plain; charset=utf-8"
    assert "checkout" in table.text and "search-api" not in table.text


def test_auth_read_scope_suffices(svc: Service) -> None:
    assert svc.get(headers={}).status_code == 401
    assert svc.get(headers={"Authorization": "Bearer nope"}).status_code == 401
    assert svc.get("/v1/reports/snapshots", headers={}).status_code == 401
    assert svc.get(headers=READ).status_code == 200
    assert svc.get("/v1/reports/snapshots", headers=READ).status_code == 200
    # rebuilding a snapshot writes to the store: write scope
    assert svc.get(headers=READ, period=MONTH, refresh="true").status_code == 403
    spec = svc.client.get("/openapi.json").json()
    assert {"/v1/reports", "/v1/reports/snapshots"} <= set(spec["paths"])


def test_closed_month_is_snapshotted_and_filtered(env: tuple[Prometheus, Path], svc: Service) -> None:
    prom, root = env
    first = svc.get(period=MONTH, charts="true")
    assert first.status_code == 200, first.text
    assert first.headers["x-obsctl-report-origin"] == "prometheus"
    assert first.headers["x-obsctl-snapshot"] == f"calendar:{MONTH}"
    assert first.text == _library(prom, root, MONTH, charts=True).to_json()
    assert _slos(first.json())[("checkout", "availability")]["error_ratio"] is not None
    keys = svc.get("/v1/reports/snapshots").json()["items"]
    assert {"key": f"calendar:{MONTH}", "period": MONTH} in keys
    # last-month names the same closed month: served from the snapshot
    again = svc.get(period="last-month", charts="true")
    assert again.headers["x-obsctl-report-origin"] == "snapshot"
    assert again.text == first.text
    # without charts: the same numbers, no chart series
    plain = svc.get(period=MONTH).json()
    assert all(not s["charts"]["budget"] and not s["charts"]["burn"] for s in _slos(plain).values())
    assert plain["summary"] == first.json()["summary"]
    # filters applied to the snapshot give what a filtered report from Prometheus gives
    for params, flt in (({"team": "team-payments"}, ReportFilter(team="team-payments")),
                        ({"team": "group:default/team-search"}, ReportFilter(team="group:default/team-search")),
                        ({"service": "default/ledger", "slo": "availability"},
                         ReportFilter(service="default/ledger", slo="availability"))):
        got = svc.get(period=MONTH, charts="true", **params)
        assert got.headers["x-obsctl-report-origin"] == "snapshot"
        want = _library(prom, root, MONTH, flt, charts=True).to_dict()
        doc = got.json()
        assert doc["teams"] == want["teams"] and doc["summary"] == want["summary"], params
        assert doc["summary"]["slos"] > 0
    md = svc.get(period=MONTH, format="markdown", team="team-payments")
    assert md.headers["x-obsctl-report-origin"] == "snapshot" and md.text.startswith(f"# SLO report: {MONTH}")
    # the month in progress is never stored, nor a closed quarter without any data
    assert svc.get(period="this-month").headers["x-obsctl-report-origin"] == "prometheus"
    empty = svc.get(period="2026-Q3")
    assert empty.status_code == 200 and empty.json()["summary"]["no-data"] == empty.json()["summary"]["slos"]
    assert svc.get(period="2026-Q3").headers["x-obsctl-report-origin"] == "prometheus"
    assert [k["key"] for k in svc.get("/v1/reports/snapshots").json()["items"]] == [f"calendar:{MONTH}"]


def test_snapshot_outlives_catalog_changes_and_prometheus(env: tuple[Prometheus, Path], svc: Service) -> None:
    prom, root = env
    stored = svc.get(period=MONTH, charts="true")
    assert stored.headers["x-obsctl-report-origin"] == "snapshot"

    # a label change: checkout moves to another team; the closed month still says what it said
    checkout = root / "catalog" / "checkout.yaml"
    checkout.write_text(checkout.read_text().replace("owner: team-payments", "owner: team-search", 1))
    svc.rt.reconciler.run_once(reason="test: catalog changed")
    cat = svc.rt.reconciler.catalog
    assert cat is not None and next(s for s in cat.services if s.name == "checkout").team.name == "team-search"
    live = svc.get(period="this-month", service="checkout").json()
    assert [t["team"] for t in live["teams"]] == ["team-search"]
    assert svc.get(period=MONTH, charts="true").text == stored.text
    assert "checkout" in json.dumps(svc.get(period=MONTH, team="team-payments").json())

    # retention or an outage: Prometheus is gone
    prom.stop()
    t0 = time.monotonic()
    down = svc.get(period="rolling")
    assert down.status_code == 503, down.text
    assert "unreachable" in down.json()["detail"] and prom.url in down.json()["detail"]
    assert down.headers["retry-after"]
    print(f"rolling report with Prometheus down: 503 in {(time.monotonic() - t0) * 1000:.0f} ms")
    t0 = time.monotonic()
    again = svc.get(period=MONTH, charts="true")
    print(f"snapshot served with Prometheus down: {(time.monotonic() - t0) * 1000:.0f} ms, {len(again.content)} bytes")
    assert again.status_code == 200 and again.text == stored.text
    # a refresh needs Prometheus: it fails and leaves the snapshot as it was
    refresh = svc.get(headers=WRITE, period=MONTH, refresh="true")
    assert refresh.status_code == 503
    assert svc.get(period=MONTH, charts="true").text == stored.text

    # another replica (same store) with no Prometheus configured at all still serves the snapshot
    with Service(root / "b", "") as other:
        assert other.get(period=MONTH, charts="true").text == stored.text
        none = other.get(period="rolling")
        assert none.status_code == 503 and "no Prometheus URL configured" in none.json()["detail"]
        this_month = other.get(period="this-month")
        assert this_month.status_code == 503
