"""The Backstage source against a small fake catalog API that keeps Backstage's observed quirks:
the cursor carries the filter but not `fields` or `limit`; 401 without the token; uid and etag
output fields; `backstage.io/orphan`. The real backend is exercised in
tests/integration/test_serve_backstage.py."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from obsctl.app import load_templates
from obsctl.config import load_settings
from obsctl.errors import PermanentError, TemporaryError
from obsctl.sources.backstage import BackstageSource, entity_ref
from obsctl.spec.load import load_catalog

TOKEN = "fake-catalog-token-123"


def component(name: str, owner: str = "team-a", **ann: str) -> dict[str, Any]:
    return {"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": {"name": name, "namespace": "default",
                         "annotations": {"obsctl.dev/availability": "99.9", **ann}},
            "spec": {"type": "service", "lifecycle": "production", "owner": owner}}


class FakeCatalog:
    """Entities by ref; etag = hash of the body, uid stable per ref."""

    def __init__(self) -> None:
        self.entities: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, list[str]], Any]] = []
        self.fail_status: int | None = None
        self.retry_after: str | None = None
        self.server: ThreadingHTTPServer | None = None

    def put(self, entity: dict[str, Any]) -> None:
        ref = entity_ref(entity)
        body = json.loads(json.dumps(entity))
        meta = body["metadata"]
        meta.pop("etag", None)
        meta["uid"] = self.entities.get(ref, {}).get("metadata", {}).get("uid") or hashlib.md5(ref.encode()).hexdigest()
        meta["etag"] = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()
        body["relations"] = [{"type": "ownedBy", "targetRef": "group:default/team-a"}]
        self.entities[ref] = body

    @staticmethod
    def pick(entity: dict[str, Any], fields: str | None) -> dict[str, Any]:
        if not fields:
            return entity
        out: dict[str, Any] = {}
        for path in fields.split(","):
            src: Any = entity
            parts = path.split(".")
            for p in parts:
                src = src.get(p) if isinstance(src, dict) else None
            if src is None:
                continue
            dst = out
            for p in parts[:-1]:
                dst = dst.setdefault(p, {})
            dst[parts[-1]] = src
        return out

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(h.path)
        qs = parse_qs(url.query)
        length = int(h.headers.get("content-length") or 0)
        body = json.loads(h.rfile.read(length)) if length else None
        self.requests.append((method, url.path, qs, body))
        if h.headers.get("authorization") != f"Bearer {TOKEN}":
            return self.reply(h, 401, {"error": {"name": "AuthenticationError"}})
        if self.fail_status:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            return self.reply(h, self.fail_status, {"error": "boom"}, headers)
        if method == "GET" and url.path == "/api/catalog/entities/by-query":
            if "cursor" in qs:
                state = json.loads(base64.b64decode(qs["cursor"][0]))
                kinds, offset = state["kinds"], state["offset"]
            else:
                kinds = [f.split("=", 1)[1] for f in qs.get("filter", [])]
                offset = 0
            limit = int(qs.get("limit", ["20"])[0])  # not carried in the cursor, as in Backstage
            fields = qs.get("fields", [None])[0]
            matching = [e for ref, e in sorted(self.entities.items()) if not kinds or e["kind"].lower() in kinds]
            page = matching[offset:offset + limit]
            nxt = offset + limit
            info = {"nextCursor": base64.b64encode(json.dumps({"kinds": kinds, "offset": nxt}).encode()).decode()} \
                if nxt < len(matching) else {}
            return self.reply(h, 200, {"items": [self.pick(e, fields) for e in page],
                                       "totalItems": len(matching), "pageInfo": info})
        if method == "POST" and url.path == "/api/catalog/entities/by-refs":
            return self.reply(h, 200, {"items": [self.entities.get(r.lower()) for r in body["entityRefs"]]})
        return self.reply(h, 404, {"error": "not found"})

    @staticmethod
    def reply(h: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def calls(self, path: str) -> list[tuple[str, str, dict[str, list[str]], Any]]:
        return [r for r in self.requests if r[1].endswith(path)]


@pytest.fixture
def catalog() -> Iterator[FakeCatalog]:
    fake = FakeCatalog()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.handle(self, "GET")

        def do_POST(self) -> None:
            fake.handle(self, "POST")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.server = server
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        t.join(5)


def url(fake: FakeCatalog) -> str:
    assert fake.server is not None
    return f"http://127.0.0.1:{fake.server.server_address[1]}"


def test_paginates_resending_fields_and_limit_and_filters_by_kind(catalog: FakeCatalog) -> None:
    for i in range(7):
        catalog.put(component(f"svc-{i}"))
    catalog.put({"apiVersion": "backstage.io/v1alpha1", "kind": "Location", "metadata": {"name": "generated-x"},
                 "spec": {"type": "file", "target": "/x"}})
    src = BackstageSource(url(catalog), TOKEN, page_size=3)
    result = src.fetch()
    assert result.complete
    assert [f.path for f in result.files] == [f"backstage:component:default/svc-{i}" for i in range(7)]
    pages = catalog.calls("/by-query")
    assert len(pages) == 3
    for _m, _p, qs, _b in pages:
        assert qs["limit"] == ["3"] and "metadata.etag" in qs["fields"][0]
    assert sorted(pages[0][2]["filter"]) == ["kind=api", "kind=component", "kind=group", "kind=system"]
    assert "filter" not in pages[1][2] and "cursor" in pages[1][2]
    doc = result.files[0].data.decode()
    assert "relations" not in doc and "etag" not in doc and "uid" not in doc
    loaded = load_catalog(result.files, load_templates(load_settings()))
    assert [str(s.ref) for s in loaded.catalog.services] == [f"component:default/svc-{i}" for i in range(7)]


def test_only_changed_bodies_are_refetched(catalog: FakeCatalog) -> None:
    for name in ("a", "b", "c"):
        catalog.put(component(name))
    src = BackstageSource(url(catalog), TOKEN)
    first = src.fetch()
    assert src.bodies_fetched == 3
    catalog.requests.clear()
    assert src.fetch().files == first.files
    assert catalog.calls("/by-refs") == [] and src.bodies_fetched == 3
    catalog.put(component("b", **{"obsctl.dev/availability": "99.5"}))
    third = src.fetch()
    assert [r[3]["entityRefs"] for r in catalog.calls("/by-refs")] == [["component:default/b"]]
    assert b"99.5" in next(f.data for f in third.files if f.path.endswith("/b"))


def test_vanished_and_orphaned_entities_are_deregistered(catalog: FakeCatalog) -> None:
    for name in ("a", "b", "c"):
        catalog.put(component(name))
    src = BackstageSource(url(catalog), TOKEN)
    src.fetch()
    del catalog.entities["component:default/a"]
    catalog.put(component("b", **{"backstage.io/orphan": "true"}))
    assert [f.path for f in src.fetch().files] == ["backstage:component:default/c"]


def test_errors_are_classified_and_the_token_never_leaks(catalog: FakeCatalog) -> None:
    catalog.put(component("a"))
    with pytest.raises(PermanentError, match="401") as info:
        BackstageSource(url(catalog), "wrong-token-xyz").fetch()
    assert "wrong-token-xyz" not in str(info.value)
    src = BackstageSource(url(catalog), TOKEN)
    catalog.fail_status, catalog.retry_after = 503, "12"
    with pytest.raises(TemporaryError) as tinfo:
        src.fetch()
    assert tinfo.value.retry_after == 12.0 and TOKEN not in str(tinfo.value)
    catalog.fail_status = 429
    with pytest.raises(TemporaryError):
        src.fetch()
    with pytest.raises(TemporaryError, match="ConnectError"):
        BackstageSource("http://127.0.0.1:1", TOKEN, timeout=1).fetch()


def test_watch_wakes_on_change_only(catalog: FakeCatalog) -> None:
    catalog.put(component("a"))
    src = BackstageSource(url(catalog), TOKEN, poll_seconds=0.05)
    src.fetch()
    reasons: list[str] = []
    stop = threading.Event()
    t = threading.Thread(target=src.watch, args=(reasons.append, stop), daemon=True)
    t.start()
    try:
        stop.wait(0.3)
        assert reasons == []
        catalog.put(component("a", **{"obsctl.dev/tier": "1"}))
        for _ in range(100):
            if reasons:
                break
            stop.wait(0.02)
        assert reasons and "changed" in reasons[0]
    finally:
        stop.set()
        t.join(5)
