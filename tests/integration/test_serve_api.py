"""`obsctl serve` as a real process: the registration API drives artifacts end to end; auth scopes;
health, readiness and metrics; status and plan; graceful shutdown on SIGTERM."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.serve import READ_TOKEN, WRITE_TOKEN, ServeProcess, service_doc, snapshot

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with ServeProcess(tmp_path_factory.mktemp("serve-api")) as srv:
        yield srv


def owned_paths(srv: ServeProcess, ns: str, name: str) -> set[str]:
    st = srv.service_status(ns, name)
    return {a["path"] for a in st["artifacts"]} if st else set()


def in_sync(srv: ServeProcess, ns: str, name: str, digest: str | None = None) -> bool:
    """The service's artifacts are all applied, and (given a digest) from that registration."""
    st = srv.service_status(ns, name)
    if not st or not st["artifacts"] or not st["in_sync"]:
        return False
    return digest is None or (st["registered"] or {}).get("digest") == digest


def test_register_change_deregister(server: ServeProcess) -> None:
    out = server.out_dir
    base = snapshot(out)
    assert any(p.startswith("prometheus/rules/default/checkout") for p in base), sorted(base)[:10]

    # register -> artifacts appear
    t0, wall = time.monotonic(), time.time()
    resp = server.client.put("/v1/services/default/payments-api", json=service_doc("payments-api"))
    assert resp.status_code == 201, resp.text
    server.wait_for(lambda: in_sync(server, "default", "payments-api"), what="payments-api artifacts")
    server.wait_round_after(wall)
    elapsed = time.monotonic() - t0
    paths = owned_paths(server, "default", "payments-api")
    assert paths and all((out / p).is_file() for p in paths)
    print(f"registration -> artifacts in place: {elapsed:.2f}s ({len(paths)} artifacts)")
    after_register = snapshot(out)
    assert set(after_register) - set(base) >= {p for p in paths if not p.startswith(".")}

    # change -> only that service's (and its own team's) artifacts change
    wall = time.time()
    resp = server.client.put("/v1/services/default/payments-api", json=service_doc("payments-api", 99.5))
    assert resp.status_code == 200, resp.text
    server.wait_round_after(wall)
    after_change = snapshot(out)
    changed = {p for p in after_change if after_register.get(p) != after_change[p]}
    changed |= set(after_register) - set(after_change)
    rows = server.client.get("/status").json()
    assert changed, "the objective change rewrote nothing"
    team_rows = server.service_status("default", "team-reg")
    team_paths = {a["path"] for a in team_rows["artifacts"]} if team_rows else set()
    assert changed <= paths | team_paths, (changed - paths - team_paths, rows["owners"].keys())

    # deregister -> owned artifacts gone, everything else untouched
    assert server.client.delete("/v1/services/default/payments-api").status_code == 204
    server.wait_for(lambda: not any((out / p).exists() for p in paths), what="artifacts removed")
    server.wait_for(lambda: server.service_status("default", "payments-api") is None, what="status forgotten")
    final = snapshot(out)
    for p, body in base.items():
        if p not in team_paths:
            assert final.get(p) == body, p
    assert server.client.get("/v1/services/default/payments-api").status_code == 404
    actions = [e["action"] for e in server.client.get("/audit").json()["items"]]
    assert actions[:3] == ["deregister", "update", "register"]


def test_bad_document_gets_422_with_located_problems(server: ServeProcess) -> None:
    doc = service_doc("broken")
    doc["spec"]["slos"][0]["objective"] = 100
    del doc["spec"]["owner"]
    resp = server.client.put("/v1/services/default/broken", json=doc)
    assert resp.status_code == 422
    problems = resp.json()["detail"]["problems"]
    fields = {p["field"] for p in problems}
    assert "spec.slos[0].objective" in fields and "spec" in fields
    assert all(p["file"] == "registration:default/broken" and p["line"] > 0 for p in problems)
    mismatch = server.client.put("/v1/services/default/other", json=service_doc("broken"))
    assert mismatch.status_code == 422 and "URL" in mismatch.text
    assert server.client.get("/v1/services/default/broken").status_code == 404


def test_yaml_body_post_and_conflict(server: ServeProcess) -> None:
    body = yaml.safe_dump(service_doc("yaml-svc"))
    headers = {"content-type": "application/yaml"}
    first = server.client.post("/v1/services", content=body, headers=headers)
    assert first.status_code == 201 and first.headers["location"] == "/v1/services/default/yaml-svc"
    assert server.client.post("/v1/services", content=body, headers=headers).status_code == 409
    got = server.client.get("/v1/services/default/yaml-svc").json()
    assert got["document"]["metadata"]["name"] == "yaml-svc" and got["updated_by"].startswith("token:")
    assert "yaml-svc" in {i["name"] for i in server.client.get("/v1/services").json()["items"]}
    assert server.client.delete("/v1/services/default/yaml-svc").status_code == 204


