"""Bytes of catalog files -> a validated Catalog plus every problem found.

One bad entity is reported and skipped; every other entity still loads.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

from obsctl.errors import Problem, Severity
from obsctl.model import conventions as cv
from obsctl.model.durations import parse_duration
from obsctl.model.entities import (
    SLO,
    AvailabilitySLI,
    Catalog,
    EntityRef,
    LatencySLI,
    Links,
    Origin,
    Protocol,
    Runtime,
    Service,
    Team,
)
from obsctl.model.source import SourceFile
from obsctl.model.status import owner_key
from obsctl.spec import backstage, native, openslo, pyrra, sloth
from obsctl.spec.fields import MAX_NUMBER, Reader, control_character
from obsctl.spec.slos import LabelSites, check_objective, check_period, check_slo, identity_labels, parse_latency
from obsctl.spec.templates import PAGING_MODES, Templates
from obsctl.spec.yamlsafe import Document, load_documents


@dataclass
class LoadResult:
    """The valid catalog, every problem, and the refs of entities skipped for errors."""

    catalog: Catalog
    problems: list[Problem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # valid services a later check (the composition's routing check) moved to `skipped`: what they would bring
    # to artifacts shared with others (the dependency inhibitions) is still known
    held_back: tuple[Service, ...] = ()

    @property
    def errors(self) -> list[Problem]:
        """Problems of severity error."""
        return [p for p in self.problems if p.severity is Severity.ERROR]

    def partial_owners(self) -> frozenset[str]:
        """Owner keys of services that loaded without some of their SLOs (an SLO with an error was left out).

        Rendering such a service as loaded would delete the left-out SLO's alerts: callers keep what it
        already has instead (see reconcile.converge.Policy.frozen_owners).
        """
        with_errors = {owner_key(p.entity) for p in self.errors if p.entity}
        if not with_errors:
            return frozenset()
        return frozenset(key for key in (owner_key(str(s.ref)) for s in self.catalog.services) if key in with_errors)


@dataclass
class _Pending:
    component: backstage.ComponentEntity | None = None
    doc: native.ServiceDoc | None = None
    doc_reader: Reader | None = None
    reader: Reader | None = None
    extra_slos: list[tuple[tuple[SLO, ...], Reader, dict[str, LabelSites]]] = field(default_factory=list)
    owner_hint: str = ""
    origin: Origin | None = None
    failed: bool = False


def _entity_label(doc: Document) -> str:
    data = doc.data if isinstance(doc.data, dict) else {}
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    kind = str(data.get("kind", "")).lower() or ("sloth" if "service" in data else "document")
    name = meta.get("name") if meta else data.get("service")
    ns = meta.get("namespace", "default") if meta else "default"
    return f"{kind}:{ns}/{name}" if name else f"{doc.file}#{doc.index}"


# Parsed YAML by (file, bytes): a serve round reads every catalog file again, and parsing was most of
# loading; an unchanged file is not parsed again. Documents are only read after parsing, never changed.
# Each entry also keeps what reading each of its documents produced (`_Memo`, by (document index, what)),
# so an unchanged document is not validated again either.
@dataclass
class _Memo:
    """One document's parse (a Component, Group or obsctl.dev/v1 doc): the value and the problems it found."""

    value: Any
    problems: tuple[Problem, ...]
    failed: bool
    templates: Templates


@dataclass
class _ParsedFile:
    docs: list[Document]
    problems: list[Problem]
    memo: dict[tuple[int, str], _Memo] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)  # document index -> entity label

    def label(self, doc: Document) -> str:
        """The entity label of one of its documents (problems name it)."""
        found = self.labels.get(doc.index)
        if found is None:
            found = self.labels[doc.index] = _entity_label(doc)
        return found


_PARSED: dict[tuple[str, bytes | str], _ParsedFile] = {}
_PARSED_MAX = 50_000
_PARSED_LOCK = threading.Lock()


def _parsed(raw: bytes | str, file: str) -> _ParsedFile:
    key = (file, raw)
    with _PARSED_LOCK:
        hit = _PARSED.get(key)
    if hit is not None:
        return hit
    found = _ParsedFile(*load_documents(raw, file))
    with _PARSED_LOCK:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
            _ASSEMBLED.clear()
        _PARSED[key] = found
    return found


T = TypeVar("T")


def _memoized(parsed: _ParsedFile, key: tuple[int, str], r: Reader, templates: Templates,
              parse: Callable[[], T]) -> T:
    """parse() for one document, or what it gave for the same bytes before (its problems replayed)."""
    hit = parsed.memo.get(key)
    if hit is not None and hit.templates is templates:
        r.problems.extend(hit.problems)
        r.failed = hit.failed
        value: T = hit.value
        return value
    start = len(r.problems)
    value = parse()
    parsed.memo[key] = _Memo(value, tuple(r.problems[start:]), r.failed, templates)
    return value


@dataclass
class _Assembled:
    """A service assembled from its documents, with what it was assembled from (compared by identity)."""

    inputs: tuple[Any, ...]
    service: Service
    problems: tuple[Problem, ...]
    owner_known: bool  # the owner team was in the catalog (else a warning says so)


# Services by ref, as assembled from the same parsed documents: a catalog of unchanged files builds
# the same Service objects again (and the renderer's cache sees them unchanged at a glance).
_ASSEMBLED: dict[EntityRef, _Assembled] = {}


