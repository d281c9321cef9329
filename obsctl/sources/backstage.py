"""Backstage catalog API as a source.

Backstage 4.x has no event stream for external clients, so obsctl polls:

1. list every entity of the kinds obsctl reads with `GET /entities/by-query`, asking only for
   identity fields (kind, namespace, name, uid, etag, annotations). Cursor pages carry the filter
   but not `fields` or `limit`, so both are sent again with every page;
2. fetch full bodies only for entities whose (uid, etag) changed, in batches through
   `POST /entities/by-refs` (the etag is a hash of the stitched entity: unchanged etag, unchanged
   entity);
3. an entity that vanished, or carries `backstage.io/orphan: "true"`, is deregistered.

Entities become YAML documents with the origin `backstage:<entityRef>`. The bearer token is sent
in a header and never appears in messages or logs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import yaml

from obsctl.errors import PermanentError, TemporaryError, is_temporary_status, parse_retry_after
from obsctl.model.source import SourceFile
from obsctl.sources.base import FetchResult, Wake

log = logging.getLogger("obsctl.sources.backstage")

KINDS = ("Component", "Group", "System", "API")
LIST_FIELDS = "kind,metadata.namespace,metadata.name,metadata.uid,metadata.etag,metadata.annotations"
ORPHAN = "backstage.io/orphan"
ORIGIN_PREFIX = "backstage:"
# output-only or catalog-computed parts that are not the entity's declared content
_DROP_TOP = ("relations", "status")
_DROP_META = ("uid", "etag", "generation")


def entity_ref(entity: dict[str, Any]) -> str:
    """`kind:namespace/name`, lower-cased: the catalog's canonical ref."""
    meta = entity.get("metadata") or {}
    return f"{entity.get('kind', '')}:{meta.get('namespace') or 'default'}/{meta.get('name', '')}".lower()


def entity_document(entity: dict[str, Any]) -> bytes:
    """An entity as deterministic YAML without the catalog's output-only fields."""
    body = {k: v for k, v in entity.items() if k not in _DROP_TOP}
    meta = {k: v for k, v in (body.get("metadata") or {}).items() if k not in _DROP_META}
    body["metadata"] = meta
    return yaml.safe_dump(body, sort_keys=True, default_flow_style=False, allow_unicode=True).encode()


@dataclass(frozen=True)
class _Seen:
    uid: str
    etag: str
    document: bytes


