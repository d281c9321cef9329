"""Grafana emulator: folders (nested, move, cascade delete) and data sources."""

from __future__ import annotations

from tests.grafana_emulator import GrafanaEmulator

from .conftest import Api, Contract, minimal_dashboard

FOLDER_EXTRA = frozenset({"description"})  # in the contract and Grafana's JSON, not in the v11.4 Folder definition


def test_create_and_get_folder_matches_spec(emu: GrafanaEmulator, api: Api, contract: Contract) -> None:
    created = api.editor.post("/api/folders", json={"title": " Platform ", "uid": "platform", "description": "d"})
    assert created.status_code == 200, created.text
    contract.check("/folders", "post", created.json(), extra_keys=FOLDER_EXTRA)
    folder = created.json()
    assert (folder["uid"], folder["title"], folder["version"], folder["orgId"]) == ("platform", "Platform", 1, 1)
    assert folder["url"] == "/dashboards/f/platform/platform" and folder["hasAcl"] is False
    assert folder["canSave"] and folder["canDelete"] and not folder["canAdmin"]  # editor
    assert "parentUid" not in folder and "parents" not in folder

    by_uid = api.viewer.get("/api/folders/platform")
    contract.check("/folders/{folder_uid}", "get", by_uid.json(), extra_keys=FOLDER_EXTRA)
    assert by_uid.json()["id"] == folder["id"] and by_uid.json()["canSave"] is False
    by_id = api.viewer.get(f"/api/folders/id/{folder['id']}")
    contract.check("/folders/id/{folder_id}", "get", by_id.json(), extra_keys=FOLDER_EXTRA)
    assert by_id.json()["uid"] == "platform"
    generated = api.editor.post("/api/folders", json={"title": "No uid"}).json()
    assert generated["uid"][0].isalpha() and len(generated["uid"]) == 14
    assert generated["id"] == folder["id"] + 1


def test_folder_create_errors(emu: GrafanaEmulator, api: Api, contract: Contract) -> None:
    emu.seed_folder("taken", "Taken")
    emu.seed_dashboard(minimal_dashboard("Dash", uid="dash-uid"))
    cases = [
        ({"title": "  "}, 400, {"message": "folder title cannot be empty"}),
        ({"title": "general"}, 400, {"message": "A folder with that name already exists"}),
        ({"title": "x", "uid": "bad uid"}, 400, {"message": "uid contains illegal characters"}),
        ({"title": "x", "uid": "u" * 41}, 400, {"message": "uid too long, max 40 characters"}),
        ({"title": "x", "uid": "taken"}, 409, {"message": "a folder/dashboard with the same uid already exists"}),
        ({"title": "x", "uid": "dash-uid"}, 409, {"message": "a folder/dashboard with the same uid already exists"}),
        ({"title": "x", "parentUid": "nope"}, 404, {"status": "not-found", "message": "folder not found"}),
        ({"title": 5}, 400, {"message": "bad request data"}),
    ]
    for body, status, expected in cases:
        resp = api.editor.post("/api/folders", json=body)
        assert (resp.status_code, resp.json()) == (status, expected), body
        contract.check("/folders", "post", resp.json(), status=str(status))
    assert api.editor.post("/api/folders", json={"title": "Taken"}).status_code == 200  # titles need not be unique


