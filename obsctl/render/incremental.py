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

import dataclasses
import functools
import hashlib
import itertools
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from obsctl.errors import Problem, SpecError
from obsctl.model.artifact import Artifact, DesiredState, Kind
from obsctl.model.entities import Catalog, EntityRef, Service, Team
from obsctl.model.platform import Templates
from obsctl.model.status import owner_key
from obsctl.render import render_service, shared_parts
from obsctl.render.context import RenderContext, ServiceSummary, by_team
from obsctl.render.isolated import IsolatedRender, RenderFailure, assemble, failure_of
from obsctl.render.options import HeldRoutes, RenderOptions


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


_SharedCache = dict[tuple[str, EntityRef | None], tuple[tuple[object, ...], Any]]


@dataclass
class _Assembly:
    """A collision-free isolated render: every artifact by id (in id order), and the owner claiming each id
    and path."""

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
class _Services:
    """The services' entries of one render and how they differ from the renderer's last ones (`base`): the
    entries dropped and added, and the summaries of each team in use (each team's in ref order)."""

    base: dict[EntityRef, _Entry]
    entries: dict[EntityRef, _Entry]
    by_id: dict[int, _Entry]
    dropped: list[_Entry]
    added: list[_Entry]
    members: dict[EntityRef, dict[str, ServiceSummary]]
    groups: dict[EntityRef, tuple[ServiceSummary, ...]]
    teams: tuple[EntityRef, ...]
    team_entities: dict[EntityRef, Team | None]

    def ordered(self) -> list[_Entry]:
        """The entries in ref order (the order a full render takes them in)."""
        return sorted(self.entries.values(), key=lambda e: str(e.service.ref))

    def settled(self) -> _Services:
        """These services as the next render starts from them: without this round's diff (the last entries,
        the dropped and added ones), so the dropped entries and their bodies are not held until then."""
        return dataclasses.replace(self, base={}, dropped=[], added=[])


@dataclass
class RenderStats:
    """What the last render did: how many services it rendered and how many it reused."""

    rendered: int = 0
    reused: int = 0
    shared_rebuilt: bool = False