class BackstageSource:
    """Poll a Backstage catalog; `fetch` reads everything, re-fetching only changed bodies."""

    name = "backstage"

    def __init__(self, url: str, token: str = "", *, kinds: Iterable[str] = KINDS, page_size: int = 200,
                 poll_seconds: float = 10.0, timeout: float = 10.0, batch_size: int = 100,
                 transport: httpx.BaseTransport | None = None) -> None:
        base = url.rstrip("/")
        self.api_url = base if base.endswith("/api/catalog") else f"{base}/api/catalog"
        self.kinds = tuple(kinds)
        self.page_size = page_size
        self.poll_seconds = poll_seconds
        self.batch_size = batch_size
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(base_url=self.api_url, headers=headers, timeout=timeout, transport=transport)
        self._cache: dict[str, _Seen] = {}
        self._lock = threading.Lock()
        self.bodies_fetched = 0  # how many full entity bodies were downloaded (for tests and metrics)
        self.last_fingerprint: tuple[tuple[str, str, str], ...] = ()

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def _request(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = self._client.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise TemporaryError(f"backstage {path}: {type(exc).__name__}: {exc}") from exc
        if is_temporary_status(resp.status_code):
            raise TemporaryError(f"backstage {path}: HTTP {resp.status_code}",
                                 parse_retry_after(resp.headers.get("retry-after")))
        if resp.status_code in (401, 403):
            raise PermanentError(f"backstage {path}: HTTP {resp.status_code} (check backstage.token)")
        if resp.status_code >= 400:
            raise PermanentError(f"backstage {path}: HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            return resp.json()
        except ValueError as exc:
            raise TemporaryError(f"backstage {path}: the answer is not JSON") from exc

    def list_entities(self) -> list[dict[str, Any]]:
        """Identity fields of every entity of our kinds, following cursors to the end."""
        base: dict[str, Any] = {"fields": LIST_FIELDS, "limit": self.page_size}
        params: dict[str, Any] = {**base, "filter": [f"kind={k.lower()}" for k in self.kinds]}
        items: list[dict[str, Any]] = []
        seen_cursors: set[str] = set()
        while True:
            page = self._request("GET", "/entities/by-query", params=params)
            if not isinstance(page, dict) or not isinstance(page.get("items"), list):
                raise TemporaryError("backstage by-query: unexpected answer shape")
            items.extend(e for e in page["items"] if isinstance(e, dict))
            cursor = (page.get("pageInfo") or {}).get("nextCursor")
            if not cursor:
                return items
            if cursor in seen_cursors:
                raise TemporaryError("backstage by-query: the cursor repeats; refusing a partial read")
            seen_cursors.add(cursor)
            params = {**base, "cursor": cursor}  # filter rides in the cursor; fields and limit do not

    def _fetch_bodies(self, refs: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(refs), self.batch_size):
            batch = refs[i:i + self.batch_size]
            got = self._request("POST", "/entities/by-refs", json={"entityRefs": batch})
            items = got.get("items") if isinstance(got, dict) else None
            if not isinstance(items, list) or len(items) != len(batch):
                raise TemporaryError("backstage by-refs: unexpected answer shape")
            for ref, entity in zip(batch, items, strict=True):
                if isinstance(entity, dict):  # None: deleted between the listing and now
                    out[ref] = entity
        self.bodies_fetched += len(out)
        return out

    @staticmethod
    def _identity(items: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
        current: dict[str, tuple[str, str]] = {}
        for e in items:
            meta = e.get("metadata") or {}
            if (meta.get("annotations") or {}).get(ORPHAN) == "true":
                continue  # no location produces it any more: deregistered
            current[entity_ref(e)] = (str(meta.get("uid", "")), str(meta.get("etag", "")))
        return current

    def fetch(self) -> FetchResult:
        """Every live entity as a document; unchanged entities come from the cache."""
        with self._lock:
            current = self._identity(self.list_entities())
            changed = sorted(ref for ref, (uid, etag) in current.items()
                             if ref not in self._cache or (self._cache[ref].uid, self._cache[ref].etag) != (uid, etag))
            bodies = self._fetch_bodies(changed) if changed else {}
            cache: dict[str, _Seen] = {}
            for ref, (uid, etag) in current.items():
                if ref in bodies:
                    meta = bodies[ref].get("metadata") or {}
                    if (meta.get("annotations") or {}).get(ORPHAN) == "true":
                        continue
                    cache[ref] = _Seen(str(meta.get("uid", uid)), str(meta.get("etag", etag)),
                                       entity_document(bodies[ref]))
                elif ref in self._cache and ref not in changed:
                    cache[ref] = self._cache[ref]
            self._cache = cache
            self.last_fingerprint = tuple(sorted((r, s.uid, s.etag) for r, s in cache.items()))
            return FetchResult([SourceFile(ORIGIN_PREFIX + ref, s.document) for ref, s in sorted(cache.items())],
                               True)

    def watch(self, wake: Wake, stop: threading.Event) -> None:
        """Poll the identity listing every poll_seconds; wake when it differs from the last fetch."""
        while not stop.wait(self.poll_seconds):
            try:
                current = self._identity(self.list_entities())
            except (TemporaryError, PermanentError) as exc:
                log.warning("backstage poll failed: %s", exc)  # the loop's own fetch reports the outage
                continue
            fingerprint = tuple(sorted((r, u, e) for r, (u, e) in current.items()))
            if fingerprint != self.last_fingerprint:
                wake("backstage catalog changed")