def test_nested_folders_depth_parents_and_listing(emu: GrafanaEmulator, api: Api, contract: Contract) -> None:
    parent = ""
    for level in range(1, 6):  # five levels: a root folder and four nested below it
        resp = api.editor.post(
            "/api/folders", json={"uid": f"l{level}", "title": f"Level {level}", "parentUid": parent}
        )
        assert resp.status_code == 200, (level, resp.text)
        parent = f"l{level}"
    too_deep = api.editor.post("/api/folders", json={"uid": "l6", "title": "Level 6", "parentUid": "l5"})
    assert too_deep.status_code == 400
    assert too_deep.json() == {
        "message": "Maximum nested folder depth reached",
        "messageId": "folder.maximum-depth-reached",
    }

    l3 = api.viewer.get("/api/folders/l3").json()
    contract.check("/folders/{folder_uid}", "get", l3, extra_keys=FOLDER_EXTRA)
    assert l3["parentUid"] == "l2" and [p["uid"] for p in l3["parents"]] == ["l1", "l2"]

    api.editor.post("/api/folders", json={"uid": "b-side", "title": "B side", "parentUid": "l1"}).raise_for_status()
    children = api.viewer.get("/api/folders", params={"parentUid": "l1"})
    contract.check("/folders", "get", children.json())
    assert children.json() == [
        {"id": emu.folders["b-side"]["id"], "uid": "b-side", "title": "B side", "parentUid": "l1"},
        {"id": emu.folders["l2"]["id"], "uid": "l2", "title": "Level 2", "parentUid": "l1"},
    ]
    assert [f["uid"] for f in api.viewer.get("/api/folders").json()] == ["l1"]
    assert [
        f["uid"] for f in api.viewer.get("/api/folders", params={"parentUid": "l1", "limit": 1, "page": 2}).json()
    ] == ["l2"]
    assert api.viewer.get("/api/folders", params={"parentUid": "nope"}).status_code == 404


def test_update_folder(emu: GrafanaEmulator, api: Api, contract: Contract) -> None:
    emu.seed_folder("f", "Old")
    updated = api.editor.put("/api/folders/f", json={"title": "New", "version": 1})
    assert updated.status_code == 200
    contract.check("/folders/{folder_uid}", "put", updated.json(), extra_keys=FOLDER_EXTRA)
    assert (updated.json()["title"], updated.json()["version"]) == ("New", 2)
    stale = api.editor.put("/api/folders/f", json={"title": "Newer", "version": 1})
    assert (stale.status_code, stale.json()) == (
        412,
        {"status": "version-mismatch", "message": "the folder has been changed by someone else"},
    )
    forced = api.editor.put("/api/folders/f", json={"title": "Newer", "version": 1, "overwrite": True})
    assert (forced.status_code, forced.json()["version"]) == (200, 3)
    assert api.editor.put("/api/folders/f", json={"title": " "}).status_code == 400
    assert api.editor.put("/api/folders/nope", json={"title": "x"}).status_code == 404
    assert api.viewer.put("/api/folders/f", json={"title": "x"}).status_code == 403


def test_move_folder(emu: GrafanaEmulator, api: Api, contract: Contract) -> None:
    emu.seed_folder("a", "A")
    emu.seed_folder("a1", "A1", parent_uid="a")
    emu.seed_folder("a2", "A2", parent_uid="a1")
    emu.seed_folder("b", "B")
    moved = api.editor.post("/api/folders/a/move", json={"parentUid": "b"})
    assert moved.status_code == 200
    contract.check("/folders/{folder_uid}/move", "post", moved.json(), extra_keys=FOLDER_EXTRA)
    assert moved.json()["parentUid"] == "b" and [p["uid"] for p in moved.json()["parents"]] == ["b"]
    circular = api.editor.post("/api/folders/a/move", json={"parentUid": "a2"})
    assert circular.status_code == 400 and circular.json()["message"] == "folder cannot be parent of itself"
    assert api.editor.post("/api/folders/a/move", json={"parentUid": "a"}).status_code == 400
    assert api.editor.post("/api/folders/a/move", json={"parentUid": "nope"}).status_code == 404
    assert api.editor.post("/api/folders/nope/move", json={"parentUid": ""}).status_code == 404
    # b/a/a1/a2 has depth 4: moving a under b/c/d would put a2 at depth 6.
    emu.seed_folder("c", "C", parent_uid="b")
    emu.seed_folder("d", "D", parent_uid="c")
    deep = api.editor.post("/api/folders/a/move", json={"parentUid": "d"})
    assert deep.status_code == 400 and deep.json()["messageId"] == "folder.maximum-depth-reached"
    to_root = api.editor.post("/api/folders/a/move", json={})
    assert to_root.status_code == 200 and "parentUid" not in to_root.json()


