"""Incremental rendering: a change costs what it changes.

`IncrementalRenderer` keeps, per service, the artifacts it rendered and what they were rendered
from: the service itself and its team's entity (templates and options are fixed for the renderer's
life). A render of a catalog re-renders only the services whose inputs differ, reuses the rest, and
rebuilds each renderer's shared part only when what it reads changed (`render.shared_parts`): the
routing tree when a service summary or team changes, the team folders and overviews when the teams in
use or their entities change, a per-team part (team gateways) only for the team that changed.
Renderers are pure, so the result is byte-identical to `render_all` of the same catalog (a property
test checks it over random sequences of catalog edits).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from obsctl.errors import Problem, SpecError
from obsctl.model.artifact import Artifact, DesiredState, Kind
from obsctl.model.entities import Catalog, EntityRef, Service, Team
from obsctl.model.platform import Templates
from obsctl.model.status import owner_key
from obsctl.render import render_service, shared_parts
from obsctl.render.context import RenderContext, ServiceSummary, teams_in_use
from obsctl.render.isolated import IsolatedRender, RenderFailure, assemble, failure_of
from obsctl.render.options import RenderOptions


class PackedArtifact(Artifact):
    """An artifact whose body is held zlib-compressed: a serve process keeps every service's artifacts
    between rounds, and bodies were most of its memory. The body is inflated when read (a write, a diff);
    the digest is computed once, when packed."""

    def __init__(self, kind: Kind, key: str, path: str, body: bytes, owner: str) -> None:
        for name, value in (("kind", kind), ("key", key), ("path", path), ("owner", owner),
                            ("_packed", zlib.compress(body, 1)), ("digest", hashlib.sha256(body).hexdigest())):
            object.__setattr__(self, name, value)

    @property
    def body(self) -> bytes:  # the field, inflated on read
        """The body, inflated."""
        packed: bytes = self.__dict__["_packed"]
        return zlib.decompress(packed)

    def __eq__(self, other: object) -> bool:
        """Equal to any artifact with the same identity, path, owner and digest (packed or not)."""
        if not isinstance(other, Artifact):
            return NotImplemented
        return (self.kind, self.key, self.path, self.owner, self.digest) == \
            (other.kind, other.key, other.path, other.owner, other.digest)

    __hash__ = Artifact.__hash__

    @classmethod
    def of(cls, art: Artifact) -> Artifact:
        """`art` with its body packed (an artifact already packed is returned as it is)."""
        if isinstance(art, PackedArtifact):
            return art
        return cls(art.kind, art.key, art.path, art.body, art.owner)


@dataclass(frozen=True)
class _Entry:
    service: Service
    team: Team | None
    artifacts: tuple[Artifact, ...]
    summary: ServiceSummary


_SharedCache = dict[tuple[str, EntityRef | None], tuple[tuple[object, ...], tuple[Artifact, ...]]]


@dataclass
class _Assembly:
    """A collision-free isolated render: every artifact by id, and the owner claiming each id and path."""

    entries: dict[EntityRef, _Entry]
    shared: tuple[Artifact, ...]
    desired: dict[str, Artifact]
    ids: dict[str, str]
    paths: dict[str, str]

    @classmethod
    def of(cls, entries: dict[EntityRef, _Entry], shared: tuple[Artifact, ...], desired: DesiredState) -> _Assembly:
        """The claims of an assembly that had no collision."""
        ids: dict[str, str] = {}
        paths: dict[str, str] = {}
        for ref, entry in entries.items():
            for art in entry.artifacts:
                ids[art.id] = paths[art.path] = str(ref)
        for art in shared:
            ids[art.id] = paths[art.path] = art.owner
        return cls(entries, shared, dict(desired), ids, paths)


@dataclass
class RenderStats:
    """What the last render did: how many services it rendered and how many it reused."""

    rendered: int = 0
    reused: int = 0
    shared_rebuilt: bool = False


class IncrementalRenderer:
    """Catalog -> desired state, re-rendering only the services whose inputs changed.

    Thread-safe (one render at a time). `only` selects renderers as `render_all` does.
    """

    def __init__(self, templates: Templates, options: RenderOptions, only: Sequence[str] | None = None,
                 pack: bool = False) -> None:
        self.templates = templates
        self.options = options
        self.only = list(only) if only else None
        self.pack = pack  # hold bodies compressed (PackedArtifact): a long-lived process over a large catalog
        self._entries: dict[EntityRef, _Entry] = {}
        # each shared part's artifacts (per team for a part built team by team) and what they were built from
        self._shared: _SharedCache = {}
        self._assembly: _Assembly | None = None  # the last isolated render, when it had no collision
        self._lock = threading.Lock()
        self._memo: dict[str, Any] = {}  # the contexts' derived values (shapes): templates and options are fixed
        self.stats = RenderStats()

    def __call__(self, catalog: Catalog) -> DesiredState:
        """The desired state of `catalog` (as `render_all`); SpecError with every problem, nothing cached for it."""
        with self._lock:
            return self._render(catalog)

    def _render(self, catalog: Catalog) -> DesiredState:
        ctx = RenderContext.of(catalog, self.templates, self.options, self.only, self._memo)
        stats = RenderStats()
        problems: list[Problem] = []

        def spec_error(_svc: Service, exc: Exception) -> None:
            problems.extend(exc.problems if isinstance(exc, SpecError) else ())

        entries = self._render_services(catalog, ctx, stats, SpecError, spec_error)
        shared, cache = self._shared_of([e.summary for e in entries.values()], ctx, stats, problems)
        if problems:
            raise SpecError(problems)
        self._entries, self._shared = entries, cache
        self.stats = stats
        out: DesiredState = {}
        for art in itertools.chain.from_iterable([*(e.artifacts for e in entries.values()), shared]):
            if art.id in out:
                raise ValueError(f"two artifacts share the id {art.id}")
            out[art.id] = art
        return dict(sorted(out.items()))

    def _render_services(self, catalog: Catalog, ctx: RenderContext, stats: RenderStats, catch: type[Exception],
                         failed: Callable[[Service, Exception], None]) -> dict[EntityRef, _Entry]:
        """Every service's entry: the cached one while its inputs are unchanged, else a fresh render
        (a service whose render raises `catch` is handed to `failed` and left out)."""
        entries: dict[EntityRef, _Entry] = {}
        for svc in sorted(catalog.services, key=lambda s: str(s.ref)):
            team = ctx.team(svc.team)
            old = self._entries.get(svc.ref)
            if old is not None and (old.service is svc or old.service == svc) and old.team == team:
                entries[svc.ref] = old
                stats.reused += 1
                continue
            try:
                arts, summary = render_service(svc, ctx)
            except catch as exc:
                failed(svc, exc)
                continue
            entries[svc.ref] = _Entry(svc, team, tuple(map(PackedArtifact.of, arts)) if self.pack else tuple(arts),
                                      summary)
            stats.rendered += 1
        return entries

    def isolated(self, catalog: Catalog) -> IsolatedRender:
        """The desired state of `catalog` with every service in its own try: a service that fails to
        render, or collides with another owner's identifiers, is a located failure of its own (the
        reconcile loop keeps its last good artifacts); the others render as `__call__` would."""
        with self._lock:
            ctx = RenderContext.of(catalog, self.templates, self.options, self.only, self._memo)
            stats = RenderStats()
            failures: dict[str, RenderFailure] = {}

            def isolate(svc: Service, exc: Exception) -> None:
                failures[owner_key(str(svc.ref))] = failure_of(str(svc.ref), exc)

            entries = self._render_services(catalog, ctx, stats, Exception, isolate)

            caches: list[_SharedCache] = []

            def shared_of(summaries: Sequence[ServiceSummary]) -> Sequence[Artifact]:
                shared, cache = self._shared_of(summaries, ctx, stats, None)
                caches.append(cache)
                return shared

            shared = tuple(shared_of([e.summary for e in entries.values()]))
            patched = self._patched(entries, shared)
            if patched is not None:
                result = IsolatedRender(dict(sorted(patched.desired.items())), failures)
            else:
                rendered = set(failures)
                result = assemble([(str(e.service.ref), e.artifacts, e.summary) for e in entries.values()],
                                  failures, shared_of)
                # with no collision the result is every artifact: later rounds patch it
                patched = _Assembly.of(entries, shared, result.desired) if set(failures) == rendered else None
            self._assembly = patched
            self._entries = entries
            if caches:
                self._shared = caches[-1]
            self.stats = stats
            return result

    def _patched(self, entries: dict[EntityRef, _Entry], shared: tuple[Artifact, ...]) -> _Assembly | None:
        """The last collision-free assembly with the changed services' (and shared) artifacts swapped;
        None when there is none or a new artifact collides (then `assemble` decides who keeps what)."""
        last = self._assembly
        if last is None:
            return None
        desired, ids, paths = dict(last.desired), dict(last.ids), dict(last.paths)

        def drop(artifacts: Sequence[Artifact], owner: str | None) -> None:
            for art in artifacts:
                who = owner or art.owner
                if ids.get(art.id) == who:
                    del ids[art.id]
                    desired.pop(art.id, None)
                if paths.get(art.path) == who:
                    del paths[art.path]

        def take(artifacts: Sequence[Artifact], owner: str | None) -> bool:
            for art in artifacts:
                who = owner or art.owner
                if ids.setdefault(art.id, who) != who or paths.setdefault(art.path, who) != who:
                    return False
                desired[art.id] = art
            return True

        same_shared = len(shared) == len(last.shared) and all(a is b for a, b in zip(shared, last.shared,
                                                                                       strict=True))
        for ref, old in last.entries.items():
            if entries.get(ref) is not old:
                drop(old.artifacts, str(ref))
        if not same_shared:
            drop(last.shared, None)
        for ref, new in entries.items():
            if last.entries.get(ref) is not new and not take(new.artifacts, str(ref)):
                return None
        if not same_shared and not take(shared, None):
            return None
        return _Assembly(entries, shared, desired, ids, paths)

    def _shared_of(self, summaries: Sequence[ServiceSummary], ctx: RenderContext, stats: RenderStats,
                   problems: list[Problem] | None) -> tuple[tuple[Artifact, ...], _SharedCache]:
        """The shared artifacts of the services summarised, each part (or team) built again only when what
        it reads changed, and the cache to keep. A SpecError goes into `problems` (raised when None)."""
        summaries = tuple(summaries)
        teams = teams_in_use(summaries)
        entities = tuple(ctx.team(t) for t in teams)
        cache: _SharedCache = {}
        out: list[Artifact] = []
        for part in shared_parts(ctx):
            units: list[tuple[tuple[str, EntityRef | None], tuple[object, ...], tuple[EntityRef, ...]]]
            if part.reads == "team":
                units = [((part.name, t), (t, e), (t,)) for t, e in zip(teams, entities, strict=True)]
            else:
                reads: tuple[object, ...] = (teams, entities, summaries) if part.reads == "summaries" \
                    else (teams, entities)
                units = [((part.name, None), reads, teams)]
            for key, inputs, unit_teams in units:
                hit = self._shared.get(key)
                if hit is not None and hit[0] == inputs:
                    artifacts = hit[1]
                else:
                    try:
                        rendered = part.render(summaries, unit_teams, ctx)
                        artifacts = tuple(map(PackedArtifact.of, rendered)) if self.pack else tuple(rendered)
                    except SpecError as exc:
                        if problems is None:
                            raise
                        problems.extend(exc.problems)
                        continue
                    stats.shared_rebuilt = True
                cache[key] = (inputs, artifacts)
                out.extend(artifacts)
        return tuple(out), cache