def _assembled(ref: EntityRef, e: _Pending, teams: dict[EntityRef, Team], templates: Templates,
               problems: list[Problem], *, environment: str) -> Service | None:
    r, dr = e.reader or e.doc_reader, e.doc_reader
    if e.extra_slos or r is None:  # imported specs attach across documents: assembled each time
        return _assemble(ref, e, teams, templates, environment)
    inputs = (e.component, e.doc, r.doc, dr.doc if dr is not None else None, r.failed,
              dr.failed if dr is not None else None, e.owner_hint, e.origin, templates, environment)
    hit = _ASSEMBLED.get(ref)
    # equal inputs (the same objects, as a rule: an unchanged file's documents are parsed once) assemble alike
    if hit is not None and hit.inputs == inputs and (hit.service.team in teams) == hit.owner_known:
        problems.extend(hit.problems)
        return hit.service
    start = len(problems)
    svc = _assemble(ref, e, teams, templates, environment)
    if svc is not None:
        _ASSEMBLED[ref] = _Assembled(inputs, svc, tuple(problems[start:]), svc.team in teams)
    return svc


def load_catalog(files: Iterable[SourceFile], templates: Templates, environment: str = "production") -> LoadResult:
    """Parse and validate every document, then assemble services and teams (no index kept for a next load).

    `environment` is the platform's (the setting): the one a service without its own carries on its alerts.
    """
    return CatalogLoader(templates, environment)._load_all(list(files), keep=False)


# What one document adds to a service's pending entry, replayed in file order when the entry is merged:
# ("component", ref, component, reader, origin), ("doc", ref, service doc, reader, origin),
# ("attach", ref, slos, owner, origin, reader, marks failed, where each SLO's labels were written).
_Record = tuple[Any, ...]


@dataclass
class _FileRead:
    """What reading one file's documents found (validation problems land in the pass's problem list)."""

    records: list[_Record] = field(default_factory=list)
    teams: list[Team] = field(default_factory=list)
    openslo: list[openslo.OpenSloDoc] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def refs(self) -> set[EntityRef]:
        """The services the file's documents add to."""
        return {rec[1] for rec in self.records}


def _read_file(source: SourceFile, templates: Templates, problems: list[Problem]) -> _FileRead:
    """Validate each document of one file; what it adds to services is recorded, not merged yet."""
    out = _FileRead()
    parsed = _parsed(source.data, source.path)
    problems.extend(parsed.problems)
    for doc in parsed.docs:
        if doc.data is None:
            continue
        entity = parsed.label(doc)
        r = Reader(doc, entity, problems)
        if not isinstance(doc.data, dict):
            r.problem((), "a catalog document must be a mapping")
            continue
        data: dict[str, Any] = doc.data
        api = str(data.get("apiVersion", ""))
        kind = str(data.get("kind", ""))
        if api == backstage.API_VERSION:
            if kind == "Component":
                comp = _memoized(parsed, (doc.index, "component"), r, templates,
                                 partial(backstage.parse_component, r, data))
                if comp is None:
                    out.skipped.append(entity)
                    continue
                if comp.spec_type not in backstage.SERVICE_TYPES:
                    continue
                if comp.annotations.get(backstage.ORPHAN) == "true":
                    continue
                out.records.append(("component", comp.ref, comp, r, Origin(doc.file, doc.line(), "backstage")))
            elif kind == "Group":
                team = _memoized(parsed, (doc.index, "group"), r, templates,
                                 partial(backstage.parse_group, r, data, doc.file))
                if team is None or r.failed:
                    # a team with errors is left out whole: half a Group could route its pages elsewhere
                    # (serve keeps its last good routing, see reconcile.desired)
                    out.skipped.append(entity)
                    continue
                out.teams.append(team)
            elif kind in ("System", "API", "Resource", "Domain", "User", "Location", "Template"):
                backstage.check_metadata(r, data, kind)
            else:
                r.problem(("kind",), f"unknown Backstage kind {kind!r}")
        elif api == native.API_VERSION:
            if kind != "Service":
                r.problem(("kind",), f"unknown obsctl kind {kind!r}; expected Service")
                continue
            sdoc = _memoized(parsed, (doc.index, "service"), r, templates,
                             partial(native.parse_service_doc, r, data, templates))
            if sdoc is None:
                out.skipped.append(entity)
                continue
            target = EntityRef.parse(sdoc.component, "component", sdoc.namespace) if sdoc.component else \
                EntityRef("component", sdoc.namespace, sdoc.name)
            out.records.append(("doc", target, sdoc, r, Origin(doc.file, doc.line(), "obsctl")))
        elif sloth.is_sloth(data):
            start = len(problems)
            service, labels, slos, sites = sloth.parse_sloth(r, data, templates)
            if not service or not _service_name(r, ("spec", "service") if "apiVersion" in data else ("service",),
                                                service):
                continue
            _pin(r, start, service)
            out.records.append(("attach", EntityRef("component", "default", service), slos,
                                labels.get("owner", labels.get("team", "")),
                                Origin(doc.file, doc.line(), "sloth"), r, True, sites))
        elif pyrra.is_pyrra(data):
            # One Pyrra document is one SLO: a bad one is reported and skipped alone.
            start = len(problems)
            with r.contained():
                service, owner, slos, sites = pyrra.parse_pyrra(r, data, templates)
            if not service or not _service_name(r, ("metadata", "labels"), service):
                continue
            _pin(r, start, service)
            out.records.append(("attach", EntityRef("component", "default", service), slos, owner,
                                Origin(doc.file, doc.line(), "pyrra"), r, False, sites))
        elif api in openslo.API_VERSIONS:
            if kind not in openslo.KINDS:
                r.problem(("kind",), f"unknown OpenSLO kind {kind!r}")
                continue
            meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
            name = str(meta.get("name", "")) if meta else ""
            if not name:
                r.problem(("metadata", "name"), "is required")
                continue
            if kind in ("AlertNotificationTarget", "DataSource"):
                r.warn(("kind",), f"an OpenSLO {kind} is not honoured: alerts route to the owning team's "
                                  "receivers and rules query the Prometheus they are loaded into")
            out.openslo.append(openslo.OpenSloDoc(kind, name, data, r))
        else:
            r.problem(("apiVersion",), f"unknown document type (apiVersion {api!r}, kind {kind!r}); expected "
                                       "backstage.io/v1alpha1, obsctl.dev/v1, Sloth prometheus/v1 or "
                                       "sloth.slok.dev/v1, openslo/v1 or pyrra.dev/v1alpha1")
    return out


