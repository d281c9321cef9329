"""The write API's guards, in process: closed by default, Host/Origin checks, team write scopes,
catalog ownership, streamed body limits, parsing depth, names, and poison registrations refused
with the field named before anything is stored."""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from obsctl.config import Settings
from obsctl.service.bodies import MAX_DEPTH, MAX_DOCUMENT_BYTES
from obsctl.service.http import create_app
from obsctl.service.runtime import Runtime
from tests.support.alerting import UNDELIVERED

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "catalog"
ADMIN = "admin-token-0123456789"
PAYMENTS = "payments-token-0123456789"
READER = "reader-token-0123456789"


def doc(name: str, owner: str = "team-payments", namespace: str = "default", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"owner": owner, "slos": [{"name": "availability", "objective": 99.9,
                                                      "sli": {"availability": {}}}]}
    body.update(spec)
    return {"apiVersion": "obsctl.dev/v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": body}


def make_runtime(tmp_path: Path, **serve: Any) -> Runtime:
    if not (tmp_path / "catalog").exists():
        shutil.copytree(EXAMPLES, tmp_path / "catalog")
    settings = Settings(out_dir=tmp_path / "out", state_url=f"sqlite:///{tmp_path}/state.db",
                        catalog={"path": tmp_path / "catalog"}, alerting=UNDELIVERED,
                        serve={"sources": ["directory", "api"], "watch": False, "resync_seconds": 3600, **serve})
    return Runtime(settings)


@pytest.fixture
def closed(tmp_path: Path) -> Iterator[tuple[TestClient, Runtime]]:
    rt = make_runtime(tmp_path)
    with TestClient(create_app(rt), base_url="http://127.0.0.1:8080") as client:
        assert rt.reconciler.ready.wait(60)
        yield client, rt


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Runtime]]:
    rt = make_runtime(tmp_path_factory.mktemp("scoped"), write_tokens=[ADMIN], read_tokens=[READER],
                      team_write_tokens={"team-payments": [PAYMENTS]})
    with TestClient(create_app(rt), base_url="http://127.0.0.1:8080",
                    headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        assert rt.reconciler.ready.wait(60)
        yield client, rt


def problems(resp: Any) -> list[dict[str, Any]]:
    detail = resp.json()["detail"]
    assert isinstance(detail, dict), detail
    return list(detail["problems"])


# -- closed by default ---------------------------------------------------------------------------


def test_no_token_means_writes_refused_with_how_to_configure(closed: tuple[TestClient, Runtime]) -> None:
    client, rt = closed
    resp = client.put("/v1/services/default/orders", json=doc("orders"))
    assert resp.status_code == 403
    assert "serve.write_tokens" in resp.json()["detail"] and "allow_unauthenticated_writes" in resp.json()["detail"]
    assert client.delete("/v1/services/default/orders").status_code == 403
    assert client.post("/reconcile").status_code == 403
    assert rt.store.get_registration("default", "orders") is None
    assert client.get("/status").status_code == 200  # reads stay open
    assert "writes CLOSED" in rt.describe()["auth"]


def test_open_writes_only_when_said_and_the_banner_says_so(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path, allow_unauthenticated_writes=True)
    assert "OPEN" in rt.describe()["auth"] and "ANYONE" in rt.describe()["auth"]
    with TestClient(create_app(rt), base_url="http://localhost:8080") as client:
        assert client.put("/v1/services/default/orders", json=doc("orders")).status_code == 201


# -- Host and Origin ----------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1:8080", True), ("localhost:8080", True), ("[::1]:8080", True), ("10.1.2.3", True),
    ("attacker.example", False), ("attacker.example:8080", False), ("127.0.0.1.nip.io", False),
])
def test_host_header_is_checked_against_dns_rebinding(scoped: tuple[TestClient, Runtime], host: str,
                                                      allowed: bool) -> None:
    client, _ = scoped
    resp = client.get("/healthz", headers={"Host": host})
    assert resp.status_code == (200 if allowed else 403), resp.text
    if not allowed:
        assert "serve.allowed_hosts" in resp.json()["detail"]


