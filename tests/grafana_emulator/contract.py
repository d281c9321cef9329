"""The Grafana HTTP API response bodies the emulator promises, written down by us.

This is the tests' own description of the contract in the emulator's README (Grafana >= 11.3 legacy
HTTP API): field names and JSON types per route and status. No Grafana file is read (Grafana is
AGPL-licensed; its OpenAPI document is not part of this repository).

Notation: a dict is a JSON object whose keys are all declared (a key ending in `?` may be absent),
`[shape]` a list of that shape, a Python type (or a tuple of types) a JSON value, `OBJECT` any
JSON object (a dashboard model, jsonData).
"""

from __future__ import annotations

from typing import Any

OBJECT = dict
Shape = Any

ERROR: Shape = {"message": str, "status?": str, "messageId?": str}

_FOLDER_BASE: Shape = {
    "id": int, "uid": str, "orgId": int, "title": str, "description?": str, "url": str, "hasAcl": bool,
    "canSave": bool, "canEdit": bool, "canAdmin": bool, "canDelete": bool, "createdBy": str, "created": str,
    "updatedBy": str, "updated": str, "version": int, "parentUid?": str,
}
FOLDER: Shape = {**_FOLDER_BASE, "parents?": [_FOLDER_BASE]}

DASHBOARD_SAVED: Shape = {"id": int, "uid": str, "url": str, "status": str, "version": int, "slug": str,
                          "title": str, "folderUid": str}

DASHBOARD_META: Shape = {
    "type": str, "slug": str, "url": str, "folderUid": str, "folderId": int, "folderTitle": str, "folderUrl": str,
    "version": int, "created": str, "updated": str, "createdBy": str, "updatedBy": str, "canSave": bool,
    "canEdit": bool, "canAdmin": bool, "canStar": bool, "canDelete": bool, "isStarred": bool, "isFolder": bool,
    "hasAcl": bool, "provisioned": bool, "provisionedExternalId": str, "expires": str,
}

VERSION_META: Shape = {"id": int, "dashboardId": int, "uid": str, "version": int, "parentVersion": int,
                       "restoredFrom": int, "created": str, "createdBy": str, "message": str}

SEARCH_HIT: Shape = {
    "id": int, "uid": str, "title": str, "uri": str, "url": str, "slug": str, "type": str, "tags": [str],
    "isStarred": bool, "sortMeta": int, "isDeleted": bool, "folderId?": int, "folderUid?": str,
    "folderTitle?": str, "folderUrl?": str,
}

_DATASOURCE_COMMON: Shape = {
    "id": int, "uid": str, "orgId": int, "name": str, "type": str, "typeLogoUrl": str, "access": str, "url": str,
    "user": str, "database": str, "basicAuth": bool, "isDefault": bool, "jsonData": OBJECT, "readOnly": bool,
}
DATASOURCE: Shape = {**_DATASOURCE_COMMON, "basicAuthUser": str, "withCredentials": bool, "version": int,
                     "secureJsonFields": {"*": bool}}
DATASOURCE_LISTED: Shape = {**_DATASOURCE_COMMON, "typeName": str}
DATASOURCE_WRITTEN: Shape = {"datasource": DATASOURCE, "id": int, "name": str, "message": str}

ROUTES: dict[tuple[str, str, str], Shape] = {
    ("/dashboards/db", "post", "200"): DASHBOARD_SAVED,
    ("/dashboards/uid/{uid}", "get", "200"): {"dashboard": OBJECT, "meta": DASHBOARD_META},
    ("/dashboards/uid/{uid}", "delete", "200"): {"uid": str, "id": int, "title": str, "message": str},
    ("/dashboards/uid/{uid}/versions", "get", "200"): [VERSION_META],
    ("/dashboards/uid/{uid}/versions/{DashboardVersionID}", "get", "200"): {**VERSION_META, "data": OBJECT},
    ("/dashboards/tags", "get", "200"): [{"term": str, "count": int}],
    ("/search", "get", "200"): [SEARCH_HIT],
    ("/folders", "get", "200"): [{"id": int, "uid": str, "title": str, "parentUid?": str}],
    ("/folders", "post", "200"): FOLDER,
    ("/folders/{folder_uid}", "get", "200"): FOLDER,
    ("/folders/id/{folder_id}", "get", "200"): FOLDER,
    ("/folders/{folder_uid}", "put", "200"): FOLDER,
    ("/folders/{folder_uid}/move", "post", "200"): FOLDER,
    ("/folders/{folder_uid}", "delete", "200"): {"id": int, "uid?": str, "title": str, "message": str},
    ("/datasources", "get", "200"): [DATASOURCE_LISTED],
    ("/datasources", "post", "200"): DATASOURCE_WRITTEN,
    ("/datasources/uid/{uid}", "get", "200"): DATASOURCE,
    ("/datasources/name/{name}", "get", "200"): DATASOURCE,
    ("/datasources/uid/{uid}", "put", "200"): DATASOURCE_WRITTEN,
    ("/datasources/uid/{uid}", "delete", "200"): {"message": str, "id": int},
}


def shape_of(path: str, method: str, status: str = "200") -> Shape:
    """The declared body of a route's answer; every error status answers with the error body."""
    if int(status) >= 400:
        return ERROR
    return ROUTES[(path, method.lower(), status)]


def _type_ok(expected: Any, value: Any) -> bool:
    types = expected if isinstance(expected, tuple) else (expected,)
    # JSON has no int/bool overlap: True is not a number here
    return any(type(value) is t or (t is float and type(value) is int) for t in types) or \
        (object in types)


def problems(shape: Shape, value: Any, where: str = "body") -> list[str]:
    """Every way value departs from shape: wrong type, missing key, undeclared key."""
    if shape is OBJECT:
        return [] if isinstance(value, dict) else [f"{where}: expected an object, got {type(value).__name__}"]
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        return [p for i, item in enumerate(value) for p in problems(shape[0], item, f"{where}[{i}]")]
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        if set(shape) == {"*"}:
            return [p for k, v in value.items() for p in problems(shape["*"], v, f"{where}.{k}")]
        found: list[str] = []
        declared = {k.rstrip("?"): (k, sub) for k, sub in shape.items()}
        for name, (key, sub) in declared.items():
            if name in value:
                found += problems(sub, value[name], f"{where}.{name}")
            elif not key.endswith("?"):
                found.append(f"{where}.{name}: missing")
        found += [f"{where}.{k}: not in the contract" for k in value if k not in declared]
        return found
    return [] if _type_ok(shape, value) else [f"{where}: expected {shape}, got {type(value).__name__} {value!r}"]