def _merge(reads: Iterable[_FileRead], pending: dict[EntityRef, _Pending]) -> None:
    """Each file's records into the services' pending entries, in file order (the first definition wins)."""
    for read in reads:
        for rec in read.records:
            what, ref = rec[0], rec[1]
            if what == "component":
                comp, r, origin = rec[2], rec[3], rec[4]
                entry = pending.setdefault(ref, _Pending())
                if entry.component is not None:
                    r.problem(("metadata", "name"), f"{comp.ref} is defined twice (also {entry.origin})")
                    continue
                entry.component, entry.reader, entry.origin = comp, r, origin
                entry.failed = entry.failed or r.failed
            elif what == "doc":
                sdoc, r, origin = rec[2], rec[3], rec[4]
                entry = pending.setdefault(ref, _Pending())
                if entry.doc is not None:
                    r.problem(("metadata", "name"), f"a second obsctl.dev/v1 document for {ref}")
                    continue
                entry.doc, entry.doc_reader = sdoc, r
                entry.failed = entry.failed or r.failed
                if entry.origin is None:
                    entry.origin = origin
            else:
                slos, owner, origin, r, marks, sites = rec[2], rec[3], rec[4], rec[5], rec[6], rec[7]
                entry = _attach_slos(pending, ref.name, slos, owner, origin=origin, reader=r, sites=sites)
                if marks:
                    entry.failed = entry.failed or r.failed


def _teams_of(reads: Iterable[list[Team]]) -> dict[EntityRef, Team]:
    teams: dict[EntityRef, Team] = {}
    for found in reads:
        for team in found:
            teams[team.ref] = team  # the last definition wins
    return teams


