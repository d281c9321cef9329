"""In-memory Grafana state and the semantics of each emulated API call (no HTTP here).

Every public method is called with the emulator's single lock held. Methods return the JSON body of a
200 response or raise ApiError with Grafana's status code and error body.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._schema import DashboardSchema
from ._util import (
    ShortUidGenerator,
    dashboard_url,
    folder_url,
    iso_time,
    json_bytes,
    parse_duration,
    parse_json,
    slugify,
    uid_problem,
)

ROLE_RANK = {"Viewer": 1, "Editor": 2, "Admin": 3}
SEARCH_MAX_LIMIT = 5000
DEFAULT_LIST_LIMIT = 1000
ROOT_FOLDER_TITLE = "General"
EXPIRES_NEVER = "0001-01-01T00:00:00Z"

Json = dict[str, Any]
Query = dict[str, list[str]]


class ApiError(Exception):
    """An HTTP error response: status code and JSON body."""

    def __init__(self, status: int, body: Json) -> None:
        super().__init__(f"{status}: {body.get('message')}")
        self.status = status
        self.body = body


def _error(status: int, message: str, reason: str | None = None, **extra: Any) -> ApiError:
    body: Json = {"message": message}
    if reason is not None:
        body["status"] = reason
    body.update(extra)
    return ApiError(status, body)


def bad_request_data() -> ApiError:
    """Grafana's answer to a body that does not bind (malformed JSON, wrong field types)."""
    return _error(400, "bad request data")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: login name and org role (Viewer, Editor or Admin)."""

    login: str
    role: str

    def at_least(self, role: str) -> bool:
        """True when this principal's role is `role` or higher."""
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


@dataclass
class DashboardRec:
    """A stored dashboard: the JSON model plus the columns Grafana keeps beside it.

    The model is kept serialised (`data`): 10,000 stored dashboards as Python objects made every
    full garbage collection walk ~16 M objects, which was half the emulator's CPU on bulk saves.
    `model` parses a fresh copy; assigning it serialises.
    """

    id: int
    uid: str
    title: str
    data: bytes
    folder_uid: str
    version: int
    created: float
    updated: float
    created_by: str
    updated_by: str
    tags: list[str]
    provisioned_external_id: str | None = None
    plugin_id: str = ""

    @property
    def model(self) -> Json:
        """A fresh copy of the stored JSON model."""
        model: Json = parse_json(self.data)
        return model

    @model.setter
    def model(self, value: Json) -> None:
        self.data = json_bytes(value)


@dataclass
class FolderRec:
    """A stored folder ("" parent_uid = at the root)."""

    id: int
    uid: str
    title: str
    description: str
    parent_uid: str
    version: int
    created: float
    updated: float
    created_by: str
    updated_by: str
    alert_rules: int = 0


@dataclass
class VersionRec:
    """One saved version of a dashboard."""

    id: int
    dashboard_id: int
    uid: str
    version: int
    parent_version: int
    restored_from: int
    created: float
    created_by: str
    message: str
    data: bytes  # the model as saved, serialised: immutable, and cheaper to keep than a deep copy


@dataclass
class DatasourceRec:
    """A stored data source; secure fields are kept but never returned."""

    fields: Json
    secure: dict[str, str] = field(default_factory=dict)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _opt(body: Json, key: str, kind: type | tuple[type, ...]) -> Any:
    """body[key] when absent/null/of type `kind`; anything else does not bind (400 bad request data)."""
    value = body.get(key)
    if value is None:
        return None
    if kind is int or kind == (int,):
        if not _is_int(value):
            raise bad_request_data()
        return value
    if not isinstance(value, kind):
        raise bad_request_data()
    return value


def _qint(query: Query, key: str, default: int) -> int:
    """First value of query[key] as int; unparseable or absent gives `default` (like Grafana's QueryInt)."""
    values = query.get(key)
    if not values:
        return default
    try:
        return int(values[0])
    except ValueError:
        return default


def _qbool(query: Query, key: str) -> bool:
    values = query.get(key) or [""]
    return values[0].lower() in ("true", "1")


def _title_key(title: str, uid: str) -> tuple[str, str, str]:
    return (title.lower(), title, uid)


def _string_tags(model: Json) -> list[str]:
    raw = model.get("tags")
    if not isinstance(raw, list):
        return []
    return sorted({t for t in raw if isinstance(t, str) and t})


