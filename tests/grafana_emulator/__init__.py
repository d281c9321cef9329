"""A Grafana (>= 11.3 legacy HTTP API) test double: a real HTTP server on 127.0.0.1 with an in-memory store.

See README.md beside this file for the routes, the hooks and where it is stricter than Grafana.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ._schema import SCHEMA_DIR, DashboardSchema, resolve_schema_path
from ._server import EmulatorHTTPServer, Reply
from ._store import ROLE_RANK, ApiError, Json, Principal, Query, Store, bad_request_data
from ._util import json_bytes, parse_json

__all__ = [
    "DEFAULT_TOKENS",
    "SCHEMA_DIR",
    "Fault",
    "GrafanaEmulator",
    "RequestRecord",
    "resolve_schema_path",
]

DEFAULT_TOKENS: dict[str, str] = {"admin-token": "Admin", "editor-token": "Editor", "viewer-token": "Viewer"}
DEFAULT_BASIC_USERS: dict[str, tuple[str, str]] = {"admin": ("admin", "Admin")}
_Headers = Mapping[str, str] | Message
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
BUILD_COMMIT = "emulator"


@dataclass(frozen=True)
class RequestRecord:
    """One request the emulator answered: body is the parsed JSON (raw text if malformed, None if empty)."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    body: Any | None


@dataclass
class Fault:
    """A pending injected failure: the next `remaining` requests matching method/path_prefix get `status`."""

    status: int
    remaining: int
    path_prefix: str
    method: str | None
    retry_after: float | str | None
    delay_s: float

    def matches(self, method: str, path: str) -> bool:
        """True when this fault applies to a request."""
        return (
            self.remaining > 0
            and path.startswith(self.path_prefix)
            and (self.method is None or self.method.upper() == method)
        )


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: str
    min_role: str | None  # None: no authentication at all
    has_body: bool = False


def _route(method: str, path: str, handler: str, min_role: str | None, has_body: bool = False) -> _Route:
    regex = re.sub(r":(\w+)", r"(?P<\1>[^/]+)", path)
    return _Route(method, re.compile(regex), handler, min_role, has_body)


_ROUTES: tuple[_Route, ...] = (
    _route("GET", "/api/health", "health", None),
    _route("GET", "/api/frontend/settings", "frontend_settings", "Viewer"),
    _route("POST", "/api/dashboards/db", "save_dashboard", "Editor", True),
    _route("GET", "/api/dashboards/tags", "dashboard_tags", "Viewer"),
    _route("GET", "/api/dashboards/uid/:uid", "get_dashboard", "Viewer"),
    _route("DELETE", "/api/dashboards/uid/:uid", "delete_dashboard", "Editor"),
    _route("GET", "/api/dashboards/uid/:uid/versions", "dashboard_versions", "Viewer"),
    _route("GET", "/api/dashboards/uid/:uid/versions/:version", "dashboard_version", "Viewer"),
    _route("GET", "/api/search", "search", "Viewer"),
    _route("GET", "/api/folders", "list_folders", "Viewer"),
    _route("POST", "/api/folders", "create_folder", "Editor", True),
    _route("GET", "/api/folders/id/:id", "get_folder_by_id", "Viewer"),
    _route("GET", "/api/folders/:uid", "get_folder", "Viewer"),
    _route("PUT", "/api/folders/:uid", "update_folder", "Editor", True),
    _route("DELETE", "/api/folders/:uid", "delete_folder", "Editor"),
    _route("POST", "/api/folders/:uid/move", "move_folder", "Editor", True),
    _route("GET", "/api/datasources", "list_datasources", "Viewer"),
    _route("POST", "/api/datasources", "create_datasource", "Admin", True),
    _route("GET", "/api/datasources/uid/:uid", "get_datasource", "Viewer"),
    _route("PUT", "/api/datasources/uid/:uid", "update_datasource", "Admin", True),
    _route("DELETE", "/api/datasources/uid/:uid", "delete_datasource", "Admin"),
    _route("GET", "/api/datasources/name/:name", "get_datasource_by_name", "Viewer"),
)


_json_bytes = json_bytes