class CatalogLoader:
    """Loads a catalog, and loads it again re-merging only what changed since its last load.

    A serve round hands it every catalog file; the files whose bytes changed (added, edited,
    removed) are read again, and so is every file that adds to a service those files add to (or
    added to), so each service is assembled from all of its documents, in file order, as a fresh
    load does. Everything else is kept from the last load. A change to the set of team names (which
    services are told their owner is unknown) or any OpenSLO document (SLOs refer across files)
    loads everything again. The result always equals a fresh `load_catalog` of the same files.
    """

    def __init__(self, templates: Templates, environment: str = "production") -> None:
        self.templates = templates
        self.environment = environment  # the platform's, for the services that name none
        self._result: LoadResult | None = None
        self._data: dict[str, bytes | str] = {}  # path -> the bytes last loaded
        self._file_refs: dict[str, frozenset[EntityRef]] = {}
        self._ref_files: dict[EntityRef, set[str]] = {}
        self._file_teams: dict[str, list[Team]] = {}  # files that define teams
        self._file_problems: dict[str, list[Problem]] = {}
        self._file_skipped: dict[str, list[str]] = {}
        self._ref_skipped: set[EntityRef] = set()
        self._services: dict[EntityRef, Service] = {}
        self._order: list[str] = []  # sorted str(ref) of self._services
        self._sorted: list[Service] = []  # self._services in that order
        self._teams: dict[EntityRef, Team] = {}
        self._openslo_files: set[str] = set()  # files with OpenSLO documents: read again on every change
        self._openslo_refs: frozenset[EntityRef] = frozenset()  # services OpenSLO SLOs were attached to
        self.changed_refs: frozenset[EntityRef] | None = None  # refs the last load re-assembled; None: all
        self.changed_teams: frozenset[EntityRef] | None = None  # teams whose Group changed; None: all

    def load(self, files: Iterable[SourceFile]) -> LoadResult:
        """The catalog of these files (equal to a fresh load of them)."""
        sources = list(files)
        by_path = {f.path: f for f in sources}
        if len(by_path) != len(sources) or self._result is None:
            return self._load_all(sources, keep=len(by_path) == len(sources))
        missing = object()
        changed = {p for p, f in by_path.items()
                   if (was := self._data.get(p, missing)) is not f.data and was != f.data}
        changed.update(p for p in self._data if p not in by_path)
        if not changed:
            self.changed_refs = self.changed_teams = frozenset()
            return self._result
        return self._load_changed(by_path, changed) or self._load_all(sources, keep=True)

    def service(self, ref: EntityRef) -> Service | None:
        """The service with that ref in the last load (None: none, or skipped)."""
        return self._services.get(ref)

    # -- a whole load --------------------------------------------------------------------------

    def _load_all(self, sources: list[SourceFile], keep: bool) -> LoadResult:
        problems: list[Problem] = []
        ordered = sorted(sources, key=lambda f: f.path)
        reads = [_read_file(source, self.templates, problems) for source in ordered]
        teams = _teams_of(read.teams for read in reads)
        attached = self._openslo_slos(reads)
        pending: dict[EntityRef, _Pending] = {}
        _merge([*reads, _FileRead(attached)], pending)
        file_skipped = [label for read in reads for label in read.skipped]
        assembled, ref_skipped = self._assemble_all(pending, teams, problems)
        self.changed_refs = self.changed_teams = None
        paths = {f.path for f in sources}
        if not keep or any(p.file not in paths for p in problems):
            self._result = None  # no incremental state: the next load is whole again
            self._data = {}
            services = [assembled[k] for k in sorted(assembled, key=str)]
            return _result(services, teams, problems, [*file_skipped, *map(str, ref_skipped)])
        self._data = {f.path: f.data for f in sources}
        self._file_refs, self._ref_files = {}, {}
        self._file_teams, self._file_problems, self._file_skipped = {}, {}, {}
        for source, read in zip(ordered, reads, strict=True):
            self._index(source.path, read)
        self._file_problems = _by_file(problems)
        self._ref_skipped = set(ref_skipped)
        self._services = assembled
        in_order = sorted(assembled.items(), key=lambda item: str(item[0]))
        self._order = [str(ref) for ref, _ in in_order]
        self._sorted = [svc for _, svc in in_order]
        self._teams = teams
        self._openslo_files = {source.path for source, read in zip(ordered, reads, strict=True) if read.openslo}
        self._openslo_refs = frozenset(rec[1] for rec in attached)
        return self._publish()

    def _openslo_slos(self, reads: Iterable[_FileRead]) -> list[_Record]:
        """The OpenSLO documents of these files (all of the catalog's) as SLOs to attach, in name order."""
        oslo = openslo.OpenSloSet()
        for read in reads:
            for odoc in read.openslo:
                oslo.add(odoc)
        out: list[_Record] = []
        for (kind, _name), odoc in sorted(oslo.objects.items()):
            if kind != "SLO":
                continue
            start = len(odoc.reader.problems)
            service, owner, slos, sites = openslo.build_slos(odoc, oslo, self.templates)
            if not service or not _service_name(odoc.reader, ("spec", "service"), service):
                continue
            _pin(odoc.reader, start, service)
            # A bad SLO was skipped alone (reported); the service keeps its other SLOs.
            out.append(("attach", EntityRef("component", "default", service), slos, owner,
                        Origin(odoc.reader.doc.file, odoc.reader.doc.line(), "openslo"), odoc.reader, False, sites))
        return out

    def _assemble_all(self, pending: dict[EntityRef, _Pending], teams: dict[EntityRef, Team],
                      problems: list[Problem]) -> tuple[dict[EntityRef, Service], list[EntityRef]]:
        assembled: dict[EntityRef, Service] = {}
        skipped: list[EntityRef] = []
        for ref, entry in sorted(pending.items(), key=lambda kv: str(kv[0])):
            svc = _assembled(ref, entry, teams, self.templates, problems, environment=self.environment)
            if svc is None or entry.failed:
                skipped.append(ref)
            else:
                assembled[ref] = svc
        return assembled, skipped

    def _index(self, path: str, read: _FileRead) -> None:
        refs = frozenset(read.refs)
        if refs:
            self._file_refs[path] = refs
        for ref in refs:
            self._ref_files.setdefault(ref, set()).add(path)
        if read.teams:
            self._file_teams[path] = read.teams
        if read.skipped:
            self._file_skipped[path] = read.skipped

    def _unindex(self, path: str) -> None:
        for ref in self._file_refs.pop(path, ()):
            paths = self._ref_files.get(ref)
            if paths is not None:
                paths.discard(path)
                if not paths:
                    del self._ref_files[ref]
        self._file_teams.pop(path, None)
        self._file_skipped.pop(path, None)
        self._file_problems.pop(path, None)

    # -- a load of what changed -----------------------------------------------------------------

    def _load_changed(self, by_path: dict[str, SourceFile], changed: set[str]) -> LoadResult | None:
        """Re-read the changed files and every file that adds to the same services; None: load everything."""
        problems: list[Problem] = []
        reads: dict[str, _FileRead] = {}
        files: set[str] = set()
        refs: set[EntityRef] = set()

        def close(paths: Iterable[str], more: Iterable[EntityRef]) -> None:
            """Read these files, and every file that adds (or added) to a service they add (or added) to."""
            todo = [p for p in paths if p not in files]
            files.update(todo)
            pending_refs = set(more) - refs
            while todo or pending_refs:
                touched = pending_refs
                pending_refs = set()
                while todo:
                    path = todo.pop()
                    touched |= self._file_refs.get(path, frozenset())
                    source = by_path.get(path)
                    if source is not None:
                        read = reads[path] = _read_file(source, self.templates, problems)
                        touched |= read.refs
                for ref in touched - refs:
                    refs.add(ref)
                    for other in self._ref_files.get(ref, ()):
                        if other not in files:
                            files.add(other)
                            todo.append(other)

        # OpenSLO documents refer to each other across files: all of them are read again on any change
        close([*changed, *self._openslo_files], self._openslo_refs)
        attached = self._openslo_slos(reads[p] for p in sorted(reads))
        close((), (rec[1] for rec in attached))
        if any(p.file not in files for p in problems):
            return None  # a problem placed outside the files read: cannot be kept per file
        team_files = dict(self._file_teams)
        for path in files:
            team_files.pop(path, None)
            if path in reads and reads[path].teams:
                team_files[path] = reads[path].teams
        teams_changed = any(path in self._file_teams or (path in reads and reads[path].teams) for path in files)
        teams = _teams_of(team_files[p] for p in sorted(team_files)) if teams_changed else self._teams
        if teams.keys() != self._teams.keys():
            return None  # which owners are unknown changed for services anywhere
        pending: dict[EntityRef, _Pending] = {}
        _merge([*(reads[p] for p in sorted(reads)), _FileRead(attached)], pending)
        assembled, ref_skipped = self._assemble_all(pending, teams, problems)
        if any(p.file not in files for p in problems):
            return None
        # commit
        for path in files:
            self._unindex(path)
            if path in reads:
                self._index(path, reads[path])
                self._data[path] = by_path[path].data
            else:
                self._data.pop(path, None)
        self._file_problems.update(_by_file(problems))
        self._ref_skipped -= refs
        self._ref_skipped.update(ref_skipped)
        for ref in refs:
            if self._services.pop(ref, None) is not None:
                key = str(ref)
                at = bisect.bisect_left(self._order, key)
                del self._order[at]
                del self._sorted[at]
        for ref, svc in assembled.items():
            key = str(ref)
            self._services[ref] = svc
            at = bisect.bisect_left(self._order, key)
            self._order.insert(at, key)
            self._sorted.insert(at, svc)
        self.changed_refs = frozenset(refs)
        self.changed_teams = frozenset(t for t in teams if teams[t] is not self._teams.get(t))
        if teams_changed:
            self._file_teams = team_files
            self._teams = teams
        self._openslo_files = {p for p in self._openslo_files if p not in files} | \
            {p for p, read in reads.items() if read.openslo}
        self._openslo_refs = frozenset(rec[1] for rec in attached)
        return self._publish()

    def _publish(self) -> LoadResult:
        problems = [p for path in sorted(self._file_problems) for p in self._file_problems[path]]
        skipped = [label for labels in self._file_skipped.values() for label in labels]
        skipped.extend(str(ref) for ref in self._ref_skipped)
        self._result = _result(self._sorted, self._teams, problems, skipped)
        return self._result


