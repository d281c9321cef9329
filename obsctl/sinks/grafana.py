"""Grafana sink: folders and dashboards through Grafana's HTTP API (grafana-client).

Ownership. A dashboard is obsctl's when it carries the `obsctl` tag; a folder when its uid starts
with `obsctl-` AND its description carries obsctl's mark (the folder list shows no tags, so both
are needed: a folder someone else named `obsctl-x` is never touched). Nothing else is ever
edited or deleted: a create that finds its uid taken by someone else's dashboard or folder fails
permanently instead of overwriting it.

No version churn. Every save carries the message `obsctl apply sha256=<digest>` and the tag
`obsctl-sha:<first 16 hex of digest>` (conventions.digest_tag), where digest is the sha256 of the
rendered artifact body, which never holds that tag. A dashboard read back is normalised (Grafana's
`id` and `version` and the digest tag stripped, canonical JSON), so its content hashes to the same
digest; the plan compares digests, so an unchanged catalog makes no writes. A dashboard whose digest
tag is missing or does not match its content (saved by an older obsctl) is rewritten once, with it.

Listing depth. `list_owned` is fast or deep:

- fast (`list_owned(deep=False)` once `prepare` told the sink the desired state): one paginated search
  (`tag=obsctl`, `type=dash-db`) and the folder list; no per-dashboard read. A hit whose single
  digest tag names the desired artifact and whose folderUid is that artifact's (owned) folder is
  listed as holding exactly that artifact. Every other hit (digest tag missing, repeated or garbled,
  another digest (the catalog changed), another folder, or not desired any more) is read as in a
  deep listing, so updates and deletes always see the dashboard's real content, version and drift;
  so is a dashboard an earlier listing of this sink found drifted and obsctl has not rewritten since
  (drift kept or reported stays visible between deep listings).
- deep (`list_owned()`; also whenever `prepare` was never called): every owned dashboard is read
  and its last version message checked, as below.

Folders are walked level by level (`GET /api/folders?parentUid=`). A deep listing walks the whole
tree and reads every `obsctl-` folder for its description (the ownership mark). A fast one does not
descend into a folder this sink last saw (or created) without `obsctl-` subfolders, and reuses what
it last read or wrote of a folder while the list shows the same title and parent; writes and deletes
of folders always read the folder again first. An obsctl-marked folder someone else creates inside
a team folder is only seen (and pruned) by the next deep listing.

Trade-off: an edit outside obsctl that keeps the digest tag and the folder (a UI edit of panels or
title) is invisible to fast listings; the next deep listing finds it. `obsctl apply` always lists
deep; the reconcile loop lists deep on full resyncs at most every `deep_check_seconds` (setting
grafana.deep_check_seconds, default 600; 0 = every full resync) and fast otherwise. The digest
tags also show in Grafana's tag filter (one distinct tag per dashboard content).

Drift (found by deep listings, and by fast ones for what they read). A dashboard whose newest
version was not saved by obsctl with the digest of what it now holds was edited outside obsctl (in
the UI, by another tool); so was one moved out of obsctl's folders. `drift_policy` decides:

- `overwrite` (default): obsctl's rendering wins; the edit stays in Grafana's version history.
- `keep`: the edited dashboard is left as it is (no write, no delete) until the edit is reverted
  or the dashboard is removed by hand; the outcome reads as applied and `drifted` lists it.
- `report`: nothing is written or deleted and the change fails permanently with a drift message,
  so status and exit codes show it until someone decides.

Folders obsctl owns are always put back as rendered (title, description, parent); a folder is
deleted only when it holds nothing but obsctl's own dashboards and folders, which go first.
Use either this sink or the file-provisioning output on one Grafana, not both: Grafana refuses API
saves of file-provisioned dashboards (400), which this sink reports as permanent.

Answers are mapped as Grafana gives them: 400 "folder not found" ensures the folder and retries
once; 412 (version-mismatch, plugin-dashboard) and 409 (uid taken) are permanent and never lead
to a delete; 401/403 are permanent; 5xx, timeouts, connection errors and 429 (with Retry-After)
are temporary, retried by apply_plan with backoff.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaServerError,
    GrafanaTimeoutError,
)
from niquests.exceptions import RequestException

from obsctl.errors import PermanentError, TemporaryError, is_temporary_status, parse_retry_after
from obsctl.model import conventions as cv
from obsctl.model.artifact import Artifact, Kind, Observed
from obsctl.sinks.base import SinkContract

log = logging.getLogger(__name__)
T = TypeVar("T")
DRIFT_POLICIES = ("overwrite", "keep", "report")
_SERVER_FIELDS = ("id", "version")
_READ_ATTEMPTS = 3


class _HttpError(Exception):
    """A 4xx answer the caller decides about (400, 404, 409, 412, 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


def _message_of(exc: GrafanaException) -> str:
    body = exc.response
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return str(exc.message)


def normalise_dashboard(model: Mapping[str, Any]) -> dict[str, Any]:
    """A stored dashboard as rendered: without the fields Grafana assigns (id, version) and the digest tag."""
    out = {k: v for k, v in model.items() if k not in _SERVER_FIELDS}
    if isinstance(out.get("tags"), list):
        out["tags"] = [t for t in out["tags"] if not cv.is_digest_tag(t)]
    return out


def folder_body(uid: str, title: str, description: str, parent_uid: str) -> dict[str, Any]:
    """The normalised form of a folder, as the renderer writes it."""
    body: dict[str, Any] = {"uid": uid, "title": title, "description": description}
    if parent_uid:
        body["parentUid"] = parent_uid
    return body


def _dashboard_id(uid: str) -> str:
    return f"{Kind.GRAFANA_DASHBOARD.value}/{uid}"


def _folder_id(uid: str) -> str:
    return f"{Kind.GRAFANA_FOLDER.value}/{uid}"


def _folder_of(artifact: Artifact) -> str:
    """The folder uid of a dashboard artifact: the directory of its path (conventions.dashboard_path)."""
    parts = artifact.path.split("/")
    return parts[-2] if len(parts) >= 2 else ""


@dataclass
class _Client:
    """One pooled grafana-client instance and the Retry-After of its last answer."""

    api: GrafanaApi
    retry_after: str | None = None


@dataclass
class _Seen:
    """What list_owned found about one dashboard, for the writes that follow."""

    version: int | None  # None: listed from a search hit alone (fast), not read yet
    folder_uid: str
    drifted: bool


@dataclass(frozen=True)
class _FolderSpec:
    uid: str
    title: str
    parent_uid: str


@dataclass
class DriftRecord:
    """A dashboard edited outside obsctl and what the policy did about it."""

    uid: str
    action: str  # overwritten, kept, reported
    detail: str = ""


@dataclass
class _Stats:
    drift: list[DriftRecord] = field(default_factory=list)


class GrafanaSink:
    """Folders and dashboards in one Grafana org, written through grafana-client."""

    name = "grafana"
    kinds = frozenset({Kind.GRAFANA_FOLDER, Kind.GRAFANA_DASHBOARD})

    def __init__(self, url: str, token: str | tuple[str, str], *, org_id: int = 1, drift_policy: str = "overwrite",
                 parallelism: int = 8, timeout: float = 10.0, page_size: int = 1000, verify: bool = True,
                 deep_check_seconds: float = 600.0, search_page_size: int = 5000) -> None:
        if drift_policy not in DRIFT_POLICIES:
            raise ValueError(f"drift_policy must be one of {', '.join(DRIFT_POLICIES)}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not a Grafana URL: {url!r}")
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        prefix = parts.path.strip("/")
        self._prefix = f"{prefix}/" if prefix else ""
        self._auth = token
        self._org_id = org_id
        self._timeout = timeout
        self._verify = verify
        self.drift_policy = drift_policy
        self.parallelism = max(1, parallelism)
        self.page_size = page_size  # folder list pages
        self.search_page_size = min(5000, search_page_size)  # Grafana answers 422 above 5000
        self.deep_check_seconds = deep_check_seconds  # declared in the contract: how often full rounds go deep
        self._expected: dict[str, Artifact] | None = None  # desired dashboards by uid, from prepare()
        self._folder_cache: dict[str, dict[str, Any]] = {}  # owned folders as last read or written
        self._digests: dict[str, tuple[bytes, str]] = {}  # artifact id -> (body, digest): hash each body once
        self._leaf_folders: set[str] = set()  # owned folders last seen (or created) without obsctl subfolders
        self._drifted_uids: set[str] = set()  # found drifted by a read and not rewritten since: fast listings read them
        self._clients: queue.SimpleQueue[_Client] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._folder_lock = threading.RLock()  # folder writes are few: serialise them, no racing creates
        self._seen: dict[str, _Seen] = {}
        self._folders_ok: set[str] = set()
        self._folder_specs: dict[str, _FolderSpec] = {
            cv.ROOT_FOLDER_UID: _FolderSpec(cv.ROOT_FOLDER_UID, cv.ROOT_FOLDER_TITLE, "")}
        self._stats = _Stats()

    # ------------------------------------------------------------------ plumbing

    def _new_client(self) -> _Client:
        api = GrafanaApi(self._auth, host=self._host, port=self._port, url_path_prefix=self._prefix,
                         protocol=self._scheme, verify=self._verify, timeout=self._timeout,
                         organization_id=self._org_id, session_pool_size=2)
        client = _Client(api)

        def remember(response: Any, **_: Any) -> Any:
            client.retry_after = response.headers.get("Retry-After")
            return response

        api.client.s.hooks["response"].append(remember)
        return client

    def close(self) -> None:
        """Close every HTTP session this sink opened."""
        while True:
            try:
                client = self._clients.get_nowait()
            except queue.Empty:
                return
            client.api.client.s.close()

    def _http(self, method: str, path: str, *, json_body: Any = None,
              params: Mapping[str, Any] | None = None) -> Any:
        """One API call, mapped: temporary errors raise TemporaryError, 401/403 PermanentError, other 4xx _HttpError.

        Clients are pooled (one borrower at a time each), so the pool never outgrows the concurrency.
        """
        try:
            client = self._clients.get_nowait()
        except queue.Empty:
            client = self._new_client()
        try:
            return self._call(client, method, path, json_body, params)
        finally:
            self._clients.put(client)

    def _call(self, client: _Client, method: str, path: str, json_body: Any,
              params: Mapping[str, Any] | None) -> Any:
        client.retry_after = None
        what = f"{method} {path}"
        try:
            return getattr(client.api.client, method)(path, json=json_body, params=dict(params) if params else None)
        except GrafanaTimeoutError as exc:
            raise TemporaryError(f"grafana: {what}: timeout ({exc.message})") from None
        except GrafanaServerError as exc:
            raise TemporaryError(f"grafana: {what}: {exc.status_code} {_message_of(exc)}",
                                 parse_retry_after(client.retry_after)) from None
        except GrafanaClientError as exc:
            status = exc.status_code
            message = _message_of(exc)
            if is_temporary_status(status):
                raise TemporaryError(f"grafana: {what}: {status} {message}",
                                     parse_retry_after(client.retry_after)) from None
            if status in (401, 403):
                raise PermanentError(f"grafana: {what}: {status} {message} (check the token and its role)") \
                    from None
            raise _HttpError(status, message) from None
        except GrafanaException as exc:  # no HTTP status at all
            raise TemporaryError(f"grafana: {what}: {exc.message}") from None
        except (RequestException, OSError) as exc:  # refused, reset, dropped: grafana-client lets these through
            raise TemporaryError(f"grafana: {what}: connection failed ({exc})") from None

    def _read(self, method: Callable[[], T]) -> T:
        """A read with a few quick retries: list_owned must be complete or fail."""
        for attempt in range(1, _READ_ATTEMPTS + 1):
            try:
                return method()
            except TemporaryError as exc:
                if attempt == _READ_ATTEMPTS:
                    raise
                time.sleep(min(5.0, max(0.1 * 2 ** attempt, exc.retry_after or 0.0)))
        raise AssertionError("unreachable")

    def _map(self, fn: Callable[[T], Any], items: Iterable[T]) -> list[Any]:
        items = list(items)
        if self.parallelism == 1 or len(items) < 2:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(self.parallelism, thread_name_prefix="grafana-read") as pool:
            return list(pool.map(fn, items))

    @property
    def drifted(self) -> list[DriftRecord]:
        """Dashboards found edited outside obsctl during the last apply, with what the policy did."""
        with self._lock:
            return list(self._stats.drift)

    def prepare(self, desired: Iterable[Artifact]) -> None:
        """Learn the desired state: folders' titles and parents (so a dashboard that lands first can create
        them) and the dashboards a fast listing compares search hits with. Each call replaces the last."""
        expected: dict[str, Artifact] = {}
        for art in desired:
            if art.kind is Kind.GRAFANA_DASHBOARD:
                expected[art.key] = art
            elif art.kind is Kind.GRAFANA_FOLDER:
                body = json.loads(art.body)
                with self._lock:
                    self._folder_specs[art.key] = _FolderSpec(art.key, str(body["title"]),
                                                              str(body.get("parentUid", "")))
        with self._lock:
            self._expected = expected
            ids = {a.id for a in expected.values()}
            self._digests = {aid: d for aid, d in self._digests.items() if aid in ids}

    @property
    def contract(self) -> SinkContract:
        """Parallel writes; fast listings from search hits, deep ones every `deep_check_seconds`."""
        return SinkContract(parallelism=self.parallelism, deep_every_seconds=self.deep_check_seconds)

    # ------------------------------------------------------------------ reading

    def _folder_page(self, parent: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            params: dict[str, Any] = {"limit": self.page_size, "page": page}
            if parent:
                params["parentUid"] = parent
            batch = self._read(lambda params=params: self._http("GET", "/folders", params=params))  # type: ignore[misc]
            out.extend(batch)
            if len(batch) < self.page_size:
                return out
            page += 1

    def _get_folder(self, uid: str) -> dict[str, Any] | None:
        try:
            folder: dict[str, Any] = self._http("GET", f"/folders/{uid}")
            return folder
        except _HttpError as exc:
            if exc.status == 404:
                return None
            raise PermanentError(f"grafana: GET folder {uid}: {exc}") from None

    @staticmethod
    def _owns_folder(folder: Mapping[str, Any]) -> bool:
        return str(folder.get("uid", "")).startswith(cv.FOLDER_UID_PREFIX) and \
            cv.FOLDER_OWNER_MARK in str(folder.get("description", ""))

    def _remember_folder(self, uid: str, title: str, description: str, parent_uid: str) -> None:
        with self._lock:
            self._folder_cache[uid] = {"uid": uid, "title": title, "description": description,
                                       "parentUid": parent_uid}

    def _cached_folder(self, listed: Mapping[str, Any], parent: str) -> dict[str, Any] | None:
        """What obsctl last read or wrote of a listed folder, when the listing still agrees (uid, title, parent)."""
        with self._lock:
            cached = self._folder_cache.get(str(listed.get("uid", "")))
        if cached is None or cached["title"] != listed.get("title") or cached["parentUid"] != parent:
            return None
        return cached

    def _list_folders(self, deep: bool) -> dict[str, Observed]:
        owned: dict[str, Observed] = {}
        frontier = [""]
        depth = 0
        while frontier and depth < 5:
            pages = self._map(self._folder_page, frontier)  # one page walk per parent, in parallel
            with self._lock:
                for parent, page in zip(frontier, pages, strict=True):
                    if any(str(f.get("uid", "")).startswith(cv.FOLDER_UID_PREFIX) for f in page):
                        self._leaf_folders.discard(parent)
                    elif parent:
                        self._leaf_folders.add(parent)
            candidates = [(parent, f) for parent, page in zip(frontier, pages, strict=True) for f in page
                          if str(f.get("uid", "")).startswith(cv.FOLDER_UID_PREFIX)]
            # Fast listings take the description (the ownership mark) from the last read or write when
            # the folder list still shows the same title and parent; deep ones read every candidate.
            known = [None if deep else self._cached_folder(f, parent) for parent, f in candidates]
            read = self._map(lambda f: self._read(lambda: self._get_folder(str(f["uid"]))),
                             [f for (_, f), k in zip(candidates, known, strict=True) if k is None])
            details = [k for k in known if k is not None] + read
            frontier = []
            for folder in details:
                if folder is None or not self._owns_folder(folder):
                    continue
                uid = str(folder["uid"])
                self._remember_folder(uid, str(folder.get("title", "")), str(folder.get("description", "")),
                                      str(folder.get("parentUid", "")))
                body = cv.grafana_json(folder_body(uid, str(folder.get("title", "")),
                                                   str(folder.get("description", "")),
                                                   str(folder.get("parentUid", ""))))
                owned[_folder_id(uid)] = Observed(_folder_id(uid), body, hashlib.sha256(body).hexdigest())
                frontier.append(uid)
            if not deep:  # fast: skip folders known to hold no obsctl folder (the deep listing walks everything)
                with self._lock:
                    frontier = [uid for uid in frontier if uid not in self._leaf_folders]
            depth += 1
        with self._lock:
            self._folders_ok.update(oid.split("/", 1)[1] for oid in owned)
        return owned

    def _search_owned(self) -> list[dict[str, Any]]:
        hits: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {"tag": cv.MANAGED_TAG, "type": "dash-db", "limit": self.search_page_size, "page": page}
            batch = self._read(lambda params=params: self._http("GET", "/search", params=params))  # type: ignore[misc]
            hits.extend(h for h in batch if cv.MANAGED_TAG in (h.get("tags") or []))
            if len(batch) < self.search_page_size:
                break
            page += 1
        unique = {str(h["uid"]): h for h in hits}  # a page boundary shifting under a concurrent write repeats hits
        return [unique[k] for k in sorted(unique)]

    def _last_message(self, uid: str) -> str:
        versions = self._http("GET", f"/dashboards/uid/{uid}/versions", params={"limit": 1})
        if isinstance(versions, dict):  # Grafana < 11 wrapped the list
            versions = versions.get("versions", [])
        return str(versions[0].get("message", "")) if versions else ""

    def _observe_dashboard(self, uid: str) -> tuple[Observed, _Seen] | None:
        try:
            got = self._http("GET", f"/dashboards/uid/{uid}")
            model, meta = got.get("dashboard") or {}, got.get("meta") or {}
            version = int(meta.get("version") or model.get("version") or 0)
            # Version 1 is the creating save: nobody edited it since. Only later versions need their message.
            message = self._last_message(uid) if version > 1 else ""
        except _HttpError as exc:
            if exc.status == 404:  # deleted between search and read: not there, not ours to plan
                return None
            raise PermanentError(f"grafana: reading dashboard {uid}: {exc}") from None
        if cv.MANAGED_TAG not in (model.get("tags") or []):
            return None
        body = cv.grafana_json(normalise_dashboard(model))
        digest = hashlib.sha256(body).hexdigest()
        drifted = version > 1 and message != cv.dashboard_message(digest)
        seen = _Seen(version, str(meta.get("folderUid") or ""), drifted)
        if cv.digest_tag_value(model.get("tags")) != digest[:cv.DIGEST_TAG_HEX]:
            # The digest tag does not vouch for this content: a digest no rendering has makes the plan
            # rewrite it once with the right tag, or every fast listing would have to read it again.
            digest = f"untagged:{digest}"
        return Observed(_dashboard_id(uid), body, digest, drifted), seen

    def _digest_of(self, art: Artifact) -> str:
        """art.digest, remembered while the body is the same object (the loop reuses unchanged renderings)."""
        with self._lock:
            known = self._digests.get(art.id)
        if known is not None and known[0] is art.body:
            return known[1]
        digest = art.digest
        with self._lock:
            self._digests[art.id] = (art.body, digest)
        return digest

    def _trusted_hit(self, hit: Mapping[str, Any], expected: Mapping[str, Artifact],
                     owned_folders: set[str]) -> tuple[Artifact, str] | None:
        """The desired artifact (and its digest) a search hit vouches for holding: right digest tag, right folder."""
        want = expected.get(str(hit.get("uid", "")))
        if want is None:
            return None
        folder = str(hit.get("folderUid") or "")
        tag = cv.digest_tag_value(hit.get("tags"))
        if tag is None or folder != _folder_of(want) or folder not in owned_folders:
            return None
        digest = self._digest_of(want)
        return (want, digest) if tag == digest[:cv.DIGEST_TAG_HEX] else None

    def list_owned(self, deep: bool = True) -> dict[str, Observed]:
        """Every owned folder and dashboard, normalised. Raises TemporaryError when the read is incomplete.

        Deep, or fast when `deep` is False and prepare() told the sink the desired state; see the module doc.
        """
        with self._lock:
            self._stats = _Stats()
            expected = self._expected
            deep = deep or expected is None
            known_drift = set(self._drifted_uids)
        owned = self._list_folders(deep)
        owned_folders = {oid.split("/", 1)[1] for oid in owned}
        hits = self._search_owned()
        seen: dict[str, _Seen] = {}
        to_read: list[str] = []
        for hit in hits:
            uid = str(hit["uid"])
            trusted = None if deep or expected is None or uid in known_drift else \
                self._trusted_hit(hit, expected, owned_folders)
            if trusted is None:
                to_read.append(uid)
                continue
            want, digest = trusted
            owned[want.id] = Observed(want.id, want.body, digest)
            seen[uid] = _Seen(None, _folder_of(want), False)
        found = self._map(lambda uid: self._read(lambda: self._observe_dashboard(uid)), to_read)
        for item in found:
            if item is None:
                continue
            observed, s = item
            if s.folder_uid not in owned_folders:  # moved out of obsctl's folders by hand: drift too
                s.drifted = True
                observed = dataclasses.replace(observed, drifted=True)
            owned[observed.id] = observed
            seen[observed.id.split("/", 1)[1]] = s
        with self._lock:
            self._seen = seen
            # Drift stays visible between deep listings (keep/report leave it in place): re-read those each time.
            self._drifted_uids = {uid for uid, s in seen.items() if s.drifted}
        return dict(sorted(owned.items()))

    # ------------------------------------------------------------------ folders

    def _spec(self, uid: str) -> _FolderSpec:
        with self._lock:
            spec = self._folder_specs.get(uid)
        # A folder nobody described (no prepare()): a placeholder under the root; its own artifact fixes the title.
        return spec or _FolderSpec(uid, uid, cv.ROOT_FOLDER_UID)

    def _ensure_folder(self, uid: str, depth: int = 0) -> None:
        """Make sure an obsctl folder exists (its parents first); never touches a folder obsctl does not own."""
        if not uid:
            return
        with self._lock:
            if uid in self._folders_ok:
                return
        with self._folder_lock:
            self._ensure_folder_locked(uid, depth)

    def _ensure_folder_locked(self, uid: str, depth: int) -> None:
        with self._lock:
            if uid in self._folders_ok:
                return
        spec = self._spec(uid)
        existing = self._get_folder(uid)
        if existing is None:
            self._create_folder(spec, depth)
        elif not self._owns_folder(existing):
            raise PermanentError(f"grafana: folder uid {uid} is taken by a folder obsctl did not create")
        with self._lock:
            self._folders_ok.add(uid)

    def _create_folder(self, spec: _FolderSpec, depth: int = 0) -> dict[str, Any]:
        payload: dict[str, Any] = {"uid": spec.uid, "title": spec.title,
                                   "description": cv.folder_description(spec.title)}
        if spec.parent_uid:
            payload["parentUid"] = spec.parent_uid
        try:
            created: dict[str, Any] = self._http("POST", "/folders", json_body=payload)
            self._remember_folder(spec.uid, spec.title, payload["description"], spec.parent_uid)
            with self._lock:
                self._leaf_folders.add(spec.uid)
                self._leaf_folders.discard(spec.parent_uid)
            return created
        except _HttpError as exc:
            if exc.status == 404 and spec.parent_uid and depth < 4:  # the parent is missing: make it, once
                with self._lock:
                    self._folders_ok.discard(spec.parent_uid)
                self._ensure_folder(spec.parent_uid, depth + 1)
                return self._create_folder(spec, depth + 1)
            if exc.status == 409:
                existing = self._get_folder(spec.uid)
                if existing is not None and self._owns_folder(existing):
                    return existing  # a concurrent ensure (or an earlier lost answer) made it
                raise PermanentError(f"grafana: folder uid {spec.uid} is taken by something obsctl did not create "
                                     f"({exc.message})") from None
            raise PermanentError(f"grafana: creating folder {spec.uid}: {exc}") from None

    def _put_folder(self, artifact: Artifact) -> None:
        with self._folder_lock:
            self._put_folder_locked(artifact)

    def _put_folder_locked(self, artifact: Artifact) -> None:
        body = json.loads(artifact.body)
        spec = _FolderSpec(artifact.key, str(body["title"]), str(body.get("parentUid", "")))
        with self._lock:
            self._folder_specs[spec.uid] = spec
            self._folder_cache.pop(spec.uid, None)  # until this put is through
        if spec.parent_uid:
            self._ensure_folder(spec.parent_uid)
        existing = self._get_folder(spec.uid)
        if existing is None:
            existing = self._create_folder(spec)
        elif not self._owns_folder(existing):
            raise PermanentError(f"grafana: folder uid {spec.uid} is taken by a folder obsctl did not create")
        with self._lock:
            self._folders_ok.add(spec.uid)
        want_desc = str(body.get("description", cv.folder_description(spec.title)))
        if existing.get("title") != spec.title or existing.get("description") != want_desc:
            try:
                self._http("PUT", f"/folders/{spec.uid}", json_body={
                    "title": spec.title, "description": want_desc, "version": existing.get("version"),
                    "overwrite": False})
            except _HttpError as exc:
                raise PermanentError(f"grafana: updating folder {spec.uid}: {exc}") from None
        if str(existing.get("parentUid", "")) != spec.parent_uid:
            try:
                with self._lock:
                    self._leaf_folders.discard(spec.parent_uid)
                self._http("POST", f"/folders/{spec.uid}/move", json_body={"parentUid": spec.parent_uid})
            except _HttpError as exc:
                raise PermanentError(f"grafana: moving folder {spec.uid}: {exc}") from None
        self._remember_folder(spec.uid, spec.title, want_desc, spec.parent_uid)

    def _delete_folder(self, uid: str) -> None:
        with self._lock:
            self._folder_cache.pop(uid, None)
        existing = self._get_folder(uid)
        if existing is None:
            return
        if not self._owns_folder(existing):
            raise PermanentError(f"grafana: folder {uid} is not obsctl's any more; left in place")
        children = self._folder_page(uid)
        inside = self._http("GET", "/search", params={"folderUIDs": uid, "type": "dash-db", "limit": 5000})
        foreign = [h["uid"] for h in inside if cv.MANAGED_TAG not in (h.get("tags") or [])]
        foreign += [f["uid"] for f in children if not str(f.get("uid", "")).startswith(cv.FOLDER_UID_PREFIX)]
        if foreign:
            raise PermanentError(f"grafana: folder {uid} holds things obsctl did not create "
                                 f"({', '.join(map(str, sorted(foreign)[:5]))}); not deleting it")
        if inside or children:
            # obsctl's own dashboards or subfolders are still being removed by this apply: try again shortly.
            raise TemporaryError(f"grafana: folder {uid} is not empty yet", retry_after=0.2)
        try:
            self._http("DELETE", f"/folders/{uid}")
        except _HttpError as exc:
            if exc.status != 404:
                raise PermanentError(f"grafana: deleting folder {uid}: {exc}") from None
        with self._lock:
            self._folders_ok.discard(uid)

    # ------------------------------------------------------------------ dashboards

    def _record_drift(self, uid: str, action: str, detail: str = "") -> None:
        log.warning("grafana dashboard %s was edited outside obsctl: %s (drift_policy=%s)", uid, action,
                    self.drift_policy)
        with self._lock:
            self._stats.drift.append(DriftRecord(uid, action, detail))

    def _drift_gate(self, uid: str, doing: str) -> bool:
        """Apply the drift policy; False means leave the dashboard alone."""
        with self._lock:
            seen = self._seen.get(uid)
        if seen is None or not seen.drifted:
            return True
        if self.drift_policy == "keep":
            self._record_drift(uid, "kept")
            return False
        if self.drift_policy == "report":
            self._record_drift(uid, "reported")
            raise PermanentError(f"grafana: dashboard {uid} was edited outside obsctl; not {doing} it "
                                 "(drift_policy=report: revert the edit, or set drift_policy=overwrite/keep)")
        self._record_drift(uid, "overwritten")
        return True

    def _matches_desired(self, uid: str, artifact: Artifact) -> bool:
        """After a conflict: does Grafana already hold exactly this artifact, as obsctl's?"""
        try:
            got = self._http("GET", f"/dashboards/uid/{uid}")
        except _HttpError:
            return False
        model = got.get("dashboard") or {}
        if cv.MANAGED_TAG not in (model.get("tags") or []):
            return False
        same = cv.grafana_json(normalise_dashboard(model)) == artifact.body and \
            cv.digest_tag_value(model.get("tags")) == artifact.digest[:cv.DIGEST_TAG_HEX]
        folder = str((got.get("meta") or {}).get("folderUid") or "")
        if same and folder == _folder_of(artifact):
            with self._lock:
                self._seen[uid] = _Seen(int((got.get("meta") or {}).get("version") or 0), folder, False)
            return True
        return False

    def _resolve_seen(self, uid: str) -> None:
        """Read a dashboard a fast listing vouched for but did not read (its version, its drift) before writing."""
        with self._lock:
            seen = self._seen.get(uid)
            folders = set(self._folders_ok)
        if seen is None or seen.version is not None:
            return
        got = self._read(lambda: self._observe_dashboard(uid))
        with self._lock:
            if got is None:
                self._seen.pop(uid, None)
                return
            fresh = got[1]
            fresh.drifted = fresh.drifted or fresh.folder_uid not in folders
            self._seen[uid] = fresh

    def _put_dashboard(self, artifact: Artifact) -> None:
        uid = artifact.key
        self._resolve_seen(uid)
        if not self._drift_gate(uid, "overwriting"):
            return
        folder = _folder_of(artifact)
        model = json.loads(artifact.body)
        digest = self._digest_of(artifact)  # remembered: the next fast listing compares hits with it
        model["tags"] = [*(model.get("tags") or []), cv.digest_tag(digest)]
        with self._lock:
            seen = self._seen.get(uid)
        if seen is not None:
            model["version"] = seen.version  # optimistic: a concurrent edit answers 412 instead of being lost
        payload = {"dashboard": model, "folderUid": folder, "overwrite": False,
                   "message": cv.dashboard_message(digest)}
        self._ensure_folder(folder)
        for attempt in (1, 2):
            try:
                answer = self._http("POST", "/dashboards/db", json_body=payload)
                with self._lock:
                    self._seen[uid] = _Seen(int(answer.get("version") or 0), folder, False)
                    self._drifted_uids.discard(uid)
                return
            except _HttpError as exc:
                if exc.status == 400 and "folder not found" in exc.message.lower() and attempt == 1:
                    with self._lock:
                        self._folders_ok.discard(folder)
                    self._ensure_folder(folder)
                    continue
                if exc.status in (409, 412) and self._matches_desired(uid, artifact):
                    return  # an earlier attempt landed and only its answer was lost
                if exc.status == 412:
                    raise PermanentError(
                        f"grafana: dashboard {uid}: {exc.message} (412: the uid is held by a dashboard obsctl did "
                        "not write, or it changed since obsctl read it; left untouched, the next run re-reads it)"
                    ) from None
                if exc.status == 409:
                    raise PermanentError(f"grafana: dashboard {uid}: uid taken ({exc.message}); left untouched") \
                        from None
                raise PermanentError(f"grafana: saving dashboard {uid}: {exc}") from None

    def _delete_dashboard(self, uid: str) -> None:
        self._resolve_seen(uid)
        if not self._drift_gate(uid, "deleting"):
            return
        try:
            got = self._http("GET", f"/dashboards/uid/{uid}")
        except _HttpError as exc:
            if exc.status == 404:
                return
            raise PermanentError(f"grafana: reading dashboard {uid}: {exc}") from None
        if cv.MANAGED_TAG not in ((got.get("dashboard") or {}).get("tags") or []):
            raise PermanentError(f"grafana: dashboard {uid} no longer carries the obsctl tag; not deleting it")
        try:
            self._http("DELETE", f"/dashboards/uid/{uid}")
        except _HttpError as exc:
            if exc.status != 404:
                raise PermanentError(f"grafana: deleting dashboard {uid}: {exc}") from None
        with self._lock:
            self._seen.pop(uid, None)

    # ------------------------------------------------------------------ the Sink protocol

    def put(self, artifact: Artifact) -> None:
        """Create or update one folder or dashboard (only when obsctl owns the uid or it is free)."""
        if artifact.kind is Kind.GRAFANA_FOLDER:
            self._put_folder(artifact)
        elif artifact.kind is Kind.GRAFANA_DASHBOARD:
            self._put_dashboard(artifact)
        else:
            raise PermanentError(f"grafana sink cannot store {artifact.kind.value}")

    def delete(self, observed: Observed) -> None:
        """Remove one owned dashboard, or one owned folder once it holds nothing else."""
        kind, _, uid = observed.id.partition("/")
        if kind == Kind.GRAFANA_DASHBOARD.value:
            self._delete_dashboard(uid)
        elif kind == Kind.GRAFANA_FOLDER.value:
            self._delete_folder(uid)
        else:
            raise PermanentError(f"grafana sink cannot delete {observed.id}")

    def finish(self) -> None:
        """Log a summary of the drift handled in this apply."""
        for rec in self.drifted:
            log.info("grafana drift: %s %s", rec.uid, rec.action)


def desired_for(sink: GrafanaSink, desired: Mapping[str, Artifact]) -> dict[str, Artifact]:
    """The subset of a desired state this sink stores (and primes the sink's folder knowledge with it)."""
    mine = {k: a for k, a in desired.items() if a.kind in sink.kinds}
    sink.prepare(mine.values())
    return mine
