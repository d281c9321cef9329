"""Grafana emulator: dashboards, versions, tags and search, checked against Grafana's spec and rules."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.grafana_emulator import GrafanaEmulator

from .conftest import Api, Contract, http_client, minimal_dashboard


def save(client: httpx.Client, dashboard: dict[str, Any], **fields: Any) -> httpx.Response:
    return client.post("/api/dashboards/db", json={"dashboard": dashboard, **fields})


def test_create_get_update_roundtrip_matches_spec(emu: GrafanaEmulator, api: Api, contract: Contract) -> None:
    api.admin.post("/api/folders", json={"uid": "team-a", "title": "Team A"}).raise_for_status()
    created = save(api.editor, minimal_dashboard("Checkout  Latency!", tags=["svc", "obsctl"]), folderUid="team-a")
    assert created.status_code == 200
    body = created.json()
    contract.check("/dashboards/db", "post", body, extra_keys=frozenset({"slug"}))
    uid = body["uid"]
    assert body["id"] > 0 and body["version"] == 1 and body["status"] == "success"
    assert body["slug"] == "checkout-latency" and body["url"] == f"/d/{uid}/checkout-latency"
    assert body["folderUid"] == "team-a"
    assert uid[0].isalpha() and len(uid) == 14

    got = api.viewer.get(f"/api/dashboards/uid/{uid}")
    assert got.status_code == 200
    contract.check("/dashboards/uid/{uid}", "get", got.json())
    dash, meta = got.json()["dashboard"], got.json()["meta"]
    assert (dash["id"], dash["uid"], dash["version"], dash["title"]) == (body["id"], uid, 1, "Checkout  Latency!")
    assert meta["folderUid"] == "team-a" and meta["folderTitle"] == "Team A"
    assert meta["folderUrl"] == "/dashboards/f/team-a/team-a" and meta["folderId"] == 1
    assert meta["canSave"] is False and meta["canStar"] is True  # viewer
    assert meta["provisioned"] is False and meta["expires"] == "0001-01-01T00:00:00Z"
    assert meta["createdBy"] == "sa-editor" and meta["type"] == "db"

    # Update with the stored version: version+1; no folderUid given: moves to the root.
    updated = save(api.editor, {**dash, "description": "v2"})
    assert updated.status_code == 200, updated.text
    assert (updated.json()["id"], updated.json()["version"], updated.json()["folderUid"]) == (body["id"], 2, "")
    meta2 = api.admin.get(f"/api/dashboards/uid/{uid}").json()["meta"]
    assert (meta2["folderUid"], meta2["folderId"], meta2["folderTitle"], meta2["folderUrl"]) == ("", 0, "General", "")
    assert meta2["canSave"] and meta2["canAdmin"]
    assert emu.dashboards[uid]["description"] == "v2" and emu.dashboards[uid]["version"] == 2


def test_title_and_uid_are_trimmed_and_ids_autoincrement(api: Api) -> None:
    first = save(api.admin, minimal_dashboard("  Spaced  ", uid="  given-uid "))
    second = save(api.admin, minimal_dashboard("Other"))
    assert first.json()["uid"] == "given-uid" and first.json()["slug"] == "spaced"
    assert second.json()["id"] == first.json()["id"] + 1
    assert api.admin.get("/api/dashboards/uid/given-uid").json()["dashboard"]["title"] == "Spaced"


def test_version_mismatch_412_and_overwrite_adopts_stored(api: Api, contract: Contract) -> None:
    uid = save(api.admin, minimal_dashboard(uid="ver")).json()["uid"]
    save(api.admin, minimal_dashboard(uid=uid, version=1)).raise_for_status()  # now version 2
    stale = save(api.admin, minimal_dashboard(uid=uid, version=1))
    assert stale.status_code == 412
    assert stale.json() == {"status": "version-mismatch", "message": "The dashboard has been changed by someone else"}
    contract.check("/dashboards/db", "post", stale.json(), status="412")
    missing_version = save(api.admin, minimal_dashboard(uid=uid))
    assert missing_version.status_code == 412  # no version means 0, as in Grafana
    forced = save(api.admin, minimal_dashboard(uid=uid, version=1), overwrite=True)
    assert forced.status_code == 200 and forced.json()["version"] == 3


def _check_order_steps(emu: GrafanaEmulator) -> list[tuple[dict[str, Any], int, dict[str, Any]]]:
    """Bodies that each fix the earliest problem of the previous one; the expected error moves down the list."""
    emu.seed_folder("fold", "Folder")
    emu.seed_dashboard(minimal_dashboard("Existing", uid="exists"))
    other_id = emu.seed_dashboard(minimal_dashboard("Other", uid="other"))["id"]
    emu.set_plugin("exists", "grafana-plugin")
    emu.mark_provisioned("exists", "dashboards/existing.json")
    all_wrong = {
        "dashboard": {"title": "  ", "uid": "bad uid!", "id": 99999, "version": 0},
        "message": "m" * 501,
        "folderUid": "nope",
    }

    def step(change: dict[str, Any], dashboard_change: dict[str, Any]) -> dict[str, Any]:
        all_wrong.update(change)
        all_wrong["dashboard"] = {**all_wrong["dashboard"], **dashboard_change}
        return {**all_wrong, "dashboard": dict(all_wrong["dashboard"])}

    def msg(message: str, status: str | None = None) -> dict[str, Any]:
        return {"message": message, **({"status": status} if status else {})}

    valid = {"schemaVersion": 41, "templating": {}, "annotations": {}}
    return [
        (step({}, {}), 400, msg("Dashboard title cannot be empty", "empty-name")),
        (
            step({}, {"title": "t" * 5001}),
            400,
            msg("Dashboard title cannot contain more than 5 000 characters", "title-too-long"),
        ),
        (step({}, {"title": "Check order"}), 400, msg("uid contains illegal characters")),
        (step({}, {"uid": "u" * 41}), 400, msg("uid too long, max 40 characters")),
        (step({}, {"uid": "exists"}), 400, msg("message too long, max 500 characters")),
        (step({"message": "ok"}, {}), 400, {"path": "dashboard"}),  # strict schema: schemaVersion missing
        (step({}, valid), 400, msg("folder not found")),
        (step({"folderUid": "fold"}, {}), 404, msg("Dashboard not found", "not-found")),
        (step({}, {"id": other_id}), 400, msg("A dashboard with the same uid already exists")),
        (step({}, {"id": 0, "uid": "fold"}), 400, msg("Dashboard cannot be changed to a folder")),
        (
            step({}, {"uid": "exists"}),
            412,
            msg("The dashboard has been changed by someone else", "version-mismatch"),
        ),
        (step({}, {"version": 1}), 412, msg("The dashboard belongs to plugin grafana-plugin.", "plugin-dashboard")),
        (step({"overwrite": True}, {}), 400, msg("Cannot save provisioned dashboard")),
    ]


def test_post_dashboard_check_order(emu: GrafanaEmulator, api: Api) -> None:
    for body, status, expected in _check_order_steps(emu):
        resp = api.admin.post("/api/dashboards/db", json=body)
        assert resp.status_code == status, (body["dashboard"], resp.text)
        got = resp.json()
        if "path" in expected:
            assert got["path"] == expected["path"] and "'schemaVersion' is a required property" in got["message"]
        else:
            assert got == expected
    assert emu.dashboards["exists"]["version"] == 1  # nothing was saved along the way


def test_strict_schema_names_failing_path_and_can_be_off(make_emu: Any) -> None:
    strict = make_emu()
    bad_panel = {"type": "timeseries", "id": 1, "gridPos": {"x": 0, "y": 0, "w": 12}}
    with http_client(strict.url, "admin-token") as client:
        resp = save(client, minimal_dashboard(panels=[bad_panel]))
        assert resp.status_code == 400
        assert resp.json()["path"] == "dashboard.panels[0].gridPos"
        assert "dashboard.panels[0].gridPos: 'h' is a required property" in resp.json()["message"]
        null_ids = save(client, minimal_dashboard(id=None, uid=None))  # Grafana's docs post these: accepted
        assert null_ids.status_code == 200, null_ids.text
    lax = make_emu(strict_schema=False)
    with http_client(lax.url, "admin-token") as client:
        assert save(client, {"title": "anything", "panels": [bad_panel]}).status_code == 200
    main = make_emu(schema_path="main")
    assert main.schema is not None and main.schema.path.name == "dashboard.main-v0.0.18.jsonschema.json"


def test_refresh_below_minimum_is_clamped_like_grafana(emu: GrafanaEmulator, api: Api) -> None:
    low = save(api.admin, minimal_dashboard(uid="low", refresh="1s"))
    junk = save(api.admin, minimal_dashboard(uid="junk", refresh="soon"))
    fine = save(api.admin, minimal_dashboard(uid="fine", refresh="1m"))
    assert (low.status_code, junk.status_code, fine.status_code) == (200, 200, 200)
    assert [emu.dashboards[u]["refresh"] for u in ("low", "junk", "fine")] == ["5s", "5s", "1m"]


def test_refresh_reject_policy(make_emu: Any) -> None:
    emu = make_emu(refresh_policy="reject")
    with http_client(emu.url, "admin-token") as client:
        low = save(client, minimal_dashboard(refresh="4s"))
        assert (low.status_code, low.json()) == (400, {"message": "Dashboard refresh interval is too low"})
        assert save(client, minimal_dashboard(refresh="soon")).status_code == 500
        assert save(client, minimal_dashboard(refresh="1m30s")).status_code == 200


def test_unique_titles_switch(make_emu: Any) -> None:
    new = make_emu()
    old = make_emu(unique_titles=True)
    for emulator in (new, old):
        with http_client(emulator.url, "admin-token") as client:
            assert save(client, minimal_dashboard("Same", uid="first")).status_code == 200
            second = save(client, minimal_dashboard("Same", uid="second"))
            if emulator is new:
                assert second.status_code == 200
                continue
            assert second.status_code == 412
            assert second.json() == {
                "status": "name-exists",
                "message": "A dashboard with the same name in the folder already exists",
            }
            # With overwrite, Grafana <= 11.2 replaces the same-titled dashboard.
            taken = save(client, minimal_dashboard("Same", uid="second"), overwrite=True)
            assert (taken.status_code, taken.json()["uid"], taken.json()["version"]) == (200, "first", 2)
            assert client.get("/api/health").json()["version"] == "11.2.0"
            assert client.post("/api/folders", json={"title": "F"}).status_code == 200
            assert client.post("/api/folders", json={"title": "F"}).status_code == 409


def test_get_and_delete_errors(emu: GrafanaEmulator, api: Api, contract: Contract) -> None:
    missing = api.admin.get("/api/dashboards/uid/nope")
    assert (missing.status_code, missing.json()) == (404, {"message": "Dashboard not found"})
    contract.check("/dashboards/uid/{uid}", "get", missing.json(), status="404")
    assert api.admin.delete("/api/dashboards/uid/nope").status_code == 404
    emu.seed_dashboard(minimal_dashboard("Prov", uid="prov"))
    emu.mark_provisioned("prov")
    refused = api.admin.delete("/api/dashboards/uid/prov")
    assert (refused.status_code, refused.json()) == (400, {"message": "provisioned dashboard cannot be deleted"})
    assert api.admin.get("/api/dashboards/uid/prov").json()["meta"]["provisionedExternalId"] == "file.json"
    emu.seed_folder("fold", "Fold")
    assert api.admin.delete("/api/dashboards/uid/fold").status_code == 400
    folder_as_dash = api.admin.get("/api/dashboards/uid/fold").json()
    assert folder_as_dash["meta"]["isFolder"] is True


def test_delete_dashboard_drops_versions_and_tags(emu: GrafanaEmulator, api: Api, contract: Contract) -> None:
    uid = save(api.admin, minimal_dashboard("Gone", tags=["x"])).json()["uid"]
    deleted = api.editor.delete(f"/api/dashboards/uid/{uid}")
    assert deleted.status_code == 200
    contract.check("/dashboards/uid/{uid}", "delete", deleted.json(), extra_keys=frozenset({"id"}))
    assert deleted.json()["message"] == "Dashboard Gone deleted" and deleted.json()["uid"] == uid
    assert uid not in emu.dashboards and emu.versions(uid) == []
    assert api.admin.get("/api/dashboards/tags").json() == []
    assert api.admin.get(f"/api/dashboards/uid/{uid}/versions").status_code == 404


def test_versions_list(emu: GrafanaEmulator, api: Api, contract: Contract) -> None:
    uid = save(api.admin, minimal_dashboard(uid="v"), message="first").json()["uid"]
    for n in (1, 2, 3):
        save(api.admin, minimal_dashboard(uid=uid, version=n), message=f"save {n + 1}").raise_for_status()
    listed = api.editor.get(f"/api/dashboards/uid/{uid}/versions")
    assert listed.status_code == 200
    contract.check("/dashboards/uid/{uid}/versions", "get", listed.json())
    versions = listed.json()
    assert [v["version"] for v in versions] == [4, 3, 2, 1]
    assert [v["parentVersion"] for v in versions] == [3, 2, 1, 0]
    assert [v["message"] for v in versions] == ["save 4", "save 3", "save 2", "Initial save"]
    assert {v["uid"] for v in versions} == {uid} and versions[0]["createdBy"] == "sa-admin"
    page = api.editor.get(f"/api/dashboards/uid/{uid}/versions", params={"limit": 2, "start": 1}).json()
    assert [v["version"] for v in page] == [3, 2]
    one = api.editor.get(f"/api/dashboards/uid/{uid}/versions/2").json()
    contract.check("/dashboards/uid/{uid}/versions/{DashboardVersionID}", "get", one)
    assert one["data"]["version"] == 2 and one["message"] == "save 2"
    denied = api.viewer.get(f"/api/dashboards/uid/{uid}/versions")
    assert (denied.status_code, denied.json()) == (403, {"message": "Access denied to this dashboard"})


def test_tag_cloud(api: Api, contract: Contract) -> None:
    save(api.admin, minimal_dashboard("A", tags=["b", "a"])).raise_for_status()
    save(api.admin, minimal_dashboard("B", tags=["a"])).raise_for_status()
    tags = api.viewer.get("/api/dashboards/tags")
    contract.check("/dashboards/tags", "get", tags.json())
    assert tags.json() == [{"term": "a", "count": 2}, {"term": "b", "count": 1}]


@pytest.fixture
def catalog(emu: GrafanaEmulator) -> dict[str, int]:
    """Two folders (one nested) and four dashboards for the search tests; returns their ids by uid."""
    emu.seed_folder("ops", "Ops")
    emu.seed_folder("ops-db", "Databases", parent_uid="ops")
    dashboards = [
        (minimal_dashboard("alpha API", uid="d-alpha", tags=["api", "obsctl"]), None),
        (minimal_dashboard("Beta api", uid="d-beta", tags=["api"]), "ops"),
        (minimal_dashboard("Gamma", uid="d-gamma", tags=["obsctl"]), "ops-db"),
        (minimal_dashboard("Omega", uid="d-omega"), None),
    ]
    ids = {uid: emu.folders[uid]["id"] for uid in ("ops", "ops-db")}
    for dash, folder in dashboards:
        ids[dash["uid"]] = emu.seed_dashboard(dash, folder)["id"]
    return ids


def _uids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [hit["uid"] for hit in resp.json()]


def test_search_filters(api: Api, catalog: dict[str, int], contract: Contract) -> None:
    everything = api.viewer.get("/api/search")
    contract.check("/search", "get", everything.json())
    # No sort given: each page lists folders first, then dashboards, each by title.
    assert _uids(everything) == ["ops-db", "ops", "d-alpha", "d-beta", "d-gamma", "d-omega"]
    assert _uids(api.viewer.get("/api/search", params={"sort": "alpha-asc"})) == [
        "d-alpha", "d-beta", "ops-db", "d-gamma", "d-omega", "ops",
    ]  # fmt: skip
    assert _uids(api.viewer.get("/api/search", params={"sort": "alpha-desc"}))[0] == "ops"
    assert _uids(api.viewer.get("/api/search", params={"query": "API"})) == ["d-alpha", "d-beta"]
    assert _uids(api.viewer.get("/api/search", params=[("tag", "api"), ("tag", "obsctl")])) == ["d-alpha"]
    assert _uids(api.viewer.get("/api/search", params={"tag": "obsctl"})) == ["d-alpha", "d-gamma"]
    assert _uids(api.viewer.get("/api/search", params={"type": "dash-folder"})) == ["ops-db", "ops"]
    assert _uids(api.viewer.get("/api/search", params={"type": "dash-db", "query": "a"})) == [
        "d-alpha", "d-beta", "d-gamma", "d-omega",
    ]  # fmt: skip
    assert _uids(api.viewer.get("/api/search", params=[("dashboardUIDs", "d-beta"), ("dashboardUIDs", "ops")])) == [
        "ops", "d-beta",
    ]  # fmt: skip
    assert _uids(api.viewer.get("/api/search", params={"dashboardUID": "d-omega"})) == ["d-omega"]
    assert _uids(api.viewer.get("/api/search", params={"dashboardIds": catalog["d-gamma"]})) == ["d-gamma"]
    assert _uids(api.viewer.get("/api/search", params={"folderUIDs": "ops", "type": "dash-db"})) == ["d-beta"]
    assert _uids(api.viewer.get("/api/search", params={"folderUIDs": ""})) == ["ops", "d-alpha", "d-omega"]
    assert _uids(api.viewer.get("/api/search", params={"folderUIDs": "general", "type": "dash-db"})) == [
        "d-alpha", "d-omega",
    ]  # fmt: skip
    assert _uids(api.viewer.get("/api/search", params={"folderIds": catalog["ops-db"]})) == ["d-gamma"]
    assert _uids(api.viewer.get("/api/search", params={"folderIds": 0, "type": "dash-db"})) == ["d-alpha", "d-omega"]
    assert _uids(api.viewer.get("/api/search", params={"starred": "true"})) == []


def test_search_hit_shapes(api: Api, catalog: dict[str, int]) -> None:
    hits = {h["uid"]: h for h in api.viewer.get("/api/search").json()}
    assert hits["d-beta"] == {
        "id": catalog["d-beta"],
        "uid": "d-beta",
        "title": "Beta api",
        "uri": "db/beta-api",
        "url": "/d/d-beta/beta-api",
        "slug": "",
        "type": "dash-db",
        "tags": ["api"],
        "isStarred": False,
        "sortMeta": 0,
        "isDeleted": False,
        "folderId": catalog["ops"],
        "folderUid": "ops",
        "folderTitle": "Ops",
        "folderUrl": "/dashboards/f/ops/ops",
    }
    assert hits["d-alpha"]["tags"] == ["api", "obsctl"] and "folderUid" not in hits["d-alpha"]
    assert hits["ops"]["url"] == "/dashboards/f/ops/ops" and hits["ops"]["type"] == "dash-folder"
    assert hits["ops-db"]["folderUid"] == "ops"


def test_search_limits_and_pages(emu: GrafanaEmulator, api: Api, contract: Contract) -> None:
    for n in range(7):
        emu.seed_dashboard(minimal_dashboard(f"Dash {n}", uid=f"d{n}"))
    pages = [_uids(api.viewer.get("/api/search", params={"limit": 3, "page": p})) for p in (1, 2, 3, 4)]
    assert pages == [["d0", "d1", "d2"], ["d3", "d4", "d5"], ["d6"], []]
    assert _uids(api.viewer.get("/api/search", params={"limit": 3, "page": 0})) == pages[0]
    assert len(_uids(api.viewer.get("/api/search", params={"limit": 5000}))) == 7
    too_many = api.viewer.get("/api/search", params={"limit": 5001})
    assert too_many.status_code == 422
    assert too_many.json() == {
        "message": "Limit is above maximum allowed (5000), use page parameter to access hits beyond limit"
    }
    contract.check("/search", "get", too_many.json(), status="422")
    both = api.viewer.get("/api/search", params={"dashboardIds": 1, "dashboardUIDs": "d1"})
    assert (both.status_code, both.json()) == (400, {"message": "search supports UIDs or IDs, not both"})


def test_search_default_limit_is_1000(emu: GrafanaEmulator, api: Api) -> None:
    for n in range(1001):
        emu.seed_dashboard({"title": f"D{n:04d}", "uid": f"u{n}"})
    assert len(api.viewer.get("/api/search").json()) == 1000
    assert _uids(api.viewer.get("/api/search", params={"page": 2})) == ["u1000"]
