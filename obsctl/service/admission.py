"""Admission of a registration: everything checked before the API answers 201.

A registration is accepted only when
- its namespace and name are valid catalog names (no `/`, no empty namespace);
- it loads (every problem located: file, entity, field);
- the caller may write its team (and the team of the registration it replaces);
- it does not replace a catalog-owned service, unless the operator allows that;
- it renders, alone, without error (the renderers' own checks: label names, wrapped queries,
  numbers), and none of its artifacts lands where another owner's artifact is (two names that
  normalise into one Grafana uid or one team folder, one file path).
"""

from __future__ import annotations

import itertools
import logging
import operator
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from fastapi import HTTPException, status

from obsctl.errors import SpecError
from obsctl.model.artifact import Artifact, DesiredState
from obsctl.model.entities import Catalog, Service
from obsctl.model.source import SourceFile
from obsctl.model.status import owner_key
from obsctl.service.auth import Principal
from obsctl.sources.registrations import ORIGIN_PREFIX, origin
from obsctl.spec import native
from obsctl.spec.load import LoadResult

log = logging.getLogger("obsctl.service.admission")

NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def problem(field: str, message: str, entity: str = "") -> dict[str, Any]:
    """One located problem of a 422 answer."""
    return {"file": "", "line": 0, "entity": entity, "field": field, "severity": "error", "message": message}