def test_auth_scopes(server: ServeProcess) -> None:
    anon = httpx.Client(base_url=server.url)
    reader = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {READ_TOKEN}"})
    wrong = httpx.Client(base_url=server.url, headers={"Authorization": "Bearer not-a-known-token"})
    try:
        assert anon.get("/status").status_code == 401
        assert anon.get("/status").headers["www-authenticate"].startswith("Bearer")
        assert wrong.get("/v1/services").status_code == 401
        assert reader.get("/status").status_code == 200
        assert reader.get("/plan").status_code == 200
        assert reader.put("/v1/services/default/x", json=service_doc("x")).status_code == 403
        assert reader.post("/reconcile").status_code == 403
        assert reader.delete("/v1/services/default/x").status_code == 403
        for open_path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
            assert anon.get(open_path).status_code == 200, open_path
    finally:
        for c in (anon, reader, wrong):
            c.close()
    log = server.log_path.read_text()
    for secret in (READ_TOKEN, WRITE_TOKEN, "not-a-known-token"):
        assert secret not in log


def test_openapi_lists_the_api(server: ServeProcess) -> None:
    spec = server.client.get("/openapi.json").json()
    for path in ("/v1/services", "/v1/services/{namespace}/{name}", "/status", "/status/{namespace}/{name}",
                 "/plan", "/reconcile", "/healthz", "/readyz", "/metrics"):
        assert path in spec["paths"], path
    put = spec["paths"]["/v1/services/{namespace}/{name}"]["put"]
    assert set(put["requestBody"]["content"]) == {"application/json", "application/yaml"}


def _converged(srv: ServeProcess) -> dict[str, Any] | None:
    plan = srv.client.get("/plan").json()
    quiet = all(s["summary"]["create"] == s["summary"]["update"] == s["summary"]["delete"] == 0
                for s in plan["sinks"].values())
    return plan if quiet else None


def test_status_plan_and_metrics(server: ServeProcess) -> None:
    # earlier tests' deregistrations may still be in flight: converged means the plan goes quiet
    plan = server.wait_for(lambda: _converged(server), what="a quiet plan")
    assert plan["catalog"]["ok"] and plan["catalog"]["services"] >= 5
    st = server.client.get("/status").json()
    assert st["leader"] and st["ready"] and st["last_round"]["complete"]
    assert st["artifacts"]["by_state"].get("applied", 0) > 0 and st["failing"] == []
    svc = server.service_status("default", "checkout")
    assert svc and svc["in_sync"] and {a["sink"] for a in svc["artifacts"]} >= {"files"}
    assert all(a["applied_digest"] == a["desired_digest"] and len(a["applied_digest"]) == 64
               for a in svc["artifacts"])
    resp = server.client.post("/reconcile")
    assert resp.status_code == 202 and resp.json()["leader"]
    text = server.client.get("/metrics").text
    for needle in ("obsctl_reconcile_duration_seconds_bucket", "obsctl_reconcile_queue_depth",
                   'obsctl_artifacts{sink="files",state="applied"}', "obsctl_catalog_age_seconds",
                   "obsctl_sink_errors_total", "obsctl_leader 1.0", "obsctl_ready 1.0"):
        assert needle in text, needle
    age = next(float(line.split()[-1]) for line in text.splitlines() if line.startswith("obsctl_catalog_age_seconds"))
    assert 0 <= age < 120


def test_drift_is_repaired_and_reported(server: ServeProcess) -> None:
    path = server.out_dir / "prometheus/rules/default/search-api.rules.yml"
    original = path.read_bytes()
    path.write_bytes(original + b"# edited by hand\n")
    server.client.post("/reconcile")
    server.wait_for(lambda: path.read_bytes() == original, what="drift repaired")
    # the status rows are written when the sink's apply completes, just after the file
    server.wait_for(lambda: any(a["drift"] and a["path"] == "prometheus/rules/default/search-api.rules.yml"
                                for a in server.service_status("default", "search-api")["artifacts"]),
                    what="drift reported")
    assert path.read_bytes() == original


def test_sigterm_shuts_down_gracefully(tmp_path: Path) -> None:
    srv = ServeProcess(tmp_path)
    try:
        srv.start()
        srv.send(signal.SIGTERM)
        assert srv.proc is not None
        assert srv.proc.wait(30) == 0
        assert '"msg": "stopped"' in srv.log_path.read_text()
        stdout = srv.stdout_path.read_text()
        assert "state.db" in stdout and "catalog" in stdout and "auth" in stdout
    finally:
        srv.close()
