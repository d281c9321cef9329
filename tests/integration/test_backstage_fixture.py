"""Smoke tests of the real Backstage catalog backend fixture (tests/support/backstage.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.backstage import SEED_DIR, BackstageCatalog, Entity, entity_ref

pytestmark = pytest.mark.integration

SEED_REFS = {
    "group:default/team-payments",
    "group:default/team-search",
    "system:default/payments",
    "component:default/checkout",
    "component:default/search-api",
}


def component_yaml(name: str, annotations: dict[str, str] | None = None) -> str:
    lines = [
        "apiVersion: backstage.io/v1alpha1",
        "kind: Component",
        "metadata:",
        f"  name: {name}",
    ]
    if annotations:
        lines.append("  annotations:")
        lines += [f'    {key}: "{value}"' for key, value in annotations.items()]
    lines += ["spec:", "  type: service", "  lifecycle: experimental", "  owner: team-payments", ""]
    return "\n".join(lines)


def by_ref(entities: list[Entity]) -> dict[str, Entity]:
    return {entity_ref(e): e for e in entities}


@pytest.fixture(scope="module")
def bs() -> Iterator[BackstageCatalog]:
    with BackstageCatalog(seed_dir=SEED_DIR, processing_seconds=1) as catalog:
        yield catalog


def test_seed_entities_are_served_with_uid_and_etag(bs: BackstageCatalog) -> None:
    entities = by_ref(bs.entities())
    assert entities.keys() >= SEED_REFS
    for ref in SEED_REFS:
        meta = entities[ref]["metadata"]
        assert meta["uid"], ref
        assert meta["etag"], ref
    checkout = entities["component:default/checkout"]
    assert checkout["spec"]["owner"] == "team-payments"
    annotations = checkout["metadata"]["annotations"]
    assert annotations["obsctl.dev/tier"] == "1"
    assert annotations["obsctl.dev/latency"] == "99% < 300ms"
    assert annotations["pagerduty.com/service-id"] == "PCHK001"
    # The static location from app-config points at the fixture's temp glob.
    assert annotations["backstage.io/managed-by-location"] == f"file:{bs.catalog_dir / 'checkout.yaml'}"
    assert {"type": "ownedBy", "targetRef": "group:default/team-payments"} in checkout["relations"]
    search = entities["component:default/search-api"]["metadata"]["annotations"]
    assert (search["obsctl.dev/protocol"], search["obsctl.dev/runtime"]) == ("grpc", "go")


def test_requests_without_a_valid_token_are_rejected(bs: BackstageCatalog) -> None:
    url = f"{bs.api_url}/entities/by-query"
    assert httpx.get(url, timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token-0000"}
    assert httpx.get(url, headers=wrong, timeout=10).status_code == 401
    assert bs.client.get("/entities/by-query").status_code == 200


def test_new_file_under_the_glob_appears(bs: BackstageCatalog) -> None:
    bs.write_entity_file("orders.yaml", component_yaml("orders"))
    entities = bs.wait_for(lambda items: "component:default/orders" in by_ref(items), timeout=30)
    assert by_ref(entities)["component:default/orders"]["metadata"]["uid"]


def test_edited_file_changes_etag_but_keeps_uid(bs: BackstageCatalog) -> None:
    ref = "component:default/billing"
    bs.write_entity_file("billing.yaml", component_yaml("billing"))
    before = by_ref(bs.wait_for(lambda items: ref in by_ref(items)))[ref]["metadata"]

    bs.write_entity_file("billing.yaml", component_yaml("billing", {"obsctl.dev/tier": "2"}))
    bs.refresh(ref)

    def edited(items: list[Entity]) -> bool:
        entity = by_ref(items).get(ref)
        return entity is not None and entity["metadata"].get("annotations", {}).get("obsctl.dev/tier") == "2"

    after = by_ref(bs.wait_for(edited, timeout=30))[ref]["metadata"]
    assert after["uid"] == before["uid"]
    assert after["etag"] != before["etag"]


def test_cursor_pagination_with_fields_and_limit_resent(bs: BackstageCatalog) -> None:
    fields = "kind,metadata.namespace,metadata.name,metadata.uid,metadata.etag"
    expected = {e["metadata"]["uid"] for e in bs.entities(fields="metadata.uid")}
    params: dict[str, Any] = {"fields": fields, "limit": 1}
    first = bs.client.get("/entities/by-query", params=params).json()
    assert first["totalItems"] == len(expected)
    pages = [first]
    while cursor := pages[-1]["pageInfo"].get("nextCursor"):
        assert len(pages) <= len(expected), "pagination does not terminate"
        resp = bs.client.get("/entities/by-query", params={**params, "cursor": cursor})
        assert resp.status_code == 200, resp.text
        pages.append(resp.json())
    items = [item for page in pages for item in page["items"]]
    assert all(len(page["items"]) == 1 for page in pages)
    # Only the requested fields come back on every page, including cursor pages.
    assert all(set(item) == {"kind", "metadata"} for item in items)
    assert all(set(item["metadata"]) == {"namespace", "name", "uid", "etag"} for item in items)
    uids = [item["metadata"]["uid"] for item in items]
    assert len(uids) == len(set(uids))
    assert set(uids) == expected


def test_deleting_a_location_removes_its_entity_at_once(bs: BackstageCatalog) -> None:
    ref = "component:default/ledger"
    path = bs.work_dir / "ledger.yaml"
    path.write_text(component_yaml("ledger"), encoding="utf-8")
    location_id = bs.register_location(path)
    entity = by_ref(bs.wait_for(lambda items: ref in by_ref(items)))[ref]
    assert entity["metadata"]["annotations"]["backstage.io/managed-by-location"] == f"file:{path}"

    bs.delete_location(location_id)
    bs.wait_for(lambda items: ref not in by_ref(items), timeout=5)
    assert bs.client.get("/entities/by-name/component/default/ledger").status_code == 404


def test_removed_file_marks_its_entity_orphan(bs: BackstageCatalog) -> None:
    # Runs last: the orphan is deleted ~30 s later, which would disturb a listing in progress.
    ref = "component:default/orders"
    bs.write_entity_file("orders.yaml", component_yaml("orders"))
    bs.wait_for(lambda items: ref in by_ref(items))
    bs.remove_entity_file("orders.yaml")

    def orphaned(items: list[Entity]) -> bool:
        entity = by_ref(items).get(ref)
        annotations = entity["metadata"].get("annotations", {}) if entity else {}
        return entity is None or annotations.get("backstage.io/orphan") == "true"

    bs.wait_for(orphaned, timeout=30)
    assert not (bs.catalog_dir / "orders.yaml").exists()
