"""Hypothesis fuzzing of the registration API in process: mutated documents, arbitrary structures and
raw bodies (JSON and YAML; unicode, numbers, depth, size). No answer is a 5xx; every refusal says why
(a 422 lists located problems); whatever is accepted renders; after a reconcile round nothing was
written outside the output directory."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obsctl.config import Settings
from obsctl.service.http import create_app
from obsctl.service.runtime import Runtime
from tests.unit.test_fuzz_loaders import VALUES, mutated

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "catalog"
TOKEN = "fuzz-write-token-0123456789"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Runtime, Path]]:
    root = tmp_path_factory.mktemp("fuzz-api")
    shutil.copytree(EXAMPLES, root / "catalog")
    rt = Runtime(Settings(out_dir=root / "out", state_url=f"sqlite:///{root}/state.db",
                          catalog={"path": root / "catalog"},
                          serve={"sources": ["directory", "api"], "watch": False, "resync_seconds": 3600,
                                 "write_tokens": [TOKEN]}))
    with TestClient(create_app(rt), base_url="http://127.0.0.1:8080", raise_server_exceptions=False,
                    headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert rt.reconciler.ready.wait(60)
        yield client, rt, root


def _assert_answer(resp: Any) -> None:
    assert resp.status_code < 500, resp.text
    if resp.status_code >= 400:
        detail = resp.json()["detail"]
        assert detail, resp.text
        if resp.status_code == 422 and isinstance(detail, dict):
            assert detail["problems"] and all(p["message"] for p in detail["problems"])


def _send(client: TestClient, doc: Any, fmt: str) -> Any:
    if fmt == "json":
        body = json.dumps(doc, allow_nan=True).encode()
    else:
        body = yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass")
    meta = doc.get("metadata") if isinstance(doc, dict) and isinstance(doc.get("metadata"), dict) else {}
    name = str(meta.get("name", "fuzz")) if meta else "fuzz"
    if not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", name):  # not addressable in a URL path: POST it
        return client.post("/v1/services", content=body, headers={"Content-Type": f"application/{fmt}"})
    return client.put(f"/v1/services/default/{name}", content=body, headers={"Content-Type": f"application/{fmt}"})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(doc=mutated(), fmt=st.sampled_from(["json", "yaml"]))
def test_mutated_registrations_never_5xx(api: tuple[TestClient, Runtime, Path], doc: Any, fmt: str) -> None:
    client, _, _ = api
    if isinstance(doc, dict) and doc.get("kind") != "Service":
        doc = {**doc, "apiVersion": "obsctl.dev/v1", "kind": "Service"}
    _assert_answer(_send(client, doc, fmt))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(doc=VALUES, fmt=st.sampled_from(["json", "yaml"]))
def test_arbitrary_structures_never_5xx(api: tuple[TestClient, Runtime, Path], doc: Any, fmt: str) -> None:
    client, _, _ = api
    _assert_answer(_send(client, doc, fmt))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(raw=st.one_of(st.binary(max_size=3000), st.text(max_size=3000).map(str.encode)),
       ctype=st.sampled_from(["application/json", "application/yaml", "text/plain", "", "application/x-yaml"]))
def test_raw_bodies_never_5xx(api: tuple[TestClient, Runtime, Path], raw: bytes, ctype: str) -> None:
    client, _, _ = api
    headers = {"Content-Type": ctype} if ctype else {}
    _assert_answer(client.post("/v1/services", content=raw, headers=headers))


def test_after_fuzzing_a_round_converges_and_writes_only_under_out(api: tuple[TestClient, Runtime, Path]) -> None:
    client, rt, root = api
    before = {p for p in root.rglob("*") if "out" not in p.relative_to(root).parts}
    report = rt.reconciler.run_once(full=True, reason="test")
    assert not report.error, report.error
    assert report.catalog_ok
    after = {p for p in root.rglob("*") if "out" not in p.relative_to(root).parts}
    assert {p.name for p in after - before} <= {"state.db-wal", "state.db-shm", "state.db-journal"}
    for reg in rt.store.list_registrations():
        assert client.get(f"/status/{reg.namespace}/{reg.name}").status_code == 200