def _logged_body(raw: bytes) -> Any | None:
    if not raw:
        return None
    try:
        return parse_json(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class _LogEntry:
    """A request as answered; its body is parsed only when someone reads the log."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    raw: bytes

    def record(self) -> RequestRecord:
        return RequestRecord(self.method, self.path, self.query, self.status, _logged_body(self.raw))


class GrafanaEmulator:
    """Grafana >= 11.3's legacy HTTP API on 127.0.0.1 (unique_titles=True: <= 11.2 title rules).

    Start with start() or a `with` block; the URL is `url`. Hooks: inject_fault, request_log/clear_log/writes,
    ui_edit, mark_provisioned, set_plugin, seed_dashboard, seed_folder, set_alert_rules, latency_s,
    database_failing. State is one org (id 1) behind one lock; requests are served concurrently.
    """

    def __init__(
        self,
        tokens: Mapping[str, str] | None = None,
        *,
        strict_schema: bool = True,
        unique_titles: bool = False,
        latency_s: float = 0.0,
        schema_path: str | os.PathLike[str] | None = None,
        basic_users: Mapping[str, tuple[str, str]] | None = None,
        grafana_version: str | None = None,
        refresh_policy: str = "clamp",
        min_refresh_interval: str = "5s",
        max_folder_depth: int = 4,
        uid_seed: int | None = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tokens = dict(DEFAULT_TOKENS if tokens is None else tokens)
        self.basic_users = dict(DEFAULT_BASIC_USERS if basic_users is None else basic_users)
        for role in [*self.tokens.values(), *(r for _, r in self.basic_users.values())]:
            if role not in ROLE_RANK:
                raise ValueError(f"unknown role {role!r}; use Viewer, Editor or Admin")
        self.strict_schema = strict_schema
        self.unique_titles = unique_titles
        self.latency_s = latency_s
        self.grafana_version = grafana_version or ("11.2.0" if unique_titles else "11.4.0")
        self.database_failing = False
        self.schema = DashboardSchema(schema_path) if strict_schema else None
        self._store = Store(
            unique_titles=unique_titles,
            schema=self.schema,
            refresh_policy=refresh_policy,
            min_refresh_interval=min_refresh_interval,
            max_folder_depth=max_folder_depth,
            uid_seed=uid_seed,
            clock=clock,
        )
        self._lock = threading.RLock()
        self._log: list[_LogEntry] = []
        self._faults: list[Fault] = []
        self._stop = threading.Event()
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> GrafanaEmulator:
        """Bind 127.0.0.1 on a free port and serve in a background thread."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._stop.clear()
        self._server = EmulatorHTTPServer(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="grafana-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and join every server thread."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stop.set()  # wakes handlers sleeping in latency or fault delays
        server.shutdown()
        server.close_connections()
        server.server_close()  # joins the handler threads
        if thread is not None:
            thread.join()
        self._server = self._thread = None

    def __enter__(self) -> GrafanaEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def stopping(self) -> bool:
        """True once stop() has begun."""
        return self._stop.is_set()

    @property
    def port(self) -> int:
        """The bound TCP port (after start())."""
        if self._server is None:
            raise RuntimeError("emulator not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ hooks

    def inject_fault(
        self,
        status: int = 503,
        count: int = 1,
        path_prefix: str = "",
        method: str | None = None,
        retry_after: float | str | None = None,
        delay_s: float = 0.0,
    ) -> Fault:
        """Make the next `count` matching requests fail with `status` (0: wait delay_s, then drop the connection).

        With retry_after the reply carries a Retry-After header (seconds, rounded up; a string is sent as is).
        Faults apply before routing and authentication, in the order they were injected.
        """
        fault = Fault(status, count, path_prefix, method, retry_after, delay_s)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._faults.clear()

    @property
    def request_log(self) -> list[RequestRecord]:
        """Every request answered so far, oldest first (a copy)."""
        with self._lock:
            entries = list(self._log)
        return [e.record() for e in entries]

    def clear_log(self) -> None:
        """Empty the request log."""
        with self._lock:
            self._log.clear()

    def writes(self) -> list[RequestRecord]:
        """The request log filtered to POST, PUT, DELETE and PATCH."""
        with self._lock:
            entries = [e for e in self._log if e.method in WRITE_METHODS]
        return [e.record() for e in entries]

    def request_count(self, *, writes_only: bool = False) -> int:
        """How many requests (or writes) were answered, without parsing their bodies."""
        with self._lock:
            return sum(1 for e in self._log if not writes_only or e.method in WRITE_METHODS)

    def ui_edit(
        self, uid: str, mutate: Callable[[Json], Json | None], *, user: str = "admin", message: str = ""
    ) -> Json:
        """Apply mutate(model) as a UI user would and save it as a new version (version + 1).

        `mutate` may change the dict in place or return a replacement. Returns the stored model. KeyError if absent.
        """
        with self._lock:
            return self._store.ui_edit(uid, mutate, user, message)

    def mark_provisioned(self, uid: str, external_id: str = "file.json") -> None:
        """Flag a dashboard as file-provisioned: saves and deletes through the API then fail with 400."""
        with self._lock:
            self._store.dashboards[uid].provisioned_external_id = external_id

    def set_plugin(self, uid: str, plugin_id: str) -> None:
        """Make a dashboard belong to a plugin: saves without overwrite then fail with 412 plugin-dashboard."""
        with self._lock:
            self._store.dashboards[uid].plugin_id = plugin_id

    def set_alert_rules(self, folder_uid: str, count: int) -> None:
        """Pretend `count` alert rules live in a folder (DELETE then needs forceDeleteRules=true)."""
        with self._lock:
            self._store.folders[folder_uid].alert_rules = count

    def seed_dashboard(self, dashboard: Json, folder_uid: str | None = None, *, user: str = "admin") -> Json:
        """Insert a dashboard without HTTP (one obsctl did not create): version 1, id and uid assigned if absent.

        Not schema-validated. Returns the stored model. ValueError on a taken uid or unknown folder.
        """
        with self._lock:
            return self._store.seed_dashboard(dashboard, folder_uid, user)

    def seed_folder(self, uid: str, title: str, parent_uid: str | None = None, *, user: str = "admin") -> Json:
        """Insert a folder without HTTP; returns its API representation."""
        with self._lock:
            rec = self._store.seed_folder(uid, title, parent_uid, user)
            return self._store.folder_json(rec, Principal(user, "Admin"))

    @property
    def dashboards(self) -> dict[str, Json]:
        """{uid: stored dashboard model} (deep copies; change state through the API or ui_edit)."""
        with self._lock:
            return {uid: rec.model for uid, rec in self._store.dashboards.items()}  # each a fresh parse

    @property
    def folders(self) -> dict[str, Json]:
        """{uid: folder as GET /api/folders/:uid returns it to an Admin}."""
        with self._lock:
            admin = Principal("admin", "Admin")
            return {uid: self._store.folder_json(rec, admin) for uid, rec in self._store.folders.items()}

    def dashboard_folder(self, uid: str) -> str:
        """Folder uid holding a dashboard ("" for the root)."""
        with self._lock:
            return self._store.dashboards[uid].folder_uid

    def versions(self, uid: str) -> list[Json]:
        """Saved versions of a dashboard, oldest first, each with its `data`."""
        with self._lock:
            return [self._store._version_json(v, with_data=True) for v in self._store.versions.get(uid, [])]

    # ------------------------------------------------------------------ request handling

    def _handle(self, method: str, target: str, headers: _Headers, raw: bytes) -> Reply:
        split = urlsplit(target)
        path = split.path
        query = parse_qs(split.query, keep_blank_values=True)
        reply = self._process(method, path, query, headers, raw)
        with self._lock:
            self._log.append(_LogEntry(method, path, query, reply.status, raw))
        return reply

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.remaining -= 1
                    return fault
            return None

    def _process(self, method: str, path: str, query: Query, headers: _Headers, raw: bytes) -> Reply:
        if self.latency_s > 0:
            self._stop.wait(self.latency_s)
        fault = self._take_fault(method, path)
        if fault is not None:
            if fault.delay_s > 0:
                self._stop.wait(fault.delay_s)
            if fault.status == 0:
                return Reply(0, drop=True)
            extra: dict[str, str] = {}
            if fault.retry_after is not None:
                ra = fault.retry_after
                extra["Retry-After"] = ra if isinstance(ra, str) else str(math.ceil(ra))
            known = fault.status in HTTPStatus._value2member_map_
            message = HTTPStatus(fault.status).phrase if known else "Injected fault"
            return Reply(fault.status, _json_bytes({"message": message}), extra)

        route, params, path_known = None, {}, False
        for candidate in _ROUTES:
            match = candidate.pattern.fullmatch(path)
            if match:
                path_known = True
                if candidate.method == method:
                    route, params = candidate, {k: unquote(v) for k, v in match.groupdict().items()}
                    break
        if route is None:
            if path_known:
                return Reply(405, _json_bytes({"message": "Method Not Allowed"}))
            return Reply(404, _json_bytes({"message": "Not found"}))
        try:
            principal = None
            if route.min_role is not None:
                principal = self._authenticate(headers)
                if not principal.at_least(route.min_role):
                    raise ApiError(
                        403,
                        {
                            "message": f"Access denied: role {principal.role} cannot {method} {path}",
                            "title": "Access denied",
                        },
                    )
            body: Any = None
            if route.has_body:
                try:
                    body = parse_json(raw) if raw else None
                except ValueError:
                    raise bad_request_data() from None
                if body is None:
                    raise bad_request_data()
            with self._lock:  # serialised under the lock: handlers may answer with views of the store
                payload = getattr(self, f"_api_{route.handler}")(params, query, body, principal)
                return Reply(200, _json_bytes(payload))
        except ApiError as err:
            return Reply(err.status, _json_bytes(err.body))

    def _authenticate(self, headers: _Headers) -> Principal:
        unauthorized = ApiError(401, {"message": "Unauthorized"})
        scheme, _, credential = headers.get("Authorization", "").strip().partition(" ")
        credential = credential.strip()
        principal: Principal | None = None
        if scheme.lower() == "bearer" and credential in self.tokens:
            principal = Principal(f"sa-{self.tokens[credential].lower()}", self.tokens[credential])
        elif scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(credential, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise unauthorized from None
            if user == "api_key" and password in self.tokens:
                principal = Principal(f"sa-{self.tokens[password].lower()}", self.tokens[password])
            elif user in self.basic_users and self.basic_users[user][0] == password:
                principal = Principal(user, self.basic_users[user][1])
        if principal is None:
            raise unauthorized
        org = headers.get("X-Grafana-Org-Id")
        if org is not None and org.strip() != "1":
            raise unauthorized
        return principal

    # One adapter per route: (path params, query, parsed body, principal) -> JSON payload.

    def _api_health(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Json:
        payload = {"commit": BUILD_COMMIT, "database": "ok", "version": self.grafana_version}
        if self.database_failing:
            raise ApiError(503, {**payload, "database": "failing"})
        return payload

    def _api_frontend_settings(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Json:
        default_ds = next((d.fields["name"] for d in self._store.datasources.values() if d.fields["isDefault"]), "")
        return {
            "buildInfo": {
                "version": self.grafana_version,
                "commit": BUILD_COMMIT,
                "edition": "Open Source",
                "env": "production",
                "buildstamp": 0,
                "hideVersion": False,
                "hasUpdate": False,
                "latestVersion": "",
            },
            "appSubUrl": "",
            "defaultDatasource": default_ds,
            "minRefreshInterval": self._store.min_refresh_interval,
            "featureToggles": {"nestedFolders": True},
        }

    def _api_save_dashboard(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Json:
        assert who is not None
        return self._store.save_dashboard(body, who)

    def _api_dashboard_tags(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Any:
        return self._store.dashboard_tags()

    def _api_get_dashboard(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Json:
        assert who is not None
        return self._store.get_dashboard(params["uid"], who)

    def _api_delete_dashboard(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Json:
        return self._store.delete_dashboard(params["uid"])

    def _api_dashboard_versions(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Any:
        assert who is not None
        return self._store.dashboard_versions(params["uid"], query, who)

    def _api_dashboard_version(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Json:
        assert who is not None
        return self._store.dashboard_version(params["uid"], params["version"], who)

    def _api_search(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Any:
        return self._store.search(query)

    def _api_list_folders(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Any:
        return self._store.list_folders(query)

    def _api_create_folder(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Json:
        assert who is not None
        return self._store.create_folder(body, who)

    def _api_get_folder_by_id(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Json:
        assert who is not None
        return self._store.get_folder_by_id(params["id"], who)

    def _api_get_folder(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Json:
        assert who is not None
        return self._store.get_folder(params["uid"], who)

    def _api_update_folder(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Json:
        assert who is not None
        return self._store.update_folder(params["uid"], body, who)

    def _api_delete_folder(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Json:
        return self._store.delete_folder(params["uid"], query)

    def _api_move_folder(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Json:
        assert who is not None
        return self._store.move_folder(params["uid"], body, who)

    def _api_list_datasources(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Any:
        return self._store.list_datasources()

    def _api_create_datasource(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Json:
        return self._store.create_datasource(body)

    def _api_get_datasource(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Json:
        return self._store.get_datasource(params["uid"])

    def _api_update_datasource(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Json:
        return self._store.update_datasource(params["uid"], body)

    def _api_delete_datasource(self, params: dict[str, str], query: Query, body: Any, who: Principal | None) -> Json:
        return self._store.delete_datasource(params["uid"])

    def _api_get_datasource_by_name(
        self, params: dict[str, str], query: Query, body: Any, who: Principal | None
    ) -> Json:
        return self._store.get_datasource_by_name(params["name"])