def _result(services: Iterable[Service], teams: dict[EntityRef, Team], problems: list[Problem],
            skipped: list[str]) -> LoadResult:
    """A load's result: services in ref order as given, teams, problems and skipped labels sorted, each once."""
    return LoadResult(Catalog(tuple(services), tuple(sorted(teams.values(), key=lambda t: str(t.ref)))),
                      sorted(dict.fromkeys(problems), key=lambda p: (p.file, p.line, p.field)),
                      sorted(set(skipped)))


def _by_file(problems: list[Problem]) -> dict[str, list[Problem]]:
    out: dict[str, list[Problem]] = {}
    for p in problems:
        out.setdefault(p.file, []).append(p)
    return out


def _attach_slos(pending: dict[EntityRef, _Pending], service: str, slos: tuple[SLO, ...], owner: str, *,
                 origin: Origin, reader: Reader, sites: dict[str, LabelSites]) -> _Pending:
    """Add an imported spec's SLOs (Sloth, Pyrra, OpenSLO) to their service; the first document names it."""
    entry = pending.setdefault(EntityRef("component", "default", service), _Pending())
    entry.extra_slos.append((slos, reader, sites))
    entry.owner_hint = entry.owner_hint or owner
    if entry.origin is None:
        entry.origin = origin
    entry.reader = entry.reader or reader
    return entry


def _pin(r: Reader, start: int, service: str) -> None:
    """Name the service an imported spec (Sloth, Pyrra, OpenSLO) adds its SLOs to on the problems its document
    gave since `start`, and on any it gives later.

    The document's own label (a Kubernetes object's name, a Pyrra or OpenSLO SLO's name) is no entity obsctl
    renders: an error there would neither hold the service's last good artifacts (the bad SLO's alerts would be
    dropped from its rule file) nor count as pinned (nothing would be pruned anywhere). A shared OpenSLO SLI keeps
    its own label: several services may use it.
    """
    entity = str(EntityRef("component", "default", service))
    for i in range(start, len(r.problems)):
        if r.problems[i].entity == r.entity:
            r.problems[i] = replace(r.problems[i], entity=entity)
    r.entity = entity


def _service_name(r: Reader, path: tuple[str | int, ...], service: str) -> bool:
    """Whether an imported spec's service name is a valid entity name (it becomes a file path and a uid part);
    an error at `path` when not, and the spec's SLOs attach to no service."""
    if len(service) <= 63 and backstage.NAME_RE.match(service):
        return True
    r.problem(path, f"service {service[:80]!r} is not a valid entity name (1-63 of [A-Za-z0-9-_.], starting and "
                    "ending with a letter or digit)")
    return False


_PERIOD, _AVAILABILITY, _LATENCY = (backstage.PREFIX + k for k in ("period", "availability", "latency"))