def test_cross_origin_writes_are_refused(scoped: tuple[TestClient, Runtime], caplog: pytest.LogCaptureFixture
                                         ) -> None:
    client, rt = scoped
    caplog.set_level(logging.WARNING, "obsctl.service.guard")
    evil = client.put("/v1/services/default/x-origin", json=doc("x-origin"),
                      headers={"Origin": "http://attacker.example"})
    assert evil.status_code == 403 and "serve.allowed_origins" in evil.json()["detail"]
    assert "cross-origin guard" in caplog.text
    # a simple (no preflight) cross-origin request: text/plain is refused even with a good origin
    plain = client.post("/v1/services", content=json.dumps(doc("x-origin")),
                        headers={"Content-Type": "text/plain", "Origin": "http://127.0.0.1:8080"})
    assert plain.status_code == 415
    assert rt.store.get_registration("default", "x-origin") is None
    same = client.put("/v1/services/default/x-origin", json=doc("x-origin"), headers={"Origin": "http://127.0.0.1:8080"})
    assert same.status_code == 201, same.text
    assert client.get("/status", headers={"Origin": "http://attacker.example"}).status_code == 200  # reads


# -- team scopes and catalog ownership -----------------------------------------------------------


def test_team_token_writes_only_its_teams_services(scoped: tuple[TestClient, Runtime]) -> None:
    client, rt = scoped
    team = {"Authorization": f"Bearer {PAYMENTS}"}
    ok = client.put("/v1/services/default/pay-api", json=doc("pay-api"), headers=team)
    assert ok.status_code == 201, ok.text
    other = client.put("/v1/services/default/search-x", json=doc("search-x", owner="team-search"), headers=team)
    assert other.status_code == 403 and "group:default/team-search" in other.json()["detail"]
    # the admin registers a team-search service: the payments token may neither replace nor remove it
    assert client.put("/v1/services/default/search-y", json=doc("search-y", owner="team-search")).status_code == 201
    steal = client.put("/v1/services/default/search-y", json=doc("search-y"), headers=team)
    assert steal.status_code == 403 and "may not replace" in steal.json()["detail"]
    assert client.delete("/v1/services/default/search-y", headers=team).status_code == 403
    assert rt.store.get_registration("default", "search-y") is not None
    reader = client.put("/v1/services/default/r", json=doc("r"), headers={"Authorization": f"Bearer {READER}"})
    assert reader.status_code == 403
    assert client.delete("/v1/services/default/pay-api", headers=team).status_code == 204


def test_registration_may_not_take_over_a_catalog_service(scoped: tuple[TestClient, Runtime]) -> None:
    client, rt = scoped
    resp = client.put("/v1/services/default/checkout", json=doc("checkout", owner="team-search"))
    assert resp.status_code == 409
    [p] = problems(resp)
    assert p["field"] == "metadata.name" and "owned by the catalog" in p["message"]
    assert "registrations_may_override_catalog" in p["message"]
    assert rt.store.get_registration("default", "checkout") is None