class IncrementalRenderer:
    """Catalog -> desired state, re-rendering only the services whose inputs changed.

    A render walks the catalog once, finding each unchanged service by identity; everything after that
    costs what changed: the teams whose services changed get their summaries grouped again, each shared
    part is rebuilt only for what it reads (a team's routes, folder, gateway; the org parts when the
    teams in use change), and the last collision-free isolated render is patched with the changed
    artifacts. Thread-safe (one render at a time). `only` selects renderers as `render_all` does.
    """

    def __init__(self, templates: Templates, options: RenderOptions, only: Sequence[str] | None = None,
                 pack: bool = False) -> None:
        self.templates = templates
        self.options = options
        self.only = list(only) if only else None
        self.pack = pack  # hold bodies compressed (PackedArtifact): a long-lived process over a large catalog
        self._services = _Services({}, {}, {}, [], [], {}, {}, (), {})
        # each shared part's artifacts (per team for a part built team by team) and what they were built from
        self._shared: _SharedCache = {}
        self._assembly: _Assembly | None = None  # the last isolated render, when it had no collision
        self._lock = threading.Lock()
        # the contexts' derived values (shapes): templates and options are fixed (held_routes aside: none reads it)
        self._memo: dict[str, Any] = {}
        self.stats = RenderStats()

    def hold_routes(self, held: tuple[HeldRoutes, ...]) -> None:
        """The teams whose part of the Alertmanager config the next renders take as the config in place has it
        (RenderOptions.held_routes; () for none)."""
        with self._lock:
            if held != self.options.held_routes:
                self.options = dataclasses.replace(self.options, held_routes=held)

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

        services = self._render_services(catalog, ctx, stats, SpecError, spec_error)
        shared, cache = self._shared_of(services.groups, services.teams, ctx, stats, problems)
        if problems:
            raise SpecError(problems)
        self._services, self._shared = services.settled(), cache
        self.stats = stats
        out: DesiredState = {}
        for art in itertools.chain.from_iterable([*(e.artifacts for e in services.ordered()), shared]):
            if art.id in out:
                raise ValueError(f"two artifacts share the id {art.id}")
            out[art.id] = art
        return dict(sorted(out.items()))

    def _render_services(self, catalog: Catalog, ctx: RenderContext, stats: RenderStats, catch: type[Exception],
                         failed: Callable[[Service, Exception], None]) -> _Services:
        """Every service's entry: the cached one while its inputs are unchanged, else a fresh render
        (a service whose render raises `catch` is handed to `failed` and left out)."""
        last = self._services
        base = last.entries
        entries, by_id = dict(base), dict(last.by_id)
        dropped: list[_Entry] = []
        added: list[_Entry] = []
        teams = ctx.teams
        # every entry of a team was rendered with an entity equal to the one recorded for the team
        stale = {t for t, e in last.team_entities.items() if teams.get(t) is not e and teams.get(t) != e}
        lookup = by_id.get
        for svc in catalog.services:
            old = lookup(id(svc))
            if old is not None and old.service is svc and not (stale and svc.team in stale):
                continue  # unchanged (the loader hands back the same object for an unchanged document)
            team = teams.get(svc.team)
            old = entries.get(svc.ref)
            if old is not None and (old.service is svc or old.service == svc) and old.team == team:
                new = old if old.service is svc else _Entry(svc, old.team, old.artifacts, old.summary)
            else:
                try:
                    arts, summary = render_service(svc, ctx)
                except catch as exc:
                    failed(svc, exc)
                    if old is not None:
                        del entries[svc.ref]
                        by_id.pop(id(old.service), None)
                        dropped.append(old)
                    continue
                new = _Entry(svc, team, tuple(map(PackedArtifact.of, arts)) if self.pack else tuple(arts), summary)
                stats.rendered += 1
            if new is old:
                continue
            if old is not None:
                by_id.pop(id(old.service), None)
                dropped.append(old)
            entries[svc.ref] = by_id[id(svc)] = new
            added.append(new)
        # the entries of services no longer in the catalog (each entry holds its service: ids are not reused)
        for gone in by_id.keys() - set(map(id, catalog.services)):
            entry = by_id.pop(gone)
            if entries.get(entry.service.ref) is entry:
                del entries[entry.service.ref]
            dropped.append(entry)
        stats.reused = len(entries) - stats.rendered
        return self._regrouped(last, ctx, base=base, entries=entries, by_id=by_id, dropped=dropped, added=added)

    @staticmethod
    def _regrouped(last: _Services, ctx: RenderContext, *, base: dict[EntityRef, _Entry],
                   entries: dict[EntityRef, _Entry], by_id: dict[int, _Entry], dropped: list[_Entry],
                   added: list[_Entry]) -> _Services:
        """The services with each changed team's summaries grouped again (the others' kept as they were)."""
        members = dict(last.members)
        copied: set[EntityRef] = set()

        def team_members(team: EntityRef) -> dict[str, ServiceSummary]:
            if team not in copied:
                copied.add(team)
                members[team] = dict(members.get(team, {}))
            return members[team]

        for entry in dropped:
            summary = entry.summary
            mine = team_members(summary.team)
            if mine.get(summary.ref) is summary:
                del mine[summary.ref]
        for entry in added:
            team_members(entry.summary.team)[entry.summary.ref] = entry.summary
        groups = dict(last.groups)
        for team in copied:
            if members[team]:
                groups[team] = tuple(v for _, v in sorted(members[team].items()))
            else:
                del members[team]
                groups.pop(team, None)
        teams = last.teams if groups.keys() == last.groups.keys() else tuple(sorted(groups, key=str))
        team_entities = {t: ctx.team(t) for t in teams}
        return _Services(base, entries, by_id, dropped, added, members, groups, teams, team_entities)

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

            services = self._render_services(catalog, ctx, stats, Exception, isolate)

            def shared_of(summaries: Sequence[ServiceSummary]) -> Sequence[Artifact]:
                groups = dict(by_team(summaries))
                shared, cache = self._shared_of(groups, tuple(groups), ctx, stats, None)
                self._shared = cache
                return shared

            shared, cache = self._shared_of(services.groups, services.teams, ctx, stats, None)
            # a cache holds what each part was built from, so it is valid whatever happens next
            self._shared = cache
            # patched in place: forgotten first, so a patch that stops half-way is never reused
            last, self._assembly = self._assembly, None
            patched = self._patched(services, shared, last)
            if patched is not None:
                result = IsolatedRender(dict(patched.desired), failures)
            else:
                rendered = set(failures)
                ordered = services.ordered()
                result = assemble([(str(e.service.ref), e.artifacts, e.summary) for e in ordered], failures,
                                  shared_of)
                # with no collision the result is every artifact: later rounds patch it
                patched = _Assembly.of(services.entries, shared, result.desired) if set(failures) == rendered \
                    else None
            self._assembly = patched
            self._services = services.settled()
            self.stats = stats
            return result

    @staticmethod
    def _patched(services: _Services, shared: tuple[Artifact, ...], last: _Assembly | None) -> _Assembly | None:
        """The last collision-free assembly with the changed services' (and shared) artifacts swapped;
        None when there is none or a new artifact collides (then `assemble` decides who keeps what)."""
        if last is None:
            return None
        entries = services.entries
        dropped, added = services.dropped, services.added
        if last.entries is not services.base:  # the changes are relative to other entries: find them here
            dropped = [old for ref, old in last.entries.items() if entries.get(ref) is not old]
            added = [new for ref, new in entries.items() if last.entries.get(ref) is not new]
        # patched in place: the caller forgets the last assembly first, and keeps this one only if it fits
        desired, ids, paths = last.desired, last.ids, last.paths
        unclaimed: list[str] = []  # ids dropped: left in place until the end, where a new artifact may take them

        def drop(artifacts: Sequence[Artifact], owner: str | None) -> None:
            for art in artifacts:
                who = owner or art.owner
                if ids.get(art.id) == who:
                    del ids[art.id]
                    unclaimed.append(art.id)
                if paths.get(art.path) == who:
                    del paths[art.path]

        fresh = False

        def take(artifacts: Sequence[Artifact], owner: str | None) -> bool:
            nonlocal fresh
            for art in artifacts:
                who = owner or art.owner
                if ids.setdefault(art.id, who) != who or paths.setdefault(art.path, who) != who:
                    return False
                fresh = fresh or art.id not in desired
                desired[art.id] = art  # an id taken again keeps its place (in id order)
            return True

        # the shared artifacts rebuilt (a shared part not rebuilt hands back the same objects)
        before, now = set(map(id, last.shared)), set(map(id, shared))
        for old in dropped:
            drop(old.artifacts, str(old.service.ref))
        drop([a for a in last.shared if id(a) not in now], None)
        for new in added:
            if not take(new.artifacts, str(new.service.ref)):
                return None
        if not take([a for a in shared if id(a) not in before], None):
            return None
        for aid in unclaimed:
            if aid not in ids:
                desired.pop(aid, None)
        if fresh:  # only new ids need sorting in (the rest kept their places)
            keys = sorted(desired)
            desired = dict(zip(keys, map(desired.__getitem__, keys), strict=True))
        return _Assembly(entries, shared, desired, ids, paths)

    @staticmethod
    def _assembled(assemble_of: Callable[[Sequence[Any], RenderContext], list[Artifact]], pieces: tuple[Any, ...],
                   ctx: RenderContext, packed: Callable[[Sequence[Artifact]], tuple[Artifact, ...]]
                   ) -> tuple[Artifact, ...]:
        return packed(assemble_of(pieces, ctx))

    @staticmethod
    def _built(render: Callable[[Sequence[ServiceSummary], tuple[EntityRef, ...], RenderContext], list[Artifact]],
               summaries: Sequence[ServiceSummary], teams: tuple[EntityRef, ...], ctx: RenderContext,
               packed: Callable[[Sequence[Artifact]], tuple[Artifact, ...]]) -> tuple[Artifact, ...]:
        return packed(render(summaries, teams, ctx))

    def _shared_of(self, groups: Mapping[EntityRef, tuple[ServiceSummary, ...]], teams: tuple[EntityRef, ...],
                   ctx: RenderContext, stats: RenderStats, problems: list[Problem] | None
                   ) -> tuple[tuple[Artifact, ...], _SharedCache]:
        """The shared artifacts of the services grouped by team (`teams`: the groups' teams in ref order),
        each part (or team) built again only when what it reads changed, and the cache to keep. A SpecError
        goes into `problems` (raised when None)."""
        teams = tuple(sorted(teams, key=str))
        entities = tuple(ctx.team(t) for t in teams)
        cache: _SharedCache = {}
        out: list[Artifact] = []

        def cached(key: tuple[str, EntityRef | None], inputs: tuple[object, ...], build: Callable[[], Any]) -> Any:
            hit = self._shared.get(key)
            if hit is not None and hit[0] == inputs:
                value = hit[1]
            else:
                value = build()
                stats.shared_rebuilt = True
            cache[key] = (inputs, value)
            return value

        def packed(rendered: Sequence[Artifact]) -> tuple[Artifact, ...]:
            return tuple(map(PackedArtifact.of, rendered)) if self.pack else tuple(rendered)

        def guarded(key: tuple[str, EntityRef | None], inputs: tuple[object, ...], build: Callable[[], Any]) -> Any:
            try:
                return cached(key, inputs, build)
            except SpecError as exc:
                if problems is None:
                    raise
                problems.extend(exc.problems)
                return None

        for part in shared_parts(ctx):
            if part.reads == "team summaries":
                assert part.piece is not None and part.assemble is not None
                piece, assemble_of = part.piece, part.assemble
                pieces = tuple(guarded((part.name, t), (t, e, groups[t]), functools.partial(piece, t, groups[t], ctx))
                               for t, e in zip(teams, entities, strict=True))
                if all(p is not None for p in pieces):
                    # the assembly reads the teams held as the config in place has them, too
                    out.extend(guarded((part.name, None), (*pieces, ctx.options.held_routes),
                                       functools.partial(self._assembled, assemble_of, pieces, ctx, packed)) or ())
                continue
            units: list[tuple[tuple[str, EntityRef | None], tuple[object, ...], tuple[EntityRef, ...]]]
            if part.reads == "team":
                units = [((part.name, t), (t, e), (t,)) for t, e in zip(teams, entities, strict=True)]
            else:
                units = [((part.name, None), (teams, entities), teams)]
            for key, inputs, unit_teams in units:
                out.extend(guarded(key, inputs, functools.partial(self._built, part.render, (), unit_teams, ctx,
                                                                  packed)) or ())
        return tuple(out), cache