@dataclass(frozen=True)
class _SloAnnotations:
    """The SLO annotations a Component carries, each checked: None where absent."""

    period: int | None = None  # days
    availability: float | None = None  # percent
    latency: tuple[float, float] | None = None  # (percent, threshold seconds)

    @property
    def present(self) -> tuple[str, ...]:
        """The annotation keys that were set."""
        return tuple(key for key, value in ((_PERIOD, self.period), (_AVAILABILITY, self.availability),
                                            (_LATENCY, self.latency)) if value is not None)


def _slo_annotations(r: Reader, ann: dict[str, str], templates: Templates) -> _SloAnnotations | None:
    """obsctl.dev/period, availability and latency as set on a Component, each checked the one way they are
    checked wherever they are read; None when one is bad (an error at its field)."""
    path = ("metadata", "annotations")
    ok = True
    period = availability = latency = None
    if _PERIOD in ann:
        period = check_period(r, (*path, _PERIOD), ann[_PERIOD], templates)
        ok = ok and period is not None
    if _AVAILABILITY in ann:
        availability = r.number(ann, _AVAILABILITY, path)
        ok = availability is not None and check_objective(r, (*path, _AVAILABILITY), availability) is not None \
            and ok
    if _LATENCY in ann:
        latency = parse_latency(r, (*path, _LATENCY), ann[_LATENCY])
        ok = latency is not None and check_objective(r, (*path, _LATENCY), latency[0]) is not None and ok
    return _SloAnnotations(period, availability, latency) if ok else None


def _unused_slo_annotations(r: Reader, ann: dict[str, str], templates: Templates, source: str) -> None:
    """The SLO annotations of a Component whose SLOs come from `source` (an imported spec, or an obsctl.dev/v1
    document's slos): a bad value is the error it is anywhere; a valid one is not used, and a warning says so."""
    if not any(key in ann for key in (_PERIOD, _AVAILABILITY, _LATENCY)):
        return
    found = _slo_annotations(r, ann, templates)
    for key in found.present if found is not None else ():
        r.warn(("metadata", "annotations", key), f"not used: this service's SLOs come from {source}, which wins "
                                                  f"over {key}; set the objective there, or remove the annotation")


def _spec_sources(extra: list[tuple[tuple[SLO, ...], Reader, dict[str, LabelSites]]]) -> str:
    """Where imported SLOs come from, for a message: "the Sloth spec in slos/checkout.yaml"."""
    def kind(data: Any) -> str:
        if isinstance(data, dict) and sloth.is_sloth(data):
            return "Sloth"
        return "Pyrra" if isinstance(data, dict) and pyrra.is_pyrra(data) else "OpenSLO"

    found = dict.fromkeys(f"the {kind(reader.doc.data)} spec in {reader.doc.file}" for _, reader, _ in extra)
    return " and ".join(found)


def _golden_slos(r: Reader, comp: backstage.ComponentEntity | None, tier: int, protocol: Protocol,
                 templates: Templates) -> tuple[SLO, ...]:
    """Default SLOs from annotations, falling back to the tier's defaults."""
    ann = comp.annotations if comp else {}
    path = ("metadata", "annotations")
    defaults = templates.tier_defaults.get(tier) or templates.tier_defaults[templates.default_tier]
    found = _slo_annotations(r, ann, templates)
    if found is None:
        return ()
    period = found.period or check_period(r, (*path, _PERIOD), f"{templates.default_period_days}d", templates)
    availability = defaults.availability if found.availability is None else found.availability
    avail_ratio = check_objective(r, (*path, _AVAILABILITY), availability)
    lat_percent, lat_seconds = found.latency or (defaults.latency_percent, defaults.latency_threshold_s)
    lat_ratio = check_objective(r, (*path, _LATENCY), lat_percent)
    if period is None or avail_ratio is None or lat_ratio is None:
        return ()
    slos = (
        SLO("availability", avail_ratio, AvailabilitySLI(), period,
            description=f"{availability:g}% of requests succeed"),
        SLO("latency", lat_ratio, LatencySLI(lat_seconds), period,
            description=f"{lat_percent:g}% of requests are served within {lat_seconds * 1000:g}ms"),
    )
    for slo in slos:
        key = backstage.PREFIX + slo.name  # obsctl.dev/availability, obsctl.dev/latency
        where = (*path, key) if key in ann else (*path, backstage.PREFIX + "tier")
        check_slo(r, path, slo, templates, objective_path=where)
    shape = templates.sli_shapes.get(protocol.value)
    if shape and lat_seconds not in shape.buckets:
        r.warn((*path, backstage.PREFIX + "latency"),
               f"threshold {lat_seconds:g}s is not a bucket bound of {shape.bucket_metric} "
               f"({', '.join(f'{b:g}' for b in shape.buckets)}); the SLI will read the next bound below it")
    return slos