def test_delete_folder_cascades(emu: GrafanaEmulator, api: Api, contract: Contract) -> None:
    emu.seed_folder("top", "Top")
    emu.seed_folder("sub", "Sub", parent_uid="top")
    emu.seed_folder("keep", "Keep")
    emu.seed_dashboard(minimal_dashboard("In top", uid="in-top"), "top")
    emu.seed_dashboard(minimal_dashboard("In sub", uid="in-sub"), "sub")
    emu.seed_dashboard(minimal_dashboard("Kept", uid="kept"), "keep")
    emu.set_alert_rules("sub", 2)
    refused = api.editor.delete("/api/folders/top")
    assert (refused.status_code, refused.json()) == (400, {"message": "folder contains alert rules"})
    deleted = api.editor.delete("/api/folders/top", params={"forceDeleteRules": "true"})
    assert deleted.status_code == 200
    contract.check("/folders/{folder_uid}", "delete", deleted.json(), extra_keys=frozenset({"uid"}))
    assert deleted.json()["message"] == "Folder Top deleted" and deleted.json()["title"] == "Top"
    assert set(emu.folders) == {"keep"} and set(emu.dashboards) == {"kept"}
    assert api.editor.delete("/api/folders/top").status_code == 404
    gone = api.viewer.get("/api/folders/sub")
    assert (gone.status_code, gone.json()) == (404, {"status": "not-found", "message": "folder not found"})
    assert api.viewer.get("/api/folders/id/999").status_code == 404
    assert api.viewer.get("/api/folders/id/abc").status_code == 400


def test_datasources(emu: GrafanaEmulator, api: Api, contract: Contract) -> None:
    body = {
        "name": "Prometheus",
        "type": "prometheus",
        "uid": "prom",
        "url": "http://127.0.0.1:9090",
        "access": "proxy",
        "isDefault": True,
        "jsonData": {"httpMethod": "POST"},
        "secureJsonData": {"httpHeaderValue1": "secret"},
    }
    created = api.admin.post("/api/datasources", json=body)
    assert created.status_code == 200, created.text
    contract.check("/datasources", "post", created.json())
    assert created.json()["message"] == "Datasource added" and created.json()["datasource"]["version"] == 1
    assert created.json()["datasource"]["secureJsonFields"] == {"httpHeaderValue1": True}
    assert "secret" not in created.text

    listed = api.viewer.get("/api/datasources")
    contract.check("/datasources", "get", listed.json())
    assert [d["uid"] for d in listed.json()] == ["prom"] and listed.json()[0]["isDefault"] is True
    by_uid = api.viewer.get("/api/datasources/uid/prom")
    contract.check("/datasources/uid/{uid}", "get", by_uid.json())
    assert by_uid.json()["jsonData"] == {"httpMethod": "POST"}
    by_name = api.viewer.get("/api/datasources/name/Prometheus")
    contract.check("/datasources/name/{name}", "get", by_name.json())
    assert by_name.json()["id"] == created.json()["id"]
    assert api.admin.get("/api/frontend/settings").json()["defaultDatasource"] == "Prometheus"

    duplicate = api.admin.post("/api/datasources", json={"name": "Prometheus", "type": "loki"})
    assert (duplicate.status_code, duplicate.json()) == (
        409,
        {"message": "data source with the same name already exists"},
    )
    assert api.admin.post("/api/datasources", json={"type": "loki"}).status_code == 400
    assert api.admin.post("/api/datasources", json={"name": "x", "type": "loki", "uid": "b a d"}).status_code == 400
    assert api.editor.post("/api/datasources", json={"name": "x", "type": "loki"}).status_code == 403

    updated = api.admin.put("/api/datasources/uid/prom", json={**body, "url": "http://127.0.0.1:9091"})
    assert updated.status_code == 200
    contract.check("/datasources/uid/{uid}", "put", updated.json())
    assert updated.json()["datasource"]["version"] == 2 and updated.json()["datasource"]["url"].endswith(":9091")

    deleted = api.admin.delete("/api/datasources/uid/prom")
    assert deleted.status_code == 200
    contract.check("/datasources/uid/{uid}", "delete", deleted.json(), extra_keys=frozenset({"id"}))
    assert deleted.json()["message"] == "Data source deleted"
    for resp in (api.admin.get("/api/datasources/uid/prom"), api.admin.get("/api/datasources/name/Prometheus")):
        assert (resp.status_code, resp.json()) == (404, {"message": "Data source not found"})
    assert api.admin.delete("/api/datasources/uid/prom").status_code == 404
