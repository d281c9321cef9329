"""The dashboard index of the Grafana sink: what it expects (the desired dashboards), what it last saw
of each owned dashboard (version, folder, drift), and the digests a fast listing trusts search hits by."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from obsctl.model import conventions as cv
from obsctl.model.artifact import Artifact, Kind


def dashboard_id(uid: str) -> str:
    """The artifact id of a dashboard uid."""
    return f"{Kind.GRAFANA_DASHBOARD.value}/{uid}"


def folder_of(artifact: Artifact) -> str:
    """The folder uid of a dashboard artifact: the directory of its path (conventions.dashboard_path)."""
    parts = artifact.path.split("/")
    return parts[-2] if len(parts) >= 2 else ""


@dataclass
class Seen:
    """What a listing found about one dashboard, for the writes that follow."""

    version: int | None  # None: listed from a search hit alone (fast), not read yet
    folder_uid: str
    drifted: bool


class DashboardIndex:
    """Thread-safe: listings replace it, writes update one entry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expected: dict[str, Artifact] | None = None  # desired dashboards by uid, from the sink's prepare()
        self._digests: dict[str, tuple[Artifact, str]] = {}  # artifact id -> (artifact, digest): hash each body once
        self._seen: dict[str, Seen] = {}
        self._drifted: set[str] = set()  # found drifted by a read and not rewritten since: fast listings read them

    def expect(self, dashboards: Iterable[Artifact]) -> None:
        """The desired dashboards (each call replaces the last)."""
        expected = {a.key: a for a in dashboards}
        with self._lock:
            self._expected = expected
            ids = {a.id for a in expected.values()}
            self._digests = {aid: d for aid, d in self._digests.items() if aid in ids}

    def for_listing(self) -> tuple[dict[str, Artifact] | None, set[str]]:
        """(the desired dashboards or None before the first expect(), the uids known to be drifted)."""
        with self._lock:
            return self._expected, set(self._drifted)

    def listed(self, seen: Mapping[str, Seen]) -> None:
        """A listing's findings replace the last; drift stays visible between deep listings."""
        with self._lock:
            self._seen = dict(seen)
            self._drifted = {uid for uid, s in seen.items() if s.drifted}

    def seen(self, uid: str) -> Seen | None:
        """What the last listing or write found of a dashboard."""
        with self._lock:
            return self._seen.get(uid)

    def saw(self, uid: str, seen: Seen | None, *, written: bool = False) -> None:
        """Record (or with None forget) what a read or write found; obsctl's own write clears drift."""
        with self._lock:
            if seen is None:
                self._seen.pop(uid, None)
                return
            self._seen[uid] = seen
            if written:
                self._drifted.discard(uid)

    def digest_of(self, art: Artifact) -> str:
        """art.digest, remembered while the artifact is the same object (the loop reuses unchanged renderings;
        a packed artifact inflates its body on each read)."""
        with self._lock:
            known = self._digests.get(art.id)
        if known is not None and known[0] is art:
            return known[1]
        digest = art.digest
        with self._lock:
            self._digests[art.id] = (art, digest)
        return digest

    def trusted_hit(self, hit: Mapping[str, Any], expected: Mapping[str, Artifact],
                     owned_folders: set[str]) -> tuple[Artifact, str] | None:
        """The desired artifact (and its digest) a search hit vouches for holding: right digest tag, right folder."""
        want = expected.get(str(hit.get("uid", "")))
        if want is None:
            return None
        folder = str(hit.get("folderUid") or "")
        tag = cv.digest_tag_value(hit.get("tags"))
        if tag is None or folder != folder_of(want) or folder not in owned_folders:
            return None
        digest = self.digest_of(want)
        return (want, digest) if tag == digest[:cv.DIGEST_TAG_HEX] else None