def _field_ok(r: Reader, path: tuple[str | int, ...], key: str, text: str, templates: Templates) -> bool:
    """Whether `text` is a valid value of the service field `key` (tier, protocol, runtime, paging, runbook; any
    other is free text); an error at `path` when not. One check per field, wherever the value is written."""
    if key == "tier":
        try:
            if int(text) in templates.tier_defaults:
                return True
        except ValueError:
            pass
        r.problem(path, f"tier {text[:20]!r} must be one of {', '.join(map(str, sorted(templates.tier_defaults)))}")
        return False
    if key in ("protocol", "runtime"):
        enum: type[Protocol] | type[Runtime] = Protocol if key == "protocol" else Runtime
        if text.lower() in {e.value for e in enum}:
            return True
        r.problem(path, f"{text!r} is not one of {', '.join(e.value for e in enum)}")
        return False
    if key == "paging" and text not in PAGING_MODES:
        r.problem(path, f"paging {text!r} must be one of {', '.join(PAGING_MODES)}")
        return False
    if key == "runbook" and not text.startswith(("https://", "http://")):
        r.problem(path, f"{text!r} is not an http(s) URL")
        return False
    return True


def _assemble(ref: EntityRef, e: _Pending, teams: dict[EntityRef, Team], templates: Templates,
              platform_environment: str) -> Service | None:
    comp, sdoc = e.component, e.doc
    r = e.reader or e.doc_reader
    if r is None:
        return None
    dr = e.doc_reader or r
    ann = comp.annotations if comp else {}
    f = sdoc.fields if sdoc else {}
    spec_path: tuple[str | int, ...] = ("spec",)
    ann_path: tuple[str | int, ...] = ("metadata", "annotations")

    def pick(key: str, ann_key: str) -> tuple[str, Reader, tuple[str | int, ...]]:
        if key in f:
            # the document's value wins; the annotation is still checked as where it is used
            written, at = ann.get(backstage.PREFIX + ann_key, ""), (*ann_path, backstage.PREFIX + ann_key)
            if written and _field_ok(r, at, key, written, templates) and written != str(f[key]):
                r.warn(at, f"not used: spec.{key} of its obsctl.dev/v1 document in {dr.doc.file} "
                           f"({str(f[key])[:80]!r}) wins over the annotation; set it in one place")
            return str(f[key]), dr, (*spec_path, key)
        return ann.get(backstage.PREFIX + ann_key, ""), r, (*ann_path, backstage.PREFIX + ann_key)

    if comp is not None and ann.get(backstage.PREFIX + "enabled", "true").lower() == "false":
        return None
    owner_text = (sdoc.owner if sdoc and sdoc.owner else "") or (str(comp.owner) if comp and comp.owner else "") \
        or e.owner_hint
    if owner_text and owner_text == e.owner_hint and not _valid_owner(owner_text, ref.namespace):
        # An imported spec's `owner` label is free text there (Sloth, OpenSLO, Pyrra): keep it on the
        # series and alerts as written, and route to the default owner.
        r.warn((), f"owner label {owner_text[:80]!r} names no team ([kind:][namespace/]name); "
                   f"{ref} goes to {templates.default_owner}")
        owner_text = templates.default_owner
    if not owner_text and comp is None and sdoc is None:
        owner_text = templates.default_owner
        r.warn((), f"{ref} names no owner (Sloth and OpenSLO have no owner field); it goes to {owner_text}. "
                   "Add an owner label, or a Backstage Component, to route it to a team")
    if not owner_text:
        (dr if sdoc else r).problem(spec_path if sdoc else (), f"{ref} has no owner: set spec.owner "
                                    "(or the Component's spec.owner, or an owner label)")
        return None
    owner = EntityRef.parse(owner_text, "group", ref.namespace)
    if not _valid_owner(owner_text, ref.namespace):
        (dr if sdoc else r).problem((*spec_path, "owner") if sdoc else (), f"owner {owner_text[:80]!r} must name a "
                                    "team as [kind:][namespace/]name, each part 1-63 letters, digits, '-', '_' or '.'")
        return None
    if owner not in teams and owner_text != templates.default_owner:
        r.warn(("spec", "owner"), f"owner {owner} not found in the catalog; routing uses "
                                  f"{cv.team_label(owner)!r} as the team (its alerts' team label)")
    tier_text, tr, tpath = pick("tier", "tier")
    tier = int(tier_text) if tier_text and _field_ok(tr, tpath, "tier", tier_text, templates) else \
        templates.default_tier
    text, pr, ppath = pick("protocol", "protocol")
    protocol = Protocol(text.lower()) if text and _field_ok(pr, ppath, "protocol", text, templates) else Protocol.HTTP
    text, rr, rpath = pick("runtime", "runtime")
    runtime = Runtime(text.lower()) if text and _field_ok(rr, rpath, "runtime", text, templates) else Runtime.OTHER
    environment = pick("environment", "environment")[0] or "production"
    runbook, rbr, rbpath = pick("runbook", "runbook")
    if not runbook and comp:
        for link in comp.links:
            if "runbook" in str(link.get("title", "")).lower() or link.get("type") == "runbook":
                runbook, rbr, rbpath = str(link.get("url", "")), r, ("metadata", "links")
    if runbook:
        _field_ok(rbr, rbpath, "runbook", runbook, templates)  # where it was written: document, annotation, link
    buckets: tuple[float, ...] = ()
    if "latencyBuckets" in f:
        try:
            buckets = tuple(float(b) for b in f["latencyBuckets"])
        except (TypeError, ValueError, OverflowError):
            dr.problem((*spec_path, "latencyBuckets"), "must be a list of numbers (seconds)")
        if not all(math.isfinite(b) and 0 < b <= MAX_NUMBER for b in buckets):
            dr.problem((*spec_path, "latencyBuckets"), f"every bucket must be a finite number of seconds in "
                                                       f"(0, {MAX_NUMBER:g}]")
    own = {cv.LABEL_SERVICE: ref.name, cv.LABEL_NAMESPACE: ref.namespace, cv.LABEL_TEAM: cv.team_label(owner),
           cv.LABEL_ENVIRONMENT: cv.environment_of(environment, platform_environment)}
    if sdoc is not None and sdoc.slos is not None:
        slos: tuple[SLO, ...] = _identified(dr, ref, sdoc.slos, sdoc.label_sites, own)
        _unused_slo_annotations(r, ann, templates, f"spec.slos of its obsctl.dev/v1 document in {dr.doc.file}")
    elif e.extra_slos:
        slos = ()
        _unused_slo_annotations(r, ann, templates, _spec_sources(e.extra_slos))
    else:
        slos = _golden_slos(r, comp, tier, protocol, templates)
    for extra, reader, sites in e.extra_slos:
        slos = slos + _identified(reader, ref, extra, sites, own)
    lifecycle = (comp.lifecycle if comp else str(f.get("lifecycle", "production"))) or "production"
    paging, pgr, pgpath = pick("paging", "paging")
    if paging:
        _field_ok(pgr, pgpath, "paging", paging, templates)
    paging = paging or templates.paging.get(lifecycle, templates.paging["default"])
    slos = tuple(_apply_paging(s, paging) for s in slos)
    names = [s.name for s in slos]
    for name in sorted({n for n in names if names.count(n) > 1}):
        r.problem(("spec", "slos"), f"duplicate SLO name {name!r} across the documents for {ref}")
    labels = dict(comp.labels) if comp else {}
    if "labels" in f and isinstance(f["labels"], dict):
        labels.update({str(k): str(v) for k, v in f["labels"].items()})
    for key in ("title", "description", "system", "lifecycle", "environment"):
        bad = control_character(str(f.get(key, "")))
        if bad is not None:
            dr.problem((*spec_path, key), f"contains the control character {bad}")
    for key, value in sorted(labels.items()):
        bad = control_character(key + value)
        if bad is not None:
            (dr if "labels" in f else r).problem((*spec_path, "labels", key), f"contains the control character {bad}")
    for key, value in sorted(ann.items()):
        bad = control_character(value)
        if bad is not None:
            r.problem((*ann_path, key), f"contains the control character {bad}")
    if comp is not None:
        for key, value in (("title", comp.title), ("description", comp.description), ("system", comp.system),
                           ("lifecycle", comp.lifecycle)):
            bad = control_character(value or "")
            if bad is not None:
                r.problem(("metadata" if key in ("title", "description") else "spec", key),
                          f"contains the control character {bad}")
    pagerduty_service_id = backstage.routing_annotation(r, ann, backstage.PAGERDUTY_SERVICE)
    if r.failed or dr.failed:
        return None
    source = ann.get("backstage.io/source-location", "")
    source = source.split(":", 1)[1] if source.startswith(("url:", "dir:")) else source
    return Service(
        ref=ref, team=owner, slos=slos, tier=tier, protocol=protocol, runtime=runtime,
        lifecycle=lifecycle, paging=paging,
        system=(comp.system if comp else str(f.get("system", ""))),
        environment=environment,
        title=(comp.title if comp else str(f.get("title", ""))) or ref.name,
        description=comp.description if comp else str(f.get("description", "")),
        links=Links(runbook=runbook, source=source, catalog=ann.get("backstage.io/view-url", "")),
        labels=tuple(sorted(labels.items())),
        pagerduty_service_id=pagerduty_service_id,
        depends_on=tuple(sorted({d for d in (*(comp.depends_on if comp else ()),
                                             *(backstage.dependency_refs(dr, f["dependsOn"], (*spec_path, "dependsOn"),
                                                                         ref.namespace) if "dependsOn" in f else ()))
                                 if (d.namespace, d.name) != (ref.namespace, ref.name)}, key=str)),
        latency_buckets=buckets,
        origin=e.origin or Origin(""),
    )