class Store:
    """One org's dashboards, folders, versions and data sources, with Grafana's rules for changing them."""

    def __init__(
        self,
        *,
        unique_titles: bool,
        schema: DashboardSchema | None,
        refresh_policy: str,
        min_refresh_interval: str,
        max_folder_depth: int,
        uid_seed: int | None,
        clock: Callable[[], float],
    ) -> None:
        if refresh_policy not in ("clamp", "reject"):
            raise ValueError("refresh_policy must be 'clamp' or 'reject'")
        self.unique_titles = unique_titles
        self.schema = schema
        self.refresh_policy = refresh_policy
        self.min_refresh_interval = min_refresh_interval
        self.min_refresh_s = parse_duration(min_refresh_interval)
        self.max_folder_depth = max_folder_depth
        self.clock = clock
        self.new_uid = ShortUidGenerator(uid_seed)
        self.dashboards: dict[str, DashboardRec] = {}
        self.folders: dict[str, FolderRec] = {}
        self.versions: dict[str, list[VersionRec]] = {}
        self.datasources: dict[str, DatasourceRec] = {}
        self._next_id = 1  # dashboards and folders share Grafana's dashboard table, hence one sequence
        self._next_version_id = 1
        self._next_ds_id = 1

    # ------------------------------------------------------------------ lookups

    def _take_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value

    def _fresh_uid(self) -> str:
        while True:
            uid = self.new_uid()
            if uid not in self.dashboards and uid not in self.folders and uid not in self.datasources:
                return uid

    def _entity_by_id(self, entity_id: int) -> DashboardRec | FolderRec | None:
        found = next((d for d in self.dashboards.values() if d.id == entity_id), None)
        return found or self._folder_by_id(entity_id)

    def _entity_by_uid(self, uid: str) -> DashboardRec | FolderRec | None:
        return self.dashboards.get(uid) or self.folders.get(uid)

    def _folder_by_id(self, folder_id: int) -> FolderRec | None:
        return next((f for f in self.folders.values() if f.id == folder_id), None)

    def ancestors(self, uid: str) -> list[FolderRec]:
        """Folders above `uid`, from the root down, excluding `uid` itself."""
        chain: list[FolderRec] = []
        current = self.folders[uid].parent_uid
        while current:
            parent = self.folders[current]
            chain.append(parent)
            current = parent.parent_uid
        chain.reverse()
        return chain

    def descendants(self, uid: str) -> list[FolderRec]:
        """All folders below `uid`, parents before children."""
        out: list[FolderRec] = []
        frontier = [uid]
        while frontier:
            parent = frontier.pop(0)
            children = sorted(
                (f for f in self.folders.values() if f.parent_uid == parent), key=lambda f: _title_key(f.title, f.uid)
            )
            out.extend(children)
            frontier.extend(c.uid for c in children)
        return out

    def _height(self, uid: str) -> int:
        children = [f.uid for f in self.folders.values() if f.parent_uid == uid]
        return 1 + max((self._height(c) for c in children), default=0) if children else 0

    def _check_depth(self, parent_uid: str, subtree_height: int = 0) -> None:
        if not parent_uid:
            return
        # A folder directly in `parent_uid` has len(ancestors(parent)) + 1 ancestors; Grafana allows at most 4.
        if len(self.ancestors(parent_uid)) + 1 + subtree_height > self.max_folder_depth:
            raise _error(400, "Maximum nested folder depth reached", messageId="folder.maximum-depth-reached")

    # ------------------------------------------------------------------ JSON shapes

    @staticmethod
    def _caps(principal: Principal) -> Json:
        return {
            "canSave": principal.at_least("Editor"),
            "canEdit": principal.at_least("Editor"),
            "canAdmin": principal.at_least("Admin"),
            "canDelete": principal.at_least("Editor"),
        }

    def folder_json(self, f: FolderRec, principal: Principal, *, with_parents: bool = True) -> Json:
        """The Folder object of the API."""
        out: Json = {
            "id": f.id,
            "uid": f.uid,
            "orgId": 1,
            "title": f.title,
            "description": f.description,
            "url": folder_url(f.uid, f.title),
            "hasAcl": False,
            **self._caps(principal),
            "createdBy": f.created_by,
            "created": iso_time(f.created),
            "updatedBy": f.updated_by,
            "updated": iso_time(f.updated),
            "version": f.version,
        }
        if f.parent_uid:
            out["parentUid"] = f.parent_uid
            if with_parents:
                out["parents"] = [self.folder_json(p, principal, with_parents=False) for p in self.ancestors(f.uid)]
        return out

    def _folder_fields(self, folder_uid: str) -> Json:
        if not folder_uid:
            return {}
        f = self.folders[folder_uid]
        return {
            "folderId": f.id,
            "folderUid": f.uid,
            "folderTitle": f.title,
            "folderUrl": folder_url(f.uid, f.title),
        }

    # ------------------------------------------------------------------ dashboards

    def save_dashboard(self, body: Any, principal: Principal) -> Json:
        """POST /api/dashboards/db."""
        if not isinstance(body, dict) or not isinstance(body.get("dashboard"), dict):
            raise bad_request_data()
        folder_uid_in = _opt(body, "folderUid", str) or ""
        folder_id_in = _opt(body, "folderId", int) or 0
        overwrite = bool(_opt(body, "overwrite", bool))
        message = _opt(body, "message", str) or ""
        if body.get("isFolder") is True:
            raise _error(400, "Use folders endpoint for saving folders.")

        model: Json = body["dashboard"]  # parsed for this request alone: owned here, no copy needed
        title = model["title"].strip() if isinstance(model.get("title"), str) else ""
        uid = model["uid"].strip() if isinstance(model.get("uid"), str) else ""
        dash_id = model["id"] if _is_int(model.get("id")) else 0
        dash_version = model["version"] if _is_int(model.get("version")) else 0
        model["title"] = title
        if isinstance(model.get("uid"), str):
            model["uid"] = uid

        refresh = model.get("refresh")
        refresh_text = refresh if isinstance(refresh, str) and refresh not in ("", "auto") else None
        if refresh_text is not None and self.refresh_policy == "clamp" and self._refresh_too_low(refresh_text):
            # Grafana's SaveDashboard quietly raises a too-low (or unparseable) refresh to min_refresh_interval.
            model["refresh"] = self.min_refresh_interval

        if not title:
            raise _error(400, "Dashboard title cannot be empty", "empty-name")
        if len(title) > 5000:
            raise _error(400, "Dashboard title cannot contain more than 5 000 characters", "title-too-long")
        problem = uid_problem(uid)
        if problem:
            raise _error(400, problem)
        if len(message) > 500:
            raise _error(400, "message too long, max 500 characters")
        if refresh_text is not None and self.refresh_policy == "reject":
            try:
                too_low = parse_duration(refresh_text) < self.min_refresh_s
            except ValueError:
                raise _error(500, "Failed to save dashboard") from None
            if too_low:
                raise _error(400, "Dashboard refresh interval is too low")

        if self.schema is not None:
            candidate = {k: v for k, v in model.items() if not (k in ("id", "uid") and v is None)}
            found = self.schema.problem(candidate)
            if found:
                raise _error(400, found[1], path=found[0])

        target_folder = ""
        if folder_uid_in:
            if folder_uid_in not in self.folders:
                raise _error(400, "folder not found")
            target_folder = folder_uid_in
        elif folder_id_in:
            by_id = self._folder_by_id(folder_id_in)
            if by_id is None:
                raise _error(400, "folder not found")
            target_folder = by_id.uid

        existing_by_id = None
        if dash_id > 0:
            existing_by_id = self._entity_by_id(dash_id)
            if existing_by_id is None:
                raise _error(404, "Dashboard not found", "not-found")
            if not uid:
                uid = existing_by_id.uid
        existing_by_uid = self._entity_by_uid(uid) if uid else None
        if existing_by_id is not None and existing_by_uid is not None and existing_by_id is not existing_by_uid:
            raise _error(400, "A dashboard with the same uid already exists")
        existing_any = existing_by_id or existing_by_uid
        if isinstance(existing_any, FolderRec):
            raise _error(400, "Dashboard cannot be changed to a folder")
        existing: DashboardRec | None = existing_any
        if existing is not None:
            if dash_version != existing.version:
                if not overwrite:
                    raise _error(412, "The dashboard has been changed by someone else", "version-mismatch")
                dash_version = existing.version
            if existing.plugin_id and not overwrite:
                raise _error(412, f"The dashboard belongs to plugin {existing.plugin_id}.", "plugin-dashboard")
            if existing.provisioned_external_id is not None:
                raise _error(400, "Cannot save provisioned dashboard")
        if self.unique_titles:
            clash = next(
                (
                    d
                    for d in sorted(self.dashboards.values(), key=lambda d: d.id)
                    if d.folder_uid == target_folder and d.title == title and d is not existing
                ),
                None,
            )
            if clash is not None:
                if not overwrite:
                    raise _error(412, "A dashboard with the same name in the folder already exists", "name-exists")
                # Grafana <= 11.2 with overwrite: the save replaces the same-titled dashboard (takes its uid).
                existing, uid, dash_version = clash, clash.uid, clash.version

        now = self.clock()
        if existing is None:
            new_id = self._take_id()
            uid = uid or self._fresh_uid()
            version, parent_version = 1, dash_version
            rec = DashboardRec(
                id=new_id,
                uid=uid,
                title=title,
                data=b"",  # set below, once id/uid/version are in the model
                folder_uid=target_folder,
                version=version,
                created=now,
                updated=now,
                created_by=principal.login,
                updated_by=principal.login,
                tags=[],
            )
            self.dashboards[uid] = rec
        else:
            rec = existing
            version, parent_version = dash_version + 1, dash_version
            rec.title, rec.folder_uid, rec.version = title, target_folder, version
            rec.updated, rec.updated_by = now, principal.login
        model.update({"id": rec.id, "uid": rec.uid, "version": version, "title": title})
        rec.model = model
        rec.tags = _string_tags(model)
        self._add_version(rec, parent_version, principal.login, message)
        slug = slugify(title)
        return {
            "id": rec.id,
            "uid": rec.uid,
            "url": dashboard_url(rec.uid, title),
            "status": "success",
            "version": version,
            "slug": slug,
            "title": slug,
            "folderUid": rec.folder_uid,
        }

    def _refresh_too_low(self, refresh: str) -> bool:
        try:
            return parse_duration(refresh) < self.min_refresh_s
        except ValueError:
            return True

    def _add_version(self, rec: DashboardRec, parent_version: int, login: str, message: str) -> None:
        self.versions.setdefault(rec.uid, []).append(
            VersionRec(
                id=self._next_version_id,
                dashboard_id=rec.id,
                uid=rec.uid,
                version=rec.version,
                parent_version=parent_version,
                restored_from=0,
                created=rec.updated,
                created_by=login,
                message=message,
                data=rec.data,  # immutable bytes: the version shares them
            )
        )
        self._next_version_id += 1

    def get_dashboard(self, uid: str, principal: Principal) -> Json:
        """GET /api/dashboards/uid/:uid."""
        rec = self.dashboards.get(uid)
        if rec is None:
            folder = self.folders.get(uid)
            if folder is None:
                raise _error(404, "Dashboard not found")
            return self._folder_as_dashboard(folder, principal)
        folder_meta = {"folderUid": "", "folderId": 0, "folderTitle": ROOT_FOLDER_TITLE, "folderUrl": ""}
        folder_meta.update(self._folder_fields(rec.folder_uid))
        model = rec.model
        model["version"] = rec.version
        meta: Json = {
            "type": "db",
            "canSave": principal.at_least("Editor"),
            "canEdit": principal.at_least("Editor"),
            "canAdmin": principal.at_least("Admin"),
            "canStar": True,
            "canDelete": principal.at_least("Editor"),
            "slug": slugify(rec.title),
            "url": dashboard_url(rec.uid, rec.title),
            "expires": EXPIRES_NEVER,
            "created": iso_time(rec.created),
            "updated": iso_time(rec.updated),
            "updatedBy": rec.updated_by,
            "createdBy": rec.created_by,
            "version": rec.version,
            "hasAcl": False,
            "isFolder": False,
            "isStarred": False,
            **folder_meta,
            "provisioned": rec.provisioned_external_id is not None,
            "provisionedExternalId": rec.provisioned_external_id or "",
        }
        return {"dashboard": model, "meta": meta}

    def _folder_as_dashboard(self, folder: FolderRec, principal: Principal) -> Json:
        # Folders live in Grafana's dashboard table, so the dashboard endpoint finds them too.
        meta: Json = {
            "type": "dash-folder",
            **self._caps(principal),
            "canStar": True,
            "slug": slugify(folder.title),
            "url": folder_url(folder.uid, folder.title),
            "expires": EXPIRES_NEVER,
            "created": iso_time(folder.created),
            "updated": iso_time(folder.updated),
            "updatedBy": folder.updated_by,
            "createdBy": folder.created_by,
            "version": folder.version,
            "hasAcl": False,
            "isFolder": True,
            "isStarred": False,
            "folderUid": "",
            "folderId": 0,
            "folderTitle": ROOT_FOLDER_TITLE,
            "folderUrl": "",
            "provisioned": False,
            "provisionedExternalId": "",
        }
        model = {"id": folder.id, "uid": folder.uid, "title": folder.title, "version": folder.version}
        return {"dashboard": model, "meta": meta}

    def delete_dashboard(self, uid: str) -> Json:
        """DELETE /api/dashboards/uid/:uid."""
        rec = self.dashboards.get(uid)
        if rec is None:
            if uid in self.folders:
                raise _error(400, "Use folders endpoint for deleting folders.")
            raise _error(404, "Dashboard not found")
        if rec.provisioned_external_id is not None:
            raise _error(400, "provisioned dashboard cannot be deleted")
        self._drop_dashboard(uid)
        return {"uid": rec.uid, "id": rec.id, "title": rec.title, "message": f"Dashboard {rec.title} deleted"}

    def _drop_dashboard(self, uid: str) -> None:
        del self.dashboards[uid]
        self.versions.pop(uid, None)

    def dashboard_versions(self, uid: str, query: Query, principal: Principal) -> list[Json]:
        """GET /api/dashboards/uid/:uid/versions (newest first; needs save permission, as in Grafana)."""
        rec = self.dashboards.get(uid)
        if rec is None:
            raise _error(404, "Dashboard not found")
        if not principal.at_least("Editor"):
            raise _error(403, "Access denied to this dashboard")
        limit = _qint(query, "limit", 0)
        start = max(_qint(query, "start", 0), 0)
        if limit <= 0:
            limit = DEFAULT_LIST_LIMIT
        newest_first = list(reversed(self.versions.get(uid, [])))
        return [self._version_json(v, with_data=False) for v in newest_first[start : start + limit]]

    def dashboard_version(self, uid: str, version: str, principal: Principal) -> Json:
        """GET /api/dashboards/uid/:uid/versions/:version (one version with its data)."""
        rec = self.dashboards.get(uid)
        if rec is None:
            raise _error(404, "Dashboard not found")
        if not principal.at_least("Editor"):
            raise _error(403, "Access denied to this dashboard")
        wanted = int(version) if version.isdigit() else 0
        for v in self.versions.get(uid, []):
            if v.version == wanted:
                return self._version_json(v, with_data=True)
        # Grafana 11 answers a missing version with a 500, not a 404.
        raise _error(500, f"Dashboard version {wanted} not found for dashboardId {rec.id}")

    @staticmethod
    def _version_json(v: VersionRec, *, with_data: bool) -> Json:
        message = v.message
        if v.restored_from > 0:
            message = f"Restored from version {v.restored_from}"
        if v.parent_version == 0:
            message = "Initial save"
        out: Json = {
            "id": v.id,
            "dashboardId": v.dashboard_id,
            "uid": v.uid,
            "version": v.version,
            "parentVersion": v.parent_version,
            "restoredFrom": v.restored_from,
            "created": iso_time(v.created),
            "createdBy": v.created_by,
            "message": message,
        }
        if with_data:
            out["data"] = parse_json(v.data)
        return out

    def dashboard_tags(self) -> list[Json]:
        """GET /api/dashboards/tags: tag cloud, ordered by term."""
        counts: dict[str, int] = {}
        for rec in self.dashboards.values():
            for tag in rec.tags:
                counts[tag] = counts.get(tag, 0) + 1
        return [{"term": term, "count": counts[term]} for term in sorted(counts)]

    def ui_edit(self, uid: str, mutate: Callable[[Json], Json | None], login: str, message: str) -> Json:
        """Save a changed copy of a dashboard's model as a new version, as the Grafana UI would."""
        rec = self.dashboards[uid]
        model = rec.model
        returned = mutate(model)
        if returned is not None:
            model = returned
        title = model["title"].strip() if isinstance(model.get("title"), str) else rec.title
        parent_version = rec.version
        rec.version += 1
        model.update({"id": rec.id, "uid": rec.uid, "version": rec.version, "title": title})
        rec.title, rec.model, rec.tags = title, model, _string_tags(model)
        rec.updated, rec.updated_by = self.clock(), login
        self._add_version(rec, parent_version, login, message)
        return copy.deepcopy(model)

    def seed_dashboard(self, dashboard: Json, folder_uid: str | None, login: str) -> Json:
        """Insert a dashboard as if someone else had created it (no validation beyond identity)."""
        model = copy.deepcopy(dashboard)
        title = model.get("title")
        if not isinstance(title, str) or not title.strip():
            raise ValueError("seeded dashboard needs a non-empty title")
        title = title.strip()
        given = model.get("uid")
        uid = given if isinstance(given, str) and given else self._fresh_uid()
        if uid_problem(uid):
            raise ValueError(f"invalid uid {uid!r}: {uid_problem(uid)}")
        if self._entity_by_uid(uid) is not None:
            raise ValueError(f"uid {uid!r} is already taken")
        if folder_uid and folder_uid not in self.folders:
            raise ValueError(f"folder {folder_uid!r} does not exist")
        now = self.clock()
        rec = DashboardRec(
            id=self._take_id(),
            uid=uid,
            title=title,
            data=b"",
            folder_uid=folder_uid or "",
            version=1,
            created=now,
            updated=now,
            created_by=login,
            updated_by=login,
            tags=[],
        )
        model.update({"id": rec.id, "uid": uid, "version": 1, "title": title})
        rec.model = model
        rec.tags = _string_tags(model)
        self.dashboards[uid] = rec
        self._add_version(rec, 0, login, "")
        return copy.deepcopy(model)

    # ------------------------------------------------------------------ search

    def search(self, query: Query) -> list[Json]:
        """GET /api/search."""
        limit = _qint(query, "limit", 0)
        if limit > SEARCH_MAX_LIMIT:
            raise _error(422, "Limit is above maximum allowed (5000), use page parameter to access hits beyond limit")
        if limit <= 0:
            limit = DEFAULT_LIST_LIMIT
        page = max(_qint(query, "page", 1), 1)
        dash_uids = set(query.get("dashboardUIDs", []) + query.get("dashboardUID", []))
        dash_ids: set[int] = set()
        for raw in query.get("dashboardIds", []) + query.get("dashboardId", []):
            try:
                dash_ids.add(int(raw))
            except ValueError:
                continue
        if dash_ids and dash_uids:
            raise _error(400, "search supports UIDs or IDs, not both")
        if _qbool(query, "starred") or _qbool(query, "deleted"):
            return []  # nothing is ever starred or soft-deleted here

        parents: set[str] | None = None
        if "folderUIDs" in query:
            parents = {"" if u in ("", "general") else u for u in query["folderUIDs"]}
        elif "folderIds" in query:
            parents = set()
            for raw in query["folderIds"]:
                try:
                    fid = int(raw)
                except ValueError:
                    continue
                folder = self._folder_by_id(fid) if fid else None
                parents.add("" if fid == 0 else (folder.uid if folder else f"\x00missing-{fid}"))

        text = (query.get("query") or [""])[0].lower()
        tags = set(query.get("tag", []))
        kind = (query.get("type") or [""])[0]
        sort = (query.get("sort") or [""])[0]

        # Matches are sorted by key and only the requested page is built: listing 10,000 dashboards in
        # pages of 5,000 must not build every hit for every page.
        hits: list[tuple[tuple[str, str, str], bool, FolderRec | DashboardRec]] = []
        if kind != "dash-db" and not tags:
            for f in self.folders.values():
                if self._matches(f.uid, f.id, f.title, f.parent_uid, text, dash_uids, dash_ids, parents):
                    hits.append((_title_key(f.title, f.uid), True, f))
        if kind != "dash-folder":
            for d in self.dashboards.values():
                if tags and not tags.issubset(d.tags):
                    continue
                if self._matches(d.uid, d.id, d.title, d.folder_uid, text, dash_uids, dash_ids, parents):
                    hits.append((_title_key(d.title, d.uid), False, d))
        hits.sort(key=lambda h: h[0], reverse=(sort == "alpha-desc"))
        window = hits[(page - 1) * limit : page * limit]
        if not sort:
            # Without an explicit sort Grafana lists the folders of a page before its dashboards.
            window.sort(key=lambda h: not h[1])
        return [self._folder_hit(r) if isinstance(r, FolderRec) else self._dashboard_hit(r) for _, _, r in window]

    @staticmethod
    def _matches(
        uid: str,
        entity_id: int,
        title: str,
        parent: str,
        text: str,
        dash_uids: set[str],
        dash_ids: set[int],
        parents: set[str] | None,
    ) -> bool:
        if text and text not in title.lower():
            return False
        if dash_uids and uid not in dash_uids:
            return False
        if dash_ids and entity_id not in dash_ids:
            return False
        return parents is None or parent in parents

    def _folder_hit(self, f: FolderRec) -> Json:
        return {
            "id": f.id,
            "uid": f.uid,
            "title": f.title,
            "uri": f"db/{slugify(f.title)}",
            "url": folder_url(f.uid, f.title),
            "slug": "",
            "type": "dash-folder",
            "tags": [],
            "isStarred": False,
            "sortMeta": 0,
            "isDeleted": False,
            **self._folder_fields(f.parent_uid),
        }

    def _dashboard_hit(self, d: DashboardRec) -> Json:
        return {
            "id": d.id,
            "uid": d.uid,
            "title": d.title,
            "uri": f"db/{slugify(d.title)}",
            "url": dashboard_url(d.uid, d.title),
            "slug": "",
            "type": "dash-db",
            "tags": list(d.tags),
            "isStarred": False,
            "sortMeta": 0,
            "isDeleted": False,
            **self._folder_fields(d.folder_uid),
        }

    # ------------------------------------------------------------------ folders

    def list_folders(self, query: Query) -> list[Json]:
        """GET /api/folders: immediate children of parentUid (root when absent), by title."""
        parent = (query.get("parentUid") or [""])[0]
        if parent and parent not in self.folders:
            raise _error(404, "folder not found", "not-found")
        limit = _qint(query, "limit", DEFAULT_LIST_LIMIT)
        if limit <= 0:
            limit = DEFAULT_LIST_LIMIT
        page = max(_qint(query, "page", 1), 1)
        children = sorted(
            (f for f in self.folders.values() if f.parent_uid == parent), key=lambda f: _title_key(f.title, f.uid)
        )
        out: list[Json] = []
        for f in children[(page - 1) * limit : page * limit]:
            item: Json = {"id": f.id, "uid": f.uid, "title": f.title}
            if f.parent_uid:
                item["parentUid"] = f.parent_uid
            out.append(item)
        return out

    def _sibling_title_taken(self, parent: str, title: str, exclude: str = "") -> bool:
        return any(f.parent_uid == parent and f.title == title and f.uid != exclude for f in self.folders.values())

    def create_folder(self, body: Any, principal: Principal) -> Json:
        """POST /api/folders."""
        if not isinstance(body, dict):
            raise bad_request_data()
        title = (_opt(body, "title", str) or "").strip()
        uid = (_opt(body, "uid", str) or "").strip()
        parent = _opt(body, "parentUid", str) or ""
        description = _opt(body, "description", str) or ""
        if not title:
            raise _error(400, "folder title cannot be empty")
        if title.lower() == ROOT_FOLDER_TITLE.lower():
            raise _error(400, "A folder with that name already exists")
        problem = uid_problem(uid)
        if problem:
            raise _error(400, problem)
        if uid and self._entity_by_uid(uid) is not None:
            raise _error(409, "a folder/dashboard with the same uid already exists")
        if parent and parent not in self.folders:
            raise _error(404, "folder not found", "not-found")
        self._check_depth(parent)
        if self.unique_titles and self._sibling_title_taken(parent, title):
            raise _error(409, "a folder or dashboard in the general folder with the same name already exists")
        now = self.clock()
        rec = FolderRec(
            id=self._take_id(),
            uid=uid or self._fresh_uid(),
            title=title,
            description=description,
            parent_uid=parent,
            version=1,
            created=now,
            updated=now,
            created_by=principal.login,
            updated_by=principal.login,
        )
        self.folders[rec.uid] = rec
        return self.folder_json(rec, principal)

    def seed_folder(self, uid: str, title: str, parent_uid: str | None, login: str) -> FolderRec:
        """Insert a folder without the API's checks beyond identity and parent existence."""
        if uid_problem(uid) or not uid:
            raise ValueError(f"invalid folder uid {uid!r}")
        if self._entity_by_uid(uid) is not None:
            raise ValueError(f"uid {uid!r} is already taken")
        if parent_uid and parent_uid not in self.folders:
            raise ValueError(f"parent folder {parent_uid!r} does not exist")
        now = self.clock()
        rec = FolderRec(self._take_id(), uid, title, "", parent_uid or "", 1, now, now, login, login)
        self.folders[uid] = rec
        return rec

    def _folder_or_404(self, uid: str) -> FolderRec:
        rec = self.folders.get(uid)
        if rec is None:
            raise _error(404, "folder not found", "not-found")
        return rec

    def get_folder(self, uid: str, principal: Principal) -> Json:
        """GET /api/folders/:uid."""
        return self.folder_json(self._folder_or_404(uid), principal)

    def get_folder_by_id(self, raw_id: str, principal: Principal) -> Json:
        """GET /api/folders/id/:id."""
        try:
            folder_id = int(raw_id)
        except ValueError:
            raise _error(400, "id is invalid") from None
        rec = self._folder_by_id(folder_id)
        if rec is None:
            raise _error(404, "folder not found", "not-found")
        return self.folder_json(rec, principal)

    def update_folder(self, uid: str, body: Any, principal: Principal) -> Json:
        """PUT /api/folders/:uid."""
        rec = self._folder_or_404(uid)
        if not isinstance(body, dict):
            raise bad_request_data()
        title = _opt(body, "title", str)
        description = _opt(body, "description", str)
        version = _opt(body, "version", int)
        overwrite = bool(_opt(body, "overwrite", bool))
        if title is not None:
            title = title.strip()
            if not title:
                raise _error(400, "folder title cannot be empty")
        if version is not None and version != rec.version and not overwrite:
            raise _error(412, "the folder has been changed by someone else", "version-mismatch")
        if title and self.unique_titles and self._sibling_title_taken(rec.parent_uid, title, exclude=uid):
            raise _error(409, "a folder or dashboard in the general folder with the same name already exists")
        if title:
            rec.title = title
        if description is not None:
            rec.description = description
        rec.version += 1
        rec.updated, rec.updated_by = self.clock(), principal.login
        return self.folder_json(rec, principal)

    def move_folder(self, uid: str, body: Any, principal: Principal) -> Json:
        """POST /api/folders/:uid/move."""
        rec = self._folder_or_404(uid)
        if not isinstance(body, dict):
            raise bad_request_data()
        parent = _opt(body, "parentUid", str) or ""
        if parent:
            if parent not in self.folders:
                raise _error(404, "folder not found", "not-found")
            if parent == uid or parent in {d.uid for d in self.descendants(uid)}:
                raise _error(400, "folder cannot be parent of itself", messageId="folder.circular-reference")
            self._check_depth(parent, self._height(uid))
        rec.parent_uid = parent
        rec.updated, rec.updated_by = self.clock(), principal.login
        return self.folder_json(rec, principal)

    def delete_folder(self, uid: str, query: Query) -> Json:
        """DELETE /api/folders/:uid: cascades to subfolders and their dashboards."""
        rec = self._folder_or_404(uid)
        subtree = [rec, *self.descendants(uid)]
        if any(f.alert_rules for f in subtree) and not _qbool(query, "forceDeleteRules"):
            raise _error(400, "folder contains alert rules")
        doomed = {f.uid for f in subtree}
        for dash_uid in [d.uid for d in self.dashboards.values() if d.folder_uid in doomed]:
            self._drop_dashboard(dash_uid)
        for folder_uid in doomed:
            del self.folders[folder_uid]
        return {"id": rec.id, "uid": rec.uid, "title": rec.title, "message": f"Folder {rec.title} deleted"}

    # ------------------------------------------------------------------ data sources

    _DS_DEFAULTS: Json = {
        "access": "proxy",
        "url": "",
        "user": "",
        "database": "",
        "basicAuth": False,
        "basicAuthUser": "",
        "withCredentials": False,
        "isDefault": False,
        "jsonData": {},
        "readOnly": False,
    }

    def _ds_json(self, ds: DatasourceRec) -> Json:
        out = copy.deepcopy(ds.fields)
        out["secureJsonFields"] = {k: True for k in sorted(ds.secure)}
        return out

    def _ds_list_item(self, ds: DatasourceRec) -> Json:
        f = ds.fields
        keys = ("id", "uid", "orgId", "name", "type", "typeLogoUrl", "access", "url", "user", "database")
        item = {k: copy.deepcopy(f[k]) for k in keys}
        item.update(
            typeName=f["type"].capitalize(),
            basicAuth=f["basicAuth"],
            isDefault=f["isDefault"],
            jsonData=copy.deepcopy(f["jsonData"]),
            readOnly=f["readOnly"],
        )
        return item

    def _ds_by_name(self, name: str) -> DatasourceRec | None:
        return next((d for d in self.datasources.values() if d.fields["name"] == name), None)

    def _ds_or_404(self, uid: str) -> DatasourceRec:
        ds = self.datasources.get(uid)
        if ds is None:
            raise _error(404, "Data source not found")
        return ds

    @staticmethod
    def _ds_input(body: Any) -> tuple[Json, dict[str, str] | None]:
        if not isinstance(body, dict):
            raise bad_request_data()
        name, kind = _opt(body, "name", str), _opt(body, "type", str)
        if not name or not kind:
            raise bad_request_data()
        fields: Json = {"name": name, "type": kind}
        for key, kind_of in (
            ("access", str),
            ("url", str),
            ("user", str),
            ("database", str),
            ("basicAuth", bool),
            ("basicAuthUser", str),
            ("withCredentials", bool),
            ("isDefault", bool),
            ("jsonData", dict),
        ):
            value = _opt(body, key, kind_of)
            if value is not None:
                fields[key] = copy.deepcopy(value)
        secure = _opt(body, "secureJsonData", dict)
        if secure is not None and not all(isinstance(v, str) for v in secure.values()):
            raise bad_request_data()
        return fields, secure

    def _set_default(self, uid: str) -> None:
        for other in self.datasources.values():
            other.fields["isDefault"] = other.fields["uid"] == uid

    def list_datasources(self) -> list[Json]:
        """GET /api/datasources, by name."""
        ordered = sorted(self.datasources.values(), key=lambda d: (d.fields["name"].lower(), d.fields["uid"]))
        return [self._ds_list_item(d) for d in ordered]

    def create_datasource(self, body: Any) -> Json:
        """POST /api/datasources."""
        fields, secure = self._ds_input(body)
        assert isinstance(body, dict)
        uid = (_opt(body, "uid", str) or "").strip()
        problem = uid_problem(uid)
        if problem:
            raise _error(400, problem)
        if self._ds_by_name(fields["name"]) is not None:
            raise _error(409, "data source with the same name already exists")
        if uid and uid in self.datasources:
            raise _error(409, "data source with the same uid already exists")
        uid = uid or self._fresh_uid()
        record: Json = {"id": self._next_ds_id, "uid": uid, "orgId": 1, "typeLogoUrl": ""}
        record.update(copy.deepcopy(self._DS_DEFAULTS))
        record.update(fields)
        record["version"] = 1
        self._next_ds_id += 1
        self.datasources[uid] = DatasourceRec(record, dict(secure or {}))
        if record["isDefault"]:
            self._set_default(uid)
        return {
            "datasource": self._ds_json(self.datasources[uid]),
            "id": record["id"],
            "name": record["name"],
            "message": "Datasource added",
        }

    def get_datasource(self, uid: str) -> Json:
        """GET /api/datasources/uid/:uid."""
        return self._ds_json(self._ds_or_404(uid))

    def get_datasource_by_name(self, name: str) -> Json:
        """GET /api/datasources/name/:name."""
        ds = self._ds_by_name(name)
        if ds is None:
            raise _error(404, "Data source not found")
        return self._ds_json(ds)

    def update_datasource(self, uid: str, body: Any) -> Json:
        """PUT /api/datasources/uid/:uid."""
        ds = self._ds_or_404(uid)
        fields, secure = self._ds_input(body)
        assert isinstance(body, dict)
        version = _opt(body, "version", int)
        if ds.fields["readOnly"]:
            raise _error(403, "Cannot update read-only data source")
        other = self._ds_by_name(fields["name"])
        if other is not None and other is not ds:
            raise _error(409, "data source with the same name already exists")
        if version is not None and version != 0 and version < ds.fields["version"]:
            raise _error(409, "Datasource has already been updated by someone else. Please reload and try again")
        ds.fields.update(copy.deepcopy(self._DS_DEFAULTS))
        ds.fields.update(fields)
        ds.fields["version"] += 1
        if secure is not None:
            ds.secure.update(secure)
        if ds.fields["isDefault"]:
            self._set_default(uid)
        return {
            "datasource": self._ds_json(ds),
            "id": ds.fields["id"],
            "name": ds.fields["name"],
            "message": "Datasource updated",
        }

    def delete_datasource(self, uid: str) -> Json:
        """DELETE /api/datasources/uid/:uid."""
        ds = self._ds_or_404(uid)
        if ds.fields["readOnly"]:
            raise _error(403, "Cannot delete read-only data source")
        del self.datasources[uid]
        return {"message": "Data source deleted", "id": ds.fields["id"]}
