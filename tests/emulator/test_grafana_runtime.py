"""Grafana emulator: auth, request handling, fault injection, test hooks, concurrency, and grafana-client."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaServerError, GrafanaTimeoutError

from tests.grafana_emulator import GrafanaEmulator, RequestRecord

from .conftest import Api, Contract, http_client, minimal_dashboard

AUTHENTICATED_READS = [
    "/api/frontend/settings",
    "/api/search",
    "/api/dashboards/tags",
    "/api/dashboards/uid/x",
    "/api/dashboards/uid/x/versions",
    "/api/folders",
    "/api/folders/x",
    "/api/folders/id/1",
    "/api/datasources",
    "/api/datasources/uid/x",
    "/api/datasources/name/x",
]


def test_health_needs_no_auth_and_has_failure_switch(emu: GrafanaEmulator, api: Api) -> None:
    ok = api.anonymous.get("/api/health")
    assert ok.status_code == 200 and ok.headers["content-type"] == "application/json"
    assert ok.json() == {"commit": "emulator", "database": "ok", "version": "11.4.0"}
    emu.database_failing = True
    failing = api.anonymous.get("/api/health")
    assert (failing.status_code, failing.json()["database"]) == (503, "failing")


def test_frontend_settings(api: Api) -> None:
    assert api.anonymous.get("/api/frontend/settings").status_code == 401
    build = api.viewer.get("/api/frontend/settings").json()["buildInfo"]
    assert {k: build[k] for k in ("version", "commit", "edition", "env")} == {
        "version": "11.4.0",
        "commit": "emulator",
        "edition": "Open Source",
        "env": "production",
    }


@pytest.mark.parametrize("path", AUTHENTICATED_READS)
def test_reads_need_credentials(api: Api, contract: Contract, path: str) -> None:
    resp = api.anonymous.get(path)
    assert (resp.status_code, resp.json()) == (401, {"message": "Unauthorized"})
    bad = api.anonymous.get(path, headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401


def test_auth_schemes_and_roles(emu: GrafanaEmulator, api: Api) -> None:
    with http_client(emu.url, auth=("admin", "admin")) as basic:
        assert basic.post("/api/folders", json={"title": "by basic"}).json()["createdBy"] == "admin"
    with http_client(emu.url, auth=("api_key", "viewer-token")) as key_as_basic:
        assert key_as_basic.get("/api/search").status_code == 200
    with http_client(emu.url, auth=("admin", "wrong")) as wrong:
        assert wrong.get("/api/search").status_code == 401
    garbage = api.anonymous.get("/api/search", headers={"Authorization": "Basic !!!"})
    assert garbage.status_code == 401
    other_org = api.admin.get("/api/search", headers={"X-Grafana-Org-Id": "2"})
    assert other_org.status_code == 401
    assert api.admin.get("/api/search", headers={"X-Grafana-Org-Id": "1"}).status_code == 200

    writes = [
        ("POST", "/api/dashboards/db", {"dashboard": minimal_dashboard()}),
        ("DELETE", "/api/dashboards/uid/x", None),
        ("POST", "/api/folders", {"title": "t"}),
        ("PUT", "/api/folders/x", {"title": "t"}),
        ("POST", "/api/folders/x/move", {}),
        ("DELETE", "/api/folders/x", None),
    ]
    for method, path, body in writes:
        denied = api.viewer.request(method, path, json=body)
        assert denied.status_code == 403, (method, path)
        assert denied.json()["message"].startswith("Access denied")
        assert api.anonymous.request(method, path, json=body).status_code == 401
    for method, path, body in [
        ("POST", "/api/datasources", {"name": "n", "type": "t"}),
        ("PUT", "/api/datasources/uid/x", {"name": "n", "type": "t"}),
        ("DELETE", "/api/datasources/uid/x", None),
    ]:
        assert api.editor.request(method, path, json=body).status_code == 403
        assert api.admin.request(method, path, json=body).status_code != 403


def test_malformed_json_and_content_type_parameters(api: Api) -> None:
    for path in ("/api/dashboards/db", "/api/folders"):
        broken = api.admin.post(path, content=b"{not json", headers={"Content-Type": "application/json"})
        assert (broken.status_code, broken.json()) == (400, {"message": "bad request data"})
    assert api.admin.post("/api/dashboards/db", json={"dashboard": "nope"}).status_code == 400
    assert api.admin.post("/api/dashboards/db", json=[1]).status_code == 400
    with_charset = api.admin.post(
        "/api/folders",
        content=b'{"title": "charset"}',
        headers={"Content-Type": "application/json;charset=utf-8"},
    )
    assert with_charset.status_code == 200
    assert api.admin.get("/api/nothing-here").status_code == 404
    assert api.admin.patch("/api/search").status_code == 405


def test_request_log_and_writes(emu: GrafanaEmulator, api: Api) -> None:
    api.admin.get("/api/search", params=[("tag", "a"), ("tag", "b"), ("folderUIDs", "")])
    api.admin.post("/api/folders", json={"title": "Logged"})
    api.admin.post("/api/folders", content=b"{oops")
    log = emu.request_log
    assert log[0] == RequestRecord("GET", "/api/search", {"tag": ["a", "b"], "folderUIDs": [""]}, 200, None)
    assert log[1].body == {"title": "Logged"} and log[1].status == 200
    assert log[2].body == "{oops" and log[2].status == 400
    assert [w.path for w in emu.writes()] == ["/api/folders", "/api/folders"]
    emu.clear_log()
    assert emu.request_log == [] and emu.writes() == []


def test_fault_injection_5xx_then_recovery(emu: GrafanaEmulator, api: Api) -> None:
    emu.inject_fault(status=503, count=2, path_prefix="/api/dashboards")
    assert api.admin.get("/api/search").status_code == 200  # other paths unaffected
    assert [api.admin.get("/api/dashboards/tags").status_code for _ in range(3)] == [503, 503, 200]
    emu.inject_fault(status=500, count=1, method="POST")
    assert api.admin.get("/api/folders").status_code == 200
    failed = api.admin.post("/api/folders", json={"title": "x"})
    assert (failed.status_code, failed.json()) == (500, {"message": "Internal Server Error"})
    assert api.admin.post("/api/folders", json={"title": "x"}).status_code == 200
    assert [r.status for r in emu.request_log] == [200, 503, 503, 200, 200, 500, 200]


def test_fault_injection_429_retry_after(emu: GrafanaEmulator, api: Api) -> None:
    emu.inject_fault(status=429, count=1, retry_after=2)
    emu.inject_fault(status=429, count=1, retry_after=0.2)
    first, second = api.admin.get("/api/search"), api.admin.get("/api/search")
    assert (first.status_code, first.headers["Retry-After"]) == (429, "2")
    assert (second.status_code, second.headers["Retry-After"]) == (429, "1")
    assert first.json() == {"message": "Too Many Requests"}
    emu.inject_fault(status=503)
    assert "Retry-After" not in api.anonymous.get("/api/health").headers


def test_fault_injection_timeout_and_drop(emu: GrafanaEmulator) -> None:
    emu.inject_fault(status=0, count=1, path_prefix="/api/search", delay_s=1.0)
    emu.inject_fault(status=0, count=1, path_prefix="/api/folders")
    with http_client(emu.url, "admin-token", timeout=0.2) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            client.get("/api/search")
        assert time.monotonic() - started < 0.9
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/api/folders")
        assert client.get("/api/folders").status_code == 200
    assert [r.status for r in emu.request_log][-2:] == [0, 200]


def test_latency_and_concurrent_requests(emu: GrafanaEmulator) -> None:
    emu.latency_s = 0.2

    def create(n: int) -> dict[str, Any]:
        with http_client(emu.url, "editor-token") as client:
            resp = client.post("/api/dashboards/db", json={"dashboard": minimal_dashboard(f"Parallel {n}")})
            assert resp.status_code == 200, resp.text
            return resp.json()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(create, range(16)))
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 1.5, elapsed  # 16 calls of 200 ms over 8 workers: concurrent, not serial (3.2 s)
    assert len({r["id"] for r in results}) == 16 and len({r["uid"] for r in results}) == 16
    assert len(emu.dashboards) == 16


def test_ui_edit_bumps_version_and_causes_412(emu: GrafanaEmulator, api: Api) -> None:
    uid = api.admin.post("/api/dashboards/db", json={"dashboard": minimal_dashboard(uid="drift")}).json()["uid"]

    def rename(model: dict[str, Any]) -> None:
        model["title"] = "Renamed in the UI"
        model["tags"] = ["hand-made"]

    stored = emu.ui_edit(uid, rename)
    assert (stored["version"], stored["title"]) == (2, "Renamed in the UI")
    got = api.admin.get(f"/api/dashboards/uid/{uid}").json()
    assert got["dashboard"]["version"] == 2 and got["meta"]["updatedBy"] == "admin"
    assert api.admin.get("/api/search", params={"tag": "hand-made"}).json()[0]["uid"] == uid
    stale = api.admin.post("/api/dashboards/db", json={"dashboard": minimal_dashboard(uid=uid, version=1)})
    assert stale.status_code == 412
    assert [v["version"] for v in emu.versions(uid)] == [1, 2]
    replaced = emu.ui_edit(uid, lambda model: {**model, "description": "returned copy"})
    assert replaced["version"] == 3 and emu.dashboards[uid]["description"] == "returned copy"
    with pytest.raises(KeyError):
        emu.ui_edit("missing", rename)


def test_seed_hooks(emu: GrafanaEmulator, api: Api) -> None:
    folder = emu.seed_folder("seeded", "Seeded")
    assert folder["uid"] == "seeded" and emu.folders["seeded"]["title"] == "Seeded"
    model = emu.seed_dashboard({"title": "Foreign"}, folder_uid="seeded")
    assert model["version"] == 1 and model["uid"] in emu.dashboards
    assert emu.dashboard_folder(model["uid"]) == "seeded"
    with pytest.raises(ValueError, match="already taken"):
        emu.seed_dashboard({"title": "Dup", "uid": model["uid"]})
    with pytest.raises(ValueError, match="does not exist"):
        emu.seed_dashboard({"title": "Lost"}, folder_uid="nope")
    hit = api.viewer.get("/api/search", params={"query": "foreign"}).json()[0]
    assert hit["folderUid"] == "seeded"


def test_stop_is_prompt_and_frees_the_port(make_emu: Any) -> None:
    emu = make_emu()
    emu.inject_fault(status=0, path_prefix="/api/search", delay_s=30)
    idle = http_client(emu.url, timeout=60)
    assert idle.get("/api/health").status_code == 200  # leaves an idle keep-alive connection open
    hanging_client = http_client(emu.url, timeout=60)
    hanging = threading.Thread(target=_swallow, args=(lambda: hanging_client.get("/api/search"),), daemon=True)
    hanging.start()
    time.sleep(0.2)
    port = emu.port
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 2.0
    hanging.join(timeout=2)
    assert not hanging.is_alive()
    idle.close()
    hanging_client.close()
    with socket.socket() as probe, pytest.raises(OSError):
        probe.connect(("127.0.0.1", port))


def _swallow(call: Any) -> None:
    with contextlib.suppress(httpx.HTTPError):
        call()


def test_grafana_client_round_trip(emu: GrafanaEmulator) -> None:
    grafana = GrafanaApi.from_url(emu.url, credential="editor-token", timeout=5.0)
    assert grafana.health.check()["version"] == "11.4.0"
    assert grafana.version == "11.4.0"
    folder = grafana.folder.create_folder("Obsctl", uid="obsctl")
    assert folder["uid"] == "obsctl"
    saved = grafana.dashboard.update_dashboard(
        {"dashboard": minimal_dashboard("Checkout SLOs", uid="checkout-slos", tags=["obsctl"]), "folderUid": "obsctl"}
    )
    assert saved["status"] == "success" and saved["version"] == 1
    got = grafana.dashboard.get_dashboard("checkout-slos")
    assert got["dashboard"]["title"] == "Checkout SLOs" and got["meta"]["folderUid"] == "obsctl"
    hits = grafana.search.search_dashboards(tag="obsctl", type_="dash-db")
    assert [h["uid"] for h in hits] == ["checkout-slos"]
    # update_dashboard() copies meta.folderUid into the request, so a GET/POST cycle keeps the folder.
    resaved = grafana.dashboard.update_dashboard({**got, "overwrite": False})
    assert resaved["version"] == 2 and resaved["folderUid"] == "obsctl"
    versions = grafana.dashboard_versions.get_dashboard_versions_by_uid("checkout-slos")
    assert [v["version"] for v in versions] == [2, 1]
    with pytest.raises(GrafanaClientError) as conflict:
        grafana.dashboard.update_dashboard({"dashboard": minimal_dashboard("Checkout SLOs", uid="checkout-slos")})
    assert conflict.value.status_code == 412
    deleted = grafana.dashboard.delete_dashboard("checkout-slos")
    assert deleted["message"] == "Dashboard Checkout SLOs deleted"
    assert grafana.search.search_dashboards(tag="obsctl") == []
    assert grafana.folder.delete_folder("obsctl")["title"] == "Obsctl"

    emu.inject_fault(status=502, count=1)
    with pytest.raises(GrafanaServerError):
        grafana.search.search_dashboards()
    emu.inject_fault(status=0, delay_s=1.0)
    slow = GrafanaApi.from_url(emu.url, credential=("admin", "admin"), timeout=0.2)
    with pytest.raises(GrafanaTimeoutError):
        slow.search.search_dashboards()
    writes = [(w.method, w.path) for w in emu.writes()]
    assert writes == [
        ("POST", "/api/folders"),
        ("POST", "/api/dashboards/db"),
        ("POST", "/api/dashboards/db"),
        ("POST", "/api/dashboards/db"),
        ("DELETE", "/api/dashboards/uid/checkout-slos"),
        ("DELETE", "/api/folders/obsctl"),
    ]