def _identified(r: Reader, ref: EntityRef, slos: tuple[SLO, ...], sites: dict[str, LabelSites],
                own: dict[str, str]) -> tuple[SLO, ...]:
    """The SLOs (of the document `r` reads) whose labels keep obsctl's identity and routing labels (`own`, the
    SLO's name aside); each other one is an error on the service at the label's field and is left out alone, as
    an SLO with an invalid field is (spec.slos.identity_labels)."""
    return tuple(slo for slo in slos
                 if identity_labels(r, str(ref), slo, sites.get(slo.name, {}), {**own, cv.LABEL_SLO: slo.name}))


def _apply_paging(slo: SLO, paging: str) -> SLO:
    """The SLO's alert policy under the service's paging mode: ticket drops the page tiers, none every alert."""
    if paging == "ticket" and slo.alerting.page:
        return replace(slo, alerting=replace(slo.alerting, page=False))
    if paging == "none" and (slo.alerting.page or slo.alerting.ticket):
        return replace(slo, alerting=replace(slo.alerting, page=False, ticket=False))
    return slo


def _valid_owner(text: str, namespace: str) -> bool:
    owner = EntityRef.parse(text, "group", namespace)
    return all(backstage.NAME_RE.match(part) and len(part) <= 63 for part in (owner.namespace, owner.name))


def parse_duration_or_none(text: str) -> float | None:
    """parse_duration that answers None instead of raising."""
    try:
        return parse_duration(text)
    except ValueError:
        return None