def unprocessable(problems: list[dict[str, Any]]) -> HTTPException:
    """422 with every problem."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, {"problems": problems})


def check_names(namespace: str, name: str, where: str) -> list[dict[str, Any]]:
    """Namespace and name must be catalog names (1-63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends)."""
    out = []
    for what, value in (("namespace", namespace), ("name", name)):
        if not NAME_RE.match(value):
            out.append(problem(f"{where}.{what}", f"{what} {value!r} must be 1-63 letters, digits, '-', '_' or "
                                                  "'.', starting and ending with a letter or digit"))
    return out


@dataclass(frozen=True)
class Admitted:
    """A registration ready to store."""

    namespace: str
    name: str
    body: bytes
    service: Service
    overrides: str  # what catalog service it replaces ("" when none)


class PathIndex:
    """Who holds each artifact path of a desired state, kept up to date from what changed.

    Built once over every artifact; when the loop's desired state moves on (after every round), only
    the ids added, removed or given another artifact object are looked at: a registration after a
    round costs what the round changed, not the ~3 artifacts per held service. Where several
    artifacts share a path (a failed owner's carried artifacts), the one with the greatest id holds
    it, as a walk of the desired state in id order would leave it.
    """

    def __init__(self, desired: DesiredState) -> None:
        self.desired: dict[str, Artifact] = dict(desired)  # a copy: the diff must not see later edits
        self.source: DesiredState = desired
        self.paths: dict[str, tuple[str, str]] = {}  # artifact path -> (artifact id, owner key)
        self._count: dict[str, int] = {}  # artifacts per path
        for aid, art in self.desired.items():
            self._add(aid, art)

    def _add(self, aid: str, art: Artifact) -> None:
        self._count[art.path] = self._count.get(art.path, 0) + 1
        self._claim(aid, art)

    def _claim(self, aid: str, art: Artifact) -> None:
        """The artifact holds its path unless one with a greater id does."""
        held = self.paths.get(art.path)
        if held is None or aid >= held[0]:
            self.paths[art.path] = (aid, owner_key(art.owner))

    def _remove(self, aid: str, art: Artifact, rescan: set[str]) -> None:
        path = art.path
        left = self._count[path] - 1
        if left:
            self._count[path] = left
            if self.paths[path][0] == aid:
                rescan.add(path)
        else:
            del self._count[path]
            del self.paths[path]

    def moved_to(self, desired: DesiredState) -> None:
        """Follow the desired state to `desired`."""
        old = self.desired
        gone = [aid for aid in old.keys() - desired.keys()]
        changed = list(itertools.compress(desired, map(operator.is_not, desired.values(), map(old.get, desired))))
        rescan: set[str] = set()
        for aid in gone:
            self._remove(aid, old[aid], rescan)
        for aid in changed:
            if aid in old:
                self._remove(aid, old[aid], rescan)
        for aid in changed:
            self._add(aid, desired[aid])
        if rescan:  # a path another artifact still shares lost its holder: the greatest id left holds it
            for path in rescan:
                self.paths.pop(path, None)
            for aid, art in desired.items():
                if art.path in rescan:
                    self._claim(aid, art)
        self.desired = dict(desired)
        self.source = desired

    def holder(self, aid: str, path: str) -> tuple[str, str] | None:
        """(artifact id, owner key) of the artifact with that id, else of the one at that path."""
        art = self.desired.get(aid)
        if art is not None:
            return aid, owner_key(art.owner)
        return self.paths.get(path)


class Admission:
    """Checks registrations against the current catalog and its rendered artifacts."""

    def __init__(self, load: Callable[[list[SourceFile]], LoadResult], render: Callable[[Catalog], DesiredState],
                 current_catalog: Callable[[], Catalog], current_desired: Callable[[], DesiredState | None],
                 *, render_catalog: Callable[[Catalog], DesiredState] | None = None,
                 allow_catalog_override: bool = False) -> None:
        self._load = load
        self._render = render
        # the desired state of a whole catalog when the loop has none yet (a follower): never raises
        self._render_catalog = render_catalog or render
        self._catalog = current_catalog
        self._desired = current_desired
        self.allow_catalog_override = allow_catalog_override
        self._lock = threading.Lock()
        self._index: PathIndex | None = None

    # -- the checks ----------------------------------------------------------------------------

    def admit(self, data: Mapping[str, Any], principal: Principal, url: tuple[str, str] | None,
              stored: Callable[[str, str], bytes | None]) -> Admitted:
        """Every check, in order; raises HTTPException (422, 403, 409) naming the field."""
        meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        raw_name, raw_ns = (meta or {}).get("name", ""), (meta or {}).get("namespace", "default")
        doc_name = raw_name if isinstance(raw_name, str) else str(raw_name)
        doc_ns = raw_ns if isinstance(raw_ns, str) else str(raw_ns)
        problems: list[dict[str, Any]] = []
        if data.get("apiVersion") != native.API_VERSION or data.get("kind") != "Service":
            problems.append(problem("apiVersion", f"expected apiVersion {native.API_VERSION} and kind Service"))
        if url is not None:
            problems += check_names(url[0], url[1], "url")
            if (doc_ns, doc_name) != url:
                problems.append(problem("metadata", f"metadata names {doc_ns}/{doc_name}, the URL {url[0]}/{url[1]}"))
        problems += check_names(doc_ns, doc_name, "metadata")
        if problems:
            raise unprocessable(problems)
        try:
            body = yaml.safe_dump(dict(data), sort_keys=True, default_flow_style=False, allow_unicode=True).encode()
        except (yaml.YAMLError, RecursionError, ValueError) as exc:
            raise unprocessable([problem("", f"the document cannot be stored as YAML: {exc}")]) from exc
        result = self._load([SourceFile(origin(doc_ns, doc_name), body)])
        problems = [{"file": p.file, "line": p.line, "entity": p.entity, "field": p.field,
                     "severity": p.severity.value, "message": p.message} for p in result.errors]
        if not problems and not result.catalog.services:
            problems.append(problem("", "the document does not define a service"))
        if problems:
            raise unprocessable(problems)
        svc = result.catalog.services[0]
        self._check_team(principal, svc, stored)
        catalog = self._catalog()
        overrides = self._check_catalog_owner(principal, svc, catalog)
        self._check_renders(svc, catalog)
        return Admitted(doc_ns, doc_name, body, svc, overrides)

    def _check_team(self, principal: Principal, svc: Service, stored: Callable[[str, str], bytes | None]) -> None:
        if not principal.may_write_team(str(svc.team)):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this token may not write services of {svc.team} "
                                f"(spec.owner); it writes for {', '.join(sorted(principal.teams or ())) or 'no team'}")
        previous = stored(svc.namespace, svc.name)
        if previous is not None:
            self.check_may_replace(principal, svc.namespace, svc.name, previous)

    def check_may_replace(self, principal: Principal, namespace: str, name: str, document: bytes) -> None:
        """403 unless the caller may write the team of the stored registration `document`."""
        if principal.teams is None:
            return
        old = self._load([SourceFile(origin(namespace, name), document)])
        for other in old.catalog.services:
            if not principal.may_write_team(str(other.team)):
                raise HTTPException(status.HTTP_403_FORBIDDEN, f"{namespace}/{name} is registered by "
                                    f"{other.team}; this token may not replace or remove it")

    def _check_catalog_owner(self, principal: Principal, svc: Service, catalog: Catalog) -> str:
        key = f"{svc.namespace}/{svc.name}"
        namespace, name = svc.namespace, svc.name
        for existing in catalog.services:
            ref = existing.ref
            if ref.name != name or ref.namespace != namespace or existing.origin.file.startswith(ORIGIN_PREFIX):
                continue
            where = f"{existing.ref} from {existing.origin.file} (owner {existing.team})"
            if not self.allow_catalog_override:
                raise HTTPException(status.HTTP_409_CONFLICT, {
                    "problems": [problem("metadata.name", f"{key} is owned by the catalog: {where}; a registration "
                                         "may not replace it (serve.registrations_may_override_catalog allows it)")]})
            if not principal.may_write_team(str(existing.team)):
                raise HTTPException(status.HTTP_403_FORBIDDEN, f"{key} is owned by {existing.team} in the catalog; "
                                                               "this token may not override it")
            return where
        return ""

    def _check_renders(self, svc: Service, catalog: Catalog) -> None:
        key = f"{svc.namespace}/{svc.name}"
        teams = tuple(t for t in catalog.teams if t.ref == svc.team)
        try:
            mine = self._render(Catalog((svc,), teams))
        except SpecError as exc:
            raise unprocessable([{"file": p.file, "line": p.line, "entity": p.entity, "field": p.field,
                                  "severity": p.severity.value, "message": f"does not render: {p.message}"}
                                 for p in exc.problems]) from exc
        except Exception as exc:  # a renderer refusing this input in a way it did not locate
            log.warning("registration %s does not render: %s: %s", key, type(exc).__name__, exc)
            raise unprocessable([problem("spec", f"does not render: {type(exc).__name__}: {exc}",
                                         str(svc.ref))]) from exc
        index = self._path_index()
        problems = []
        for aid, art in sorted(mine.items()):
            mine_owner = owner_key(art.owner)
            held = index.holder(aid, art.path)
            if held is None or held[1] == mine_owner or held[1] == key:
                continue
            field = "spec.owner" if owner_key(art.owner) != key else "metadata.name"
            problems.append(problem(field, f"its {art.kind.value} {art.path!r} collides with that of {held[1]} "
                                           "(the names normalise to one identifier)", str(svc.ref)))
        if problems:
            raise unprocessable(problems)

    def _path_index(self) -> PathIndex:
        desired = self._desired()
        if desired is None:
            desired = self._render_catalog(self._catalog())
        with self._lock:
            if self._index is None:
                self._index = PathIndex(desired)
            elif self._index.source is not desired:
                self._index.moved_to(desired)
            return self._index