def test_override_when_allowed_is_said_in_response_and_audit(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path, write_tokens=[ADMIN], registrations_may_override_catalog=True)
    with TestClient(create_app(rt), base_url="http://127.0.0.1:8080",
                    headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        assert rt.reconciler.ready.wait(60)
        resp = client.put("/v1/services/default/checkout", json=doc("checkout"))
        assert resp.status_code == 201, resp.text
        assert "overrides the catalog" in resp.json()["warning"]
        entry = next(e for e in rt.store.list_audit(10) if e.target == "default/checkout")
        assert "component:default/checkout" in entry.detail["overrides_catalog"]


# -- bodies ---------------------------------------------------------------------------------------


def test_oversized_body_is_refused_while_streaming(scoped: tuple[TestClient, Runtime]) -> None:
    client, _ = scoped
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for i in range(64):  # 64 x 64 KiB = 4 MiB offered, the limit is 256 KiB
            sent.append(i)
            yield b"#" * 65536

    resp = client.put("/v1/services/default/big", content=chunks(), headers={"Content-Type": "application/yaml"})
    assert resp.status_code == 413
    declared = client.put("/v1/services/default/big", content=b"x", headers={
        "Content-Type": "application/yaml", "Content-Length": str(MAX_DOCUMENT_BYTES + 1)})
    assert declared.status_code == 413


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_deep_nesting_is_a_logged_400(scoped: tuple[TestClient, Runtime], caplog: pytest.LogCaptureFixture,
                                      fmt: str) -> None:
    client, _ = scoped
    caplog.set_level(logging.WARNING)
    depth = 50_000
    body = "[" * depth + "]" * depth if fmt == "json" else "a:\n" + "".join(" " * i + "- \n" for i in range(200))
    if fmt == "yaml":
        body = "[" * depth + "]" * depth  # flow style nests without indentation
    resp = client.put("/v1/services/default/deep", content=body, headers={"Content-Type": f"application/{fmt}"})
    assert resp.status_code == 400, resp.text
    assert "deeper" in resp.json()["detail"] or "nests" in resp.json()["detail"]
    assert "nested" in caplog.text or "nests" in caplog.text
    shallow_enough = {"a": {"b": {"c": 1}}}
    assert client.post("/v1/services", json=shallow_enough).status_code == 422
    nested = cur = {}  # type: ignore[var-annotated]
    for _ in range(MAX_DEPTH + 2):
        cur["x"] = {}
        cur = cur["x"]
    assert client.post("/v1/services", json={**doc("deep2"), "extra": nested}).status_code == 400


@pytest.mark.parametrize(("name", "namespace", "field"), [
    ("a/b", "default", "metadata.name"), ("ok", "", "metadata.namespace"), ("", "default", "metadata.name"),
    ("x" * 64, "default", "metadata.name"), ("bad\x00name", "default", "metadata.name"),
])
def test_names_that_cannot_be_addressed_are_refused(scoped: tuple[TestClient, Runtime], name: str, namespace: str,
                                                    field: str) -> None:
    client, rt = scoped
    resp = client.post("/v1/services", json=doc(name, namespace=namespace))
    assert resp.status_code == 422, resp.text
    assert field in {p["field"] for p in problems(resp)}
    assert all(r.name != name for r in rt.store.list_registrations())


# -- poison registrations -------------------------------------------------------------------------

POISON: list[tuple[str, dict[str, Any], str]] = [
    ("label-name", doc("p1", slos=[{"name": "a", "objective": 99, "sli": {"availability": {}},
                                    "alerting": {"labels": {"bad-label": "x"}}}]), "spec.slos[0].alerting.labels"),
    ("wrapped-query", doc("p2", slos=[{"name": "a", "objective": 99, "sli": {"events": {
        "error_query": "sum(rate(e[{{window}}])) # note", "total_query": "sum(rate(t[{{window}}]))"}}}]),
     "spec.slos[0].sli.events.error_query"),
    ("overflow", doc("p3", slos=[{"name": "a", "objective": 99, "sli": {"latency": {"threshold": 1e308}}}]),
     "spec.slos[0].sli.latency.threshold"),
    ("min-events", doc("p4", slos=[{"name": "a", "objective": 99, "sli": {"availability": {}},
                                    "alerting": {"minEvents": 1e300}}]), "spec.slos[0].alerting.minEvents"),
    ("control", doc("p5", title="x\x1b[31mred"), "spec.title"),
    ("owner-control", doc("p6", owner="team\x07x"), "spec.owner"),
    ("uid-collision", doc("search.api", owner="team-search"), "metadata.name"),
    ("folder-collision", doc("p7", owner="team.payments"), "spec.owner"),
]


@pytest.mark.parametrize(("case", "body", "field"), POISON, ids=[c[0] for c in POISON])
def test_poison_registration_is_refused_with_the_field(scoped: tuple[TestClient, Runtime], case: str,
                                                       body: dict[str, Any], field: str) -> None:
    client, rt = scoped
    name = body["metadata"]["name"]
    resp = client.put(f"/v1/services/default/{name}", content=yaml.safe_dump(body),
                      headers={"Content-Type": "application/yaml"})
    assert resp.status_code == 422, resp.text
    fields = {p["field"] for p in problems(resp)}
    assert any(f.startswith(field) for f in fields), (case, fields)
    assert rt.store.get_registration("default", name) is None


def test_collector_expansions_in_a_registration_reach_the_config_escaped(scoped: tuple[TestClient, Runtime]) -> None:
    """`${env:…}` and `${file:…}` in catalog values would be expanded by the collector (reading its
    environment or any file it can read); they must arrive as `$${…}`, the collector's literal `$`."""
    client, rt = scoped
    hostile = doc("hostile-env", environment="${env:OBSCTL_SECRET}-${file:/etc/shadow}")
    resp = client.put("/v1/services/default/hostile-env", json=hostile)
    if resp.status_code == 422:  # refused at the door is as safe as escaped
        return
    assert resp.status_code == 201, resp.text
    report = rt.reconciler.run_once(full=True, reason="test")
    assert not report.error, report.error
    agents = [p for p in rt.settings.out_dir.rglob("*hostile-env*") if "otel" in str(p)]
    assert agents, sorted(str(p) for p in rt.settings.out_dir.rglob("*hostile-env*"))
    for path in agents:
        text = path.read_text()
        assert "OBSCTL_SECRET" in text and "/etc/shadow" in text
        assert not re.search(r"(?<!\$)\$\{(env|file):", text), text
    assert client.delete("/v1/services/default/hostile-env").status_code == 204


def test_admission_without_a_loop_render_still_checks_collisions() -> None:
    """A follower has no desired state of its own: the index comes from an isolated render of the
    catalog, which never raises, even when the catalog already holds a colliding pair."""
    from obsctl import app as composition
    from obsctl.model.entities import Catalog
    from obsctl.model.source import SourceFile
    from obsctl.render.incremental import IncrementalRenderer
    from obsctl.service.admission import Admission
    from obsctl.service.auth import ANONYMOUS_WRITER
    from obsctl.sources.directory import read_directory
    from obsctl.spec.load import load_catalog

    settings = Settings()
    templates = composition.load_templates(settings)
    poison = SourceFile("poison.yaml", yaml.safe_dump(doc("search.api", "team-search")).encode())
    files = [*read_directory(EXAMPLES), poison]
    catalog = load_catalog(files, templates).catalog
    renderer = IncrementalRenderer(templates, composition.render_options(settings))
    admission = Admission(composition.catalog_loader(templates), composition.catalog_renderer(settings, templates),
                          lambda: catalog, lambda: None,
                          render_catalog=lambda c: renderer.isolated(c).desired)
    with pytest.raises(Exception) as refused:
        admission.admit(doc("p9", owner="team.payments"), ANONYMOUS_WRITER, ("default", "p9"), lambda _n, _s: None)
    assert getattr(refused.value, "status_code", 0) == 422
    assert "collides" in json.dumps(refused.value.detail)  # type: ignore[attr-defined]
    ok = admission.admit(doc("p10"), ANONYMOUS_WRITER, ("default", "p10"), lambda _n, _s: None)
    assert ok.name == "p10" and isinstance(catalog, Catalog)


def _full_index(desired: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """What the admission's collision index was before it was kept incrementally: every path's holder
    from a walk of the desired state in id order (the last artifact at a path holds it)."""
    from obsctl.model.status import owner_key

    return {a.path: (a.id, owner_key(a.owner)) for _aid, a in sorted(desired.items())}


def test_the_collision_index_followed_round_by_round_equals_one_built_afresh() -> None:
    """The admission's path index follows the loop's desired state from what each round changed; over random
    rounds (artifacts added, removed, re-rendered, moved to another path, paths shared by a carried owner) it
    answers as an index built from the whole desired state would."""
    import random

    from obsctl.model.artifact import Artifact, Kind
    from obsctl.service.admission import PathIndex

    rnd = random.Random(14)

    def art(i: int, path: int, owner: int) -> Artifact:
        return Artifact(Kind.GRAFANA_DASHBOARD, f"d{i:03d}", f"p/{path:03d}.json", f"{i}-{rnd.random()}".encode(),
                        f"component:default/svc-{owner}")

    desired = {a.id: a for a in (art(i, i, i % 7) for i in range(60))}
    index = PathIndex(desired)
    for _ in range(300):
        desired = dict(desired)  # each round hands over a new dict
        for _ in range(rnd.randint(0, 4)):
            op, i = rnd.choice(["add", "remove", "rerender", "move", "share"]), rnd.randrange(80)
            key = f"grafana-dashboard/d{i:03d}"
            if op == "remove":
                desired.pop(key, None)
            elif op in ("add", "rerender"):
                desired[key] = art(i, i, i % 7)
            elif op == "move":
                desired[key] = art(i, rnd.randrange(80), i % 7)
            else:  # a second artifact at an existing path (a failed owner's carried artifact)
                other = rnd.choice(sorted(desired)) if desired else key
                desired[key] = art(i, int(desired[other].path[2:5]) if other in desired else i, rnd.randrange(7))
        desired = dict(sorted(desired.items()))
        index.moved_to(desired)
        assert index.paths == _full_index(desired)
        probe = art(rnd.randrange(80), rnd.randrange(80), 0)
        full = {a.id: (a.id, a.owner.split(":")[1]) for a in desired.values()}.get(probe.id) \
            or _full_index(desired).get(probe.path)
        assert index.holder(probe.id, probe.path) == full
