"""The folder tree obsctl owns in Grafana: listing it level by level, creating, updating, moving and
deleting folders, and what the sink remembers of them between listings (see the sink's module doc).

A folder is obsctl's when its uid starts with `obsctl-` AND its description carries obsctl's mark.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from obsctl.errors import PermanentError, TemporaryError
from obsctl.model import conventions as cv
from obsctl.model.artifact import Artifact, Kind, Observed
from obsctl.sinks.grafana.client import GrafanaClient, HttpError


def folder_body(uid: str, title: str, description: str, parent_uid: str) -> dict[str, Any]:
    """The normalised form of a folder, as the renderer writes it."""
    body: dict[str, Any] = {"uid": uid, "title": title, "description": description}
    if parent_uid:
        body["parentUid"] = parent_uid
    return body


def folder_id(uid: str) -> str:
    """The artifact id of a folder uid."""
    return f"{Kind.GRAFANA_FOLDER.value}/{uid}"


@dataclass(frozen=True)
class FolderSpec:
    """A folder as the desired state describes it."""

    uid: str
    title: str
    parent_uid: str


class FolderTree:
    """obsctl's folders in one Grafana org, through `client`."""

    def __init__(self, client: GrafanaClient, page_size: int = 1000) -> None:
        self._client = client
        self.page_size = page_size  # folder list pages
        self._lock = threading.Lock()
        self._write_lock = threading.RLock()  # folder writes are few: serialise them, no racing creates
        self._specs: dict[str, FolderSpec] = {
            cv.ROOT_FOLDER_UID: FolderSpec(cv.ROOT_FOLDER_UID, cv.ROOT_FOLDER_TITLE, "")}
        self._cache: dict[str, dict[str, Any]] = {}  # owned folders as last read or written
        self._leaves: set[str] = set()  # owned folders last seen (or created) without obsctl subfolders
        self._ok: set[str] = set()  # folders known to exist and be obsctl's

    def learn(self, spec: FolderSpec) -> None:
        """Remember a desired folder's title and parent (so a dashboard that lands first can create it)."""
        with self._lock:
            self._specs[spec.uid] = spec

    def known(self) -> set[str]:
        """Folders known to exist and be obsctl's."""
        with self._lock:
            return set(self._ok)

    def forget(self, uid: str) -> None:
        """A folder found missing: the next ensure() reads (and creates) it again."""
        with self._lock:
            self._ok.discard(uid)

    def page(self, parent: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            params: dict[str, Any] = {"limit": self.page_size, "page": page}
            if parent:
                params["parentUid"] = parent
            batch = self._client.read(lambda params=params: self._client.http("GET", "/folders", params=params))  # type: ignore[misc]
            out.extend(batch)
            if len(batch) < self.page_size:
                return out
            page += 1

    def get(self, uid: str) -> dict[str, Any] | None:
        try:
            folder: dict[str, Any] = self._client.http("GET", f"/folders/{uid}")
            return folder
        except HttpError as exc:
            if exc.status == 404:
                return None
            raise PermanentError(f"grafana: GET folder {uid}: {exc}") from None

    @staticmethod
    def owns(folder: Mapping[str, Any]) -> bool:
        return str(folder.get("uid", "")).startswith(cv.FOLDER_UID_PREFIX) and \
            cv.FOLDER_OWNER_MARK in str(folder.get("description", ""))

    def _remember(self, uid: str, title: str, description: str, parent_uid: str) -> None:
        with self._lock:
            self._cache[uid] = {"uid": uid, "title": title, "description": description,
                                       "parentUid": parent_uid}

    def _cached(self, listed: Mapping[str, Any], parent: str) -> dict[str, Any] | None:
        """What obsctl last read or wrote of a listed folder, when the listing still agrees (uid, title, parent)."""
        with self._lock:
            cached = self._cache.get(str(listed.get("uid", "")))
        if cached is None or cached["title"] != listed.get("title") or cached["parentUid"] != parent:
            return None
        return cached

    def list_owned(self, deep: bool) -> dict[str, Observed]:
        owned: dict[str, Observed] = {}
        frontier = [""]
        depth = 0
        while frontier and depth < 5:
            pages = self._client.map(self.page, frontier)  # one page walk per parent, in parallel
            with self._lock:
                for parent, page in zip(frontier, pages, strict=True):
                    if any(str(f.get("uid", "")).startswith(cv.FOLDER_UID_PREFIX) for f in page):
                        self._leaves.discard(parent)
                    elif parent:
                        self._leaves.add(parent)
            candidates = [(parent, f) for parent, page in zip(frontier, pages, strict=True) for f in page
                          if str(f.get("uid", "")).startswith(cv.FOLDER_UID_PREFIX)]
            # Fast listings take the description (the ownership mark) from the last read or write when
            # the folder list still shows the same title and parent; deep ones read every candidate.
            known = [None if deep else self._cached(f, parent) for parent, f in candidates]
            read = self._client.map(lambda f: self._client.read(lambda: self.get(str(f["uid"]))),
                             [f for (_, f), k in zip(candidates, known, strict=True) if k is None])
            details = [k for k in known if k is not None] + read
            frontier = []
            for folder in details:
                if folder is None or not self.owns(folder):
                    continue
                uid = str(folder["uid"])
                self._remember(uid, str(folder.get("title", "")), str(folder.get("description", "")),
                                      str(folder.get("parentUid", "")))
                body = cv.grafana_json(folder_body(uid, str(folder.get("title", "")),
                                                   str(folder.get("description", "")),
                                                   str(folder.get("parentUid", ""))))
                owned[folder_id(uid)] = Observed(folder_id(uid), body, hashlib.sha256(body).hexdigest())
                frontier.append(uid)
            if not deep:  # fast: skip folders known to hold no obsctl folder (the deep listing walks everything)
                with self._lock:
                    frontier = [uid for uid in frontier if uid not in self._leaves]
            depth += 1
        with self._lock:
            self._ok.update(oid.split("/", 1)[1] for oid in owned)
        return owned

    def _spec(self, uid: str) -> FolderSpec:
        with self._lock:
            spec = self._specs.get(uid)
        # A folder nobody described (no prepare()): a placeholder under the root; its own artifact fixes the title.
        return spec or FolderSpec(uid, uid, cv.ROOT_FOLDER_UID)

    def ensure(self, uid: str, depth: int = 0) -> None:
        """Make sure an obsctl folder exists (its parents first); never touches a folder obsctl does not own."""
        if not uid:
            return
        with self._lock:
            if uid in self._ok:
                return
        with self._write_lock:
            self._ensure_locked(uid, depth)

    def _ensure_locked(self, uid: str, depth: int) -> None:
        with self._lock:
            if uid in self._ok:
                return
        spec = self._spec(uid)
        existing = self.get(uid)
        if existing is None:
            self._create(spec, depth)
        elif not self.owns(existing):
            raise PermanentError(f"grafana: folder uid {uid} is taken by a folder obsctl did not create")
        with self._lock:
            self._ok.add(uid)

    def _create(self, spec: FolderSpec, depth: int = 0) -> dict[str, Any]:
        payload: dict[str, Any] = {"uid": spec.uid, "title": spec.title,
                                   "description": cv.folder_description(spec.title)}
        if spec.parent_uid:
            payload["parentUid"] = spec.parent_uid
        try:
            created: dict[str, Any] = self._client.http("POST", "/folders", json_body=payload)
            self._remember(spec.uid, spec.title, payload["description"], spec.parent_uid)
            with self._lock:
                self._leaves.add(spec.uid)
                self._leaves.discard(spec.parent_uid)
            return created
        except HttpError as exc:
            if exc.status == 404 and spec.parent_uid and depth < 4:  # the parent is missing: make it, once
                with self._lock:
                    self._ok.discard(spec.parent_uid)
                self.ensure(spec.parent_uid, depth + 1)
                return self._create(spec, depth + 1)
            if exc.status == 409:
                existing = self.get(spec.uid)
                if existing is not None and self.owns(existing):
                    return existing  # a concurrent ensure (or an earlier lost answer) made it
                raise PermanentError(f"grafana: folder uid {spec.uid} is taken by something obsctl did not create "
                                     f"({exc.message})") from None
            raise PermanentError(f"grafana: creating folder {spec.uid}: {exc}") from None

    def put(self, artifact: Artifact) -> None:
        with self._write_lock:
            self._put_locked(artifact)

    def _put_locked(self, artifact: Artifact) -> None:
        body = json.loads(artifact.body)
        spec = FolderSpec(artifact.key, str(body["title"]), str(body.get("parentUid", "")))
        with self._lock:
            self._specs[spec.uid] = spec
            self._cache.pop(spec.uid, None)  # until this put is through
        if spec.parent_uid:
            self.ensure(spec.parent_uid)
        existing = self.get(spec.uid)
        if existing is None:
            existing = self._create(spec)
        elif not self.owns(existing):
            raise PermanentError(f"grafana: folder uid {spec.uid} is taken by a folder obsctl did not create")
        with self._lock:
            self._ok.add(spec.uid)
        want_desc = str(body.get("description", cv.folder_description(spec.title)))
        if existing.get("title") != spec.title or existing.get("description") != want_desc:
            try:
                self._client.http("PUT", f"/folders/{spec.uid}", json_body={
                    "title": spec.title, "description": want_desc, "version": existing.get("version"),
                    "overwrite": False})
            except HttpError as exc:
                raise PermanentError(f"grafana: updating folder {spec.uid}: {exc}") from None
        if str(existing.get("parentUid", "")) != spec.parent_uid:
            try:
                with self._lock:
                    self._leaves.discard(spec.parent_uid)
                self._client.http("POST", f"/folders/{spec.uid}/move", json_body={"parentUid": spec.parent_uid})
            except HttpError as exc:
                raise PermanentError(f"grafana: moving folder {spec.uid}: {exc}") from None
        self._remember(spec.uid, spec.title, want_desc, spec.parent_uid)

    def delete(self, uid: str) -> None:
        with self._lock:
            self._cache.pop(uid, None)
        existing = self.get(uid)
        if existing is None:
            return
        if not self.owns(existing):
            raise PermanentError(f"grafana: folder {uid} is not obsctl's any more; left in place")
        children = self.page(uid)
        inside = self._client.http("GET", "/search", params={"folderUIDs": uid, "type": "dash-db", "limit": 5000})
        foreign = [h["uid"] for h in inside if cv.MANAGED_TAG not in (h.get("tags") or [])]
        foreign += [f["uid"] for f in children if not str(f.get("uid", "")).startswith(cv.FOLDER_UID_PREFIX)]
        if foreign:
            raise PermanentError(f"grafana: folder {uid} holds things obsctl did not create "
                                 f"({', '.join(map(str, sorted(foreign)[:5]))}); not deleting it")
        if inside or children:
            # obsctl's own dashboards or subfolders are still being removed by this apply: try again shortly.
            raise TemporaryError(f"grafana: folder {uid} is not empty yet", retry_after=0.2)
        try:
            self._client.http("DELETE", f"/folders/{uid}")
        except HttpError as exc:
            if exc.status != 404:
                raise PermanentError(f"grafana: deleting folder {uid}: {exc}") from None
        with self._lock:
            self._ok.discard(uid)
