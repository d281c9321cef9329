"""Grafana sink: folders and dashboards through Grafana's HTTP API (grafana-client).

Three objects own its state: `client.GrafanaClient` (pooled sessions, answers mapped to errors),
`folders.FolderTree` (the folder tree obsctl owns) and `index.DashboardIndex` (desired dashboards,
what listings saw, trusted digests); this module lists and writes dashboards and applies drift policy.

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
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from obsctl.errors import PermanentError
from obsctl.model import conventions as cv
from obsctl.model.artifact import Artifact, Kind, Observed
from obsctl.sinks.base import SinkContract, url_location
from obsctl.sinks.grafana.client import GrafanaClient, HttpError
from obsctl.sinks.grafana.folders import FolderSpec, FolderTree, folder_body
from obsctl.sinks.grafana.index import DashboardIndex, Seen, dashboard_id, folder_of

__all__ = ["DRIFT_POLICIES", "DriftRecord", "GrafanaSink", "desired_for", "folder_body", "normalise_dashboard",
           "save_request"]

log = logging.getLogger(__name__)
DRIFT_POLICIES = ("overwrite", "keep", "report")
_SERVER_FIELDS = ("id", "version")


_TAGS = b'\n  "tags": ['  # a top-level key of the canonical body: the only lines indented by exactly two
_TAGS_END = b"\n  ]"  # tags hold strings only, so the first line closing at that indent closes them
_VERSION = b'\n  "version": '


def save_request(body: bytes, *, digest_tag: str, folder: str, message: str, with_version: bool = False,
                 version: int | None = None) -> bytes:
    """The POST /api/dashboards/db body for a rendered dashboard: its digest tag added, its version set.

    Spliced into the canonical body (conventions.grafana_json: sorted keys, two-space indent), which
    needs no parse and builds no objects (a 35 kB dashboard is ~1,650 of them, and their churn makes
    the garbage collector walk a large serve process over and over). A body not in that form is
    parsed and serialised instead; both give the same JSON.
    """
    tag = orjson.dumps(digest_tag)
    start = body.find(_TAGS)
    end = body.rstrip().rfind(b"}")
    model: bytes | None = None
    if start >= 0 and end > start and (not with_version or body.find(_VERSION) < 0):
        open_at = start + len(_TAGS)
        if body.startswith(b"]", open_at):
            model = body[:open_at] + b"\n    " + tag + b"\n  " + body[open_at:end]
        else:
            close = body.find(_TAGS_END, open_at)
            if close > 0:
                model = body[:close] + b",\n    " + tag + body[close:end]
        if model is not None:
            model += (b",\n  \"version\": " + orjson.dumps(version) + b"\n}") if with_version else b"}"
    if model is None:
        parsed = orjson.loads(body)
        parsed["tags"] = [*(parsed.get("tags") or []), digest_tag]
        if with_version:
            parsed["version"] = version
        model = orjson.dumps(parsed)
    return (b'{"dashboard":' + model + b',"folderUid":' + orjson.dumps(folder) + b',"overwrite":false,"message":'
            + orjson.dumps(message) + b"}")


def normalise_dashboard(model: Mapping[str, Any]) -> dict[str, Any]:
    """A stored dashboard as rendered: without the fields Grafana assigns (id, version) and the digest tag."""
    out = {k: v for k, v in model.items() if k not in _SERVER_FIELDS}
    if isinstance(out.get("tags"), list):
        out["tags"] = [t for t in out["tags"] if not cv.is_digest_tag(t)]
    return out


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
        self._client = GrafanaClient(url, token, org_id=org_id, timeout=timeout, verify=verify,
                                     parallelism=parallelism)
        self._folders = FolderTree(self._client, page_size)
        self.location = url_location(url.rstrip("/"))
        self._index = DashboardIndex()
        self.drift_policy = drift_policy
        self.parallelism = max(1, parallelism)
        self.search_page_size = min(5000, search_page_size)  # Grafana answers 422 above 5000
        self.deep_check_seconds = deep_check_seconds  # declared in the contract: how often full rounds go deep
        self._lock = threading.Lock()
        self._stats = _Stats()

    def close(self) -> None:
        """Close every HTTP session this sink opened."""
        self._client.close()

    @property
    def drifted(self) -> list[DriftRecord]:
        """Dashboards found edited outside obsctl during the last apply, with what the policy did."""
        with self._lock:
            return list(self._stats.drift)

    def prepare(self, desired: Iterable[Artifact]) -> None:
        """Learn the desired state: folders' titles and parents (so a dashboard that lands first can create
        them) and the dashboards a fast listing compares search hits with. Each call replaces the last."""
        dashboards: list[Artifact] = []
        for art in desired:
            if art.kind is Kind.GRAFANA_DASHBOARD:
                dashboards.append(art)
            elif art.kind is Kind.GRAFANA_FOLDER:
                body = json.loads(art.body)
                self._folders.learn(FolderSpec(art.key, str(body["title"]), str(body.get("parentUid", ""))))
        self._index.expect(dashboards)

    @property
    def contract(self) -> SinkContract:
        """Parallel writes; fast listings from search hits, deep ones every `deep_check_seconds`."""
        return SinkContract(parallelism=self.parallelism, deep_every_seconds=self.deep_check_seconds)

    # ------------------------------------------------------------------ reading

    def _search_owned(self) -> list[dict[str, Any]]:
        hits: list[dict[str, Any]] = []
        page = 1
        while True:
            params = {"tag": cv.MANAGED_TAG, "type": "dash-db", "limit": self.search_page_size, "page": page}
            batch = self._client.read(lambda params=params: self._client.http("GET", "/search", params=params))  # type: ignore[misc]
            hits.extend(h for h in batch if cv.MANAGED_TAG in (h.get("tags") or []))
            if len(batch) < self.search_page_size:
                break
            page += 1
        unique = {str(h["uid"]): h for h in hits}  # a page boundary shifting under a concurrent write repeats hits
        return [unique[k] for k in sorted(unique)]

    def _last_message(self, uid: str) -> str:
        versions = self._client.http("GET", f"/dashboards/uid/{uid}/versions", params={"limit": 1})
        if isinstance(versions, dict):  # Grafana < 11 wrapped the list
            versions = versions.get("versions", [])
        return str(versions[0].get("message", "")) if versions else ""

    def _observe_dashboard(self, uid: str) -> tuple[Observed, Seen] | None:
        try:
            got = self._client.http("GET", f"/dashboards/uid/{uid}")
            model, meta = got.get("dashboard") or {}, got.get("meta") or {}
            version = int(meta.get("version") or model.get("version") or 0)
            # Version 1 is the creating save: nobody edited it since. Only later versions need their message.
            message = self._last_message(uid) if version > 1 else ""
        except HttpError as exc:
            if exc.status == 404:  # deleted between search and read: not there, not ours to plan
                return None
            raise PermanentError(f"grafana: reading dashboard {uid}: {exc}") from None
        if cv.MANAGED_TAG not in (model.get("tags") or []):
            return None
        body = cv.grafana_json(normalise_dashboard(model))
        digest = hashlib.sha256(body).hexdigest()
        drifted = version > 1 and message != cv.dashboard_message(digest)
        seen = Seen(version, str(meta.get("folderUid") or ""), drifted)
        if cv.digest_tag_value(model.get("tags")) != digest[:cv.DIGEST_TAG_HEX]:
            # The digest tag does not vouch for this content: a digest no rendering has makes the plan
            # rewrite it once with the right tag, or every fast listing would have to read it again.
            digest = f"untagged:{digest}"
        return Observed(dashboard_id(uid), body, digest, drifted), seen

    def list_owned(self, deep: bool = True) -> dict[str, Observed]:
        """Every owned folder and dashboard, normalised. Raises TemporaryError when the read is incomplete.

        Deep, or fast when `deep` is False and prepare() told the sink the desired state; see the module doc.
        """
        with self._lock:
            self._stats = _Stats()
        expected, known_drift = self._index.for_listing()
        deep = deep or expected is None
        owned = self._folders.list_owned(deep)
        owned_folders = {oid.split("/", 1)[1] for oid in owned}
        hits = self._search_owned()
        seen: dict[str, Seen] = {}
        to_read: list[str] = []
        for hit in hits:
            uid = str(hit["uid"])
            trusted = None if deep or expected is None or uid in known_drift else \
                self._index.trusted_hit(hit, expected, owned_folders)
            if trusted is None:
                to_read.append(uid)
                continue
            want, digest = trusted
            owned[want.id] = Observed(want.id, want.body, digest)
            seen[uid] = Seen(None, folder_of(want), False)
        found = self._client.map(lambda uid: self._client.read(lambda: self._observe_dashboard(uid)), to_read)
        for item in found:
            if item is None:
                continue
            observed, s = item
            if s.folder_uid not in owned_folders:  # moved out of obsctl's folders by hand: drift too
                s.drifted = True
                observed = dataclasses.replace(observed, drifted=True)
            owned[observed.id] = observed
            seen[observed.id.split("/", 1)[1]] = s
        # Drift stays visible between deep listings (keep/report leave it in place): re-read those each time.
        self._index.listed(seen)
        return dict(sorted(owned.items()))

    # ------------------------------------------------------------------ dashboards

    def _record_drift(self, uid: str, action: str, detail: str = "") -> None:
        log.warning("grafana dashboard %s was edited outside obsctl: %s (drift_policy=%s)", uid, action,
                    self.drift_policy)
        with self._lock:
            self._stats.drift.append(DriftRecord(uid, action, detail))

    def _drift_gate(self, uid: str, doing: str) -> bool:
        """Apply the drift policy; False means leave the dashboard alone."""
        seen = self._index.seen(uid)
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
            got = self._client.http("GET", f"/dashboards/uid/{uid}")
        except HttpError:
            return False
        model = got.get("dashboard") or {}
        if cv.MANAGED_TAG not in (model.get("tags") or []):
            return False
        same = cv.grafana_json(normalise_dashboard(model)) == artifact.body and \
            cv.digest_tag_value(model.get("tags")) == artifact.digest[:cv.DIGEST_TAG_HEX]
        folder = str((got.get("meta") or {}).get("folderUid") or "")
        if same and folder == folder_of(artifact):
            self._index.saw(uid, Seen(int((got.get("meta") or {}).get("version") or 0), folder, False))
            return True
        return False

    def _resolve_seen(self, uid: str) -> None:
        """Read a dashboard a fast listing vouched for but did not read (its version, its drift) before writing."""
        seen = self._index.seen(uid)
        folders = self._folders.known()
        if seen is None or seen.version is not None:
            return
        got = self._client.read(lambda: self._observe_dashboard(uid))
        if got is None:
            self._index.saw(uid, None)
            return
        fresh = got[1]
        fresh.drifted = fresh.drifted or fresh.folder_uid not in folders
        self._index.saw(uid, fresh)

    def _put_dashboard(self, artifact: Artifact) -> None:
        uid = artifact.key
        self._resolve_seen(uid)
        if not self._drift_gate(uid, "overwriting"):
            return
        folder = folder_of(artifact)
        digest = self._index.digest_of(artifact)  # remembered: the next fast listing compares hits with it
        seen = self._index.seen(uid)
        # optimistic: with the version read, a concurrent edit answers 412 instead of being lost
        payload = save_request(artifact.body, digest_tag=cv.digest_tag(digest), folder=folder,
                               message=cv.dashboard_message(digest), with_version=seen is not None,
                               version=seen.version if seen is not None else None)
        self._folders.ensure(folder)
        for attempt in (1, 2):
            try:
                answer = self._client.http("POST", "/dashboards/db", body=payload)
                self._index.saw(uid, Seen(int(answer.get("version") or 0), folder, False), written=True)
                return
            except HttpError as exc:
                if exc.status == 400 and "folder not found" in exc.message.lower() and attempt == 1:
                    self._folders.forget(folder)
                    self._folders.ensure(folder)
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
            got = self._client.http("GET", f"/dashboards/uid/{uid}")
        except HttpError as exc:
            if exc.status == 404:
                return
            raise PermanentError(f"grafana: reading dashboard {uid}: {exc}") from None
        if cv.MANAGED_TAG not in ((got.get("dashboard") or {}).get("tags") or []):
            raise PermanentError(f"grafana: dashboard {uid} no longer carries the obsctl tag; not deleting it")
        try:
            self._client.http("DELETE", f"/dashboards/uid/{uid}")
        except HttpError as exc:
            if exc.status != 404:
                raise PermanentError(f"grafana: deleting dashboard {uid}: {exc}") from None
        self._index.saw(uid, None)

    # ------------------------------------------------------------------ the Sink protocol

    def put(self, artifact: Artifact) -> None:
        """Create or update one folder or dashboard (only when obsctl owns the uid or it is free)."""
        if artifact.kind is Kind.GRAFANA_FOLDER:
            self._folders.put(artifact)
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
            self._folders.delete(uid)
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
