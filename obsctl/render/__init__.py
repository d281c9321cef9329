"""Pure renderers: (catalog, templates, options) -> artifacts. No I/O, no clock, no randomness.

Rendering is per service: `render_service(service, ctx)` gives one service's artifacts and the
summary the shared artifacts (team folders and overviews, team gateways, the Alertmanager config,
the Grafana provider) are built from by `render_shared`. `render_all` renders a whole catalog into a
desired state; `render_chunks` streams the same artifacts chunk by chunk, the services spread over
worker processes, so a large catalog never has all its bodies in memory at once.
"""

from __future__ import annotations

import collections
import functools
import gc
import importlib
import itertools
import os
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from obsctl.errors import Problem, SpecError, WorkerLost
from obsctl.model.artifact import Artifact, DesiredState, Kind, desired_state
from obsctl.model.entities import Catalog, EntityRef, Service
from obsctl.model.platform import Templates
from obsctl.render.context import RENDERER_NAMES, RenderContext, ServiceSummary, summary_of, teams_in_use
from obsctl.render.options import RenderOptions

if TYPE_CHECKING:
    import multiprocessing.pool
    from multiprocessing.process import BaseProcess

__all__ = ["RenderContext", "ServiceSummary", "render_all", "render_chunks", "render_mapped", "render_service",
           "render_shared", "selection_of", "shared_parts"]

T = TypeVar("T")

Renderer = Callable[[Catalog, Templates, RenderOptions], list[Artifact]]
_MODULES = {"rules": "obsctl.render.rules", "alertmanager": "obsctl.render.routes",
            "dashboards": "obsctl.render.dashboards", "collectors": "obsctl.render.collectors"}

# The artifact kinds each renderer produces: a selection by renderer name is a selection of these kinds.
RENDERER_KINDS: dict[str, frozenset[Kind]] = {
    "rules": frozenset({Kind.PROMETHEUS_RULES, Kind.PROMETHEUS_RULE_CRD, Kind.RULER_GROUP}),
    "alertmanager": frozenset({Kind.ALERTMANAGER_CONFIG}),
    "dashboards": frozenset({Kind.GRAFANA_FOLDER, Kind.GRAFANA_DASHBOARD, Kind.GRAFANA_PROVIDER,
                             Kind.GRAFANA_DASHBOARD_CRD, Kind.GRAFANA_FOLDER_CRD}),
    "collectors": frozenset({Kind.COLLECTOR_AGENT, Kind.COLLECTOR_GATEWAY, Kind.COLLECTOR_CRD}),
}


def selection_names() -> list[str]:
    """Every name a selection (`--only`) accepts: renderer names, then artifact kinds."""
    return [*RENDERER_KINDS, *(k.value for k in Kind)]


def selection_of(names: Iterable[str]) -> frozenset[Kind]:
    """The artifact kinds a list of renderer or kind names selects; ValueError names the unknown ones."""
    kinds: set[Kind] = set()
    unknown: list[str] = []
    for raw in names:
        name = raw.strip()
        if name in RENDERER_KINDS:
            kinds |= RENDERER_KINDS[name]
        elif name in {k.value for k in Kind}:
            kinds.add(Kind(name))
        else:
            unknown.append(name)
    if unknown or not kinds:
        raise ValueError(f"unknown output {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"valid: {', '.join(selection_names())}")
    return frozenset(kinds)


def _modules(names: Sequence[str]) -> list[ModuleType]:
    """The renderer modules, imported lazily so one module's bug names itself."""
    found = []
    for name in names:
        module = _MODULES[name]
        try:
            found.append(importlib.import_module(module))
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return found


def renderers() -> dict[str, Renderer]:
    """Every whole-catalog renderer obsctl has, by name."""
    return {name: mod.render for name, mod in zip(RENDERER_NAMES, _modules(RENDERER_NAMES), strict=False)}


def render_service(service: Service, ctx: RenderContext) -> tuple[list[Artifact], ServiceSummary]:
    """Every artifact of one service (the selected renderers, the kinds in the outputs) and its summary.

    Raises SpecError naming the service when a generated artifact fails its checks.
    """
    artifacts: list[Artifact] = []
    for mod in _modules(ctx.renderers):
        fn = getattr(mod, "render_service", None)
        if fn is not None:
            artifacts.extend(fn(service, ctx))
    return artifacts, summary_of(service, ctx.templates)


@dataclass(frozen=True)
class SharedPart:
    """One renderer's shared artifacts and what they read, so a cache knows when to build them again.

    `reads`: "teams" (the teams in use and their entities), "team" (one team and its entity: the part
    over several teams is the parts of each team, and `render` is called with one team at a time) or
    "team summaries" (each team, its entity and the summaries of its services: `piece` builds one team's
    piece from those, `assemble` the artifacts from every team's piece in team order; `render` is both
    over all the summaries).
    """

    name: str
    reads: str
    render: Callable[[Sequence[ServiceSummary], tuple[EntityRef, ...], RenderContext], list[Artifact]]
    piece: Callable[[EntityRef, Sequence[ServiceSummary], RenderContext], Any] | None = None
    assemble: Callable[[Sequence[Any], RenderContext], list[Artifact]] | None = None


def shared_parts(ctx: RenderContext) -> list[SharedPart]:
    """The shared part of every selected renderer, in render order."""
    parts: list[SharedPart] = []
    for name in ctx.renderers:
        found = _modules([name])
        if not found:
            continue
        mod = found[0]
        piece, assemble = getattr(mod, "team_piece", None), getattr(mod, "render_pieces", None)
        if piece is not None and assemble is not None:  # the routing tree, team by team
            parts.append(SharedPart(name, "team summaries",
                                    functools.partial(_by_summaries, mod.render_summaries), piece, assemble))
            continue
        split = getattr(mod, "SHARED_PARTS", None)  # (reads, function name): a per-team part and an org part
        if split is not None:
            parts.extend(SharedPart(name if reads == "team" else f"{name}-{reads}", reads,
                                    functools.partial(_by_teams, getattr(mod, fn_name))) for reads, fn_name in split)
            continue
        fn = getattr(mod, "render_shared", None)
        if fn is not None:
            parts.append(SharedPart(name, "teams", functools.partial(_by_teams, fn)))
    return parts


def _by_summaries(fn: Callable[[Sequence[ServiceSummary], RenderContext], list[Artifact]],
                  summaries: Sequence[ServiceSummary], _teams: tuple[EntityRef, ...], ctx: RenderContext
                  ) -> list[Artifact]:
    return list(fn(summaries, ctx))


def _by_teams(fn: Callable[[tuple[EntityRef, ...], RenderContext], list[Artifact]],
              _summaries: Sequence[ServiceSummary], teams: tuple[EntityRef, ...], ctx: RenderContext
              ) -> list[Artifact]:
    return list(fn(teams, ctx))


def render_shared(summaries: Sequence[ServiceSummary], ctx: RenderContext) -> list[Artifact]:
    """The team- and org-level artifacts of the services summarised."""
    teams: tuple[EntityRef, ...] = teams_in_use(tuple(summaries))
    artifacts: list[Artifact] = []
    for part in shared_parts(ctx):
        artifacts.extend(part.render(summaries, teams, ctx))
    return artifacts


def render_all(catalog: Catalog, templates: Templates, options: RenderOptions,
               only: Sequence[str] | None = None) -> DesiredState:
    """Run every renderer (or those named) and index the artifacts by id; every problem at once."""
    ctx = RenderContext.of(catalog, templates, options, list(only) if only else None)
    artifacts: list[Artifact] = []
    for chunk in _render_serial(sorted(catalog.services, key=lambda s: str(s.ref)), ctx):
        artifacts.extend(chunk)
    return desired_state(artifacts)


def _render_range(services: Sequence[Service], ctx: RenderContext
                  ) -> tuple[list[Artifact], list[ServiceSummary], list[Problem]]:
    artifacts: list[Artifact] = []
    summaries: list[ServiceSummary] = []
    problems: list[Problem] = []
    for svc in services:
        try:
            arts, summary = render_service(svc, ctx)
        except SpecError as exc:
            problems.extend(exc.problems)
            continue
        artifacts.extend(arts)
        summaries.append(summary)
    return artifacts, summaries, problems


def _render_serial(services: Sequence[Service], ctx: RenderContext) -> Iterator[list[Artifact]]:
    artifacts, summaries, problems = _render_range(services, ctx)
    yield artifacts
    yield from _finish(summaries, problems, ctx)


def _finish(summaries: list[ServiceSummary], problems: list[Problem], ctx: RenderContext,
            shared_of: Callable[[Sequence[ServiceSummary], RenderContext], list[Artifact]] = render_shared,
            ) -> Iterator[list[Artifact]]:
    try:
        shared = shared_of(summaries, ctx)
    except SpecError as exc:
        problems.extend(exc.problems)
        shared = []
    if problems:
        raise SpecError(problems)
    yield shared


# Filled in the parent right before the worker processes fork: they inherit it instead of unpickling it.
# (services, context, what each worker does with a chunk's artifacts: None keeps them, hashed)
_WORK: list[tuple[Sequence[Service], RenderContext, Callable[[list[Artifact]], Any] | None]] = []


def _render_slice(bounds: tuple[int, int]) -> tuple[Any, list[ServiceSummary], list[Problem]]:
    services, ctx, consume = _WORK[0]
    arts, sums, probs = _render_range(services[bounds[0]:bounds[1]], ctx)
    if consume is not None:
        return consume(arts), sums, probs
    for art in arts:
        art.digest  # noqa: B018 - hashed here, in parallel, not in the parent
    return arts, sums, probs


def _render_team_part(work: tuple[str, tuple[EntityRef, ...]]) -> tuple[list[Artifact], list[Problem] | None]:
    """A worker's share of a per-team shared part: its artifacts (hashed), or the problems it raised."""
    name, teams = work
    ctx = _WORK[0][1]
    part = next(p for p in shared_parts(ctx) if p.name == name)
    try:
        arts = part.render((), teams, ctx)
    except SpecError as exc:
        return [], list(exc.problems)
    for art in arts:
        art.digest  # noqa: B018 - hashed here, in parallel
    return arts, None


_TeamParts = dict[str, list["multiprocessing.pool.AsyncResult[tuple[list[Artifact], list[Problem] | None]]"]]


def _team_parts(pool: multiprocessing.pool.Pool, workers: int, teams: tuple[EntityRef, ...], ctx: RenderContext
                ) -> _TeamParts:
    """Every per-team shared part (a team's gateway and sampler...) handed to the workers in slices of teams, in
    order: the answers of each part by name."""
    if len(teams) < 2:
        return {}
    size = max(1, -(-len(teams) // (4 * workers)))
    return {part.name: [pool.apply_async(_render_team_part, ((part.name, teams[i:i + size]),))
                        for i in range(0, len(teams), size)]
            for part in shared_parts(ctx) if part.reads == "team"}


def _shared_over(pool: multiprocessing.pool.Pool, workers: int, processes: Sequence[BaseProcess],  # noqa: PLR0917
                 early: tuple[tuple[EntityRef, ...], _TeamParts], summaries: Sequence[ServiceSummary],
                 ctx: RenderContext) -> list[Artifact]:
    """`render_shared` with each per-team part spread over the workers: the same artifacts in the same order,
    and the same first failure. `early`: those parts already handed out for some teams (while the last services
    rendered), used when those are the teams in use."""
    teams = teams_in_use(tuple(summaries))
    parts = early[1] if early[0] == teams else _team_parts(pool, workers, teams, ctx)
    artifacts: list[Artifact] = []
    for part in shared_parts(ctx):
        if part.name not in parts:
            artifacts.extend(part.render(summaries, teams, ctx))
            continue
        for result in parts[part.name]:
            arts, problems = _awaited(result.get, processes,
                                      functools.partial(str, f"the {part.name} part of the teams"))
            if problems is not None:  # the serial render stops at its first failing team too
                raise SpecError(problems)
            artifacts.extend(arts)
    return artifacts


def default_workers() -> int:
    """Worker processes for a full render: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


WAIT_SECONDS = 0.25  # how often a wait for a worker's answer looks whether every worker is alive


def _awaited(get: Callable[[float], T], processes: Sequence[BaseProcess], doing: Callable[[], str]) -> T:
    """`get(timeout)` until it answers; WorkerLost as soon as one of the pool's `processes` has died (the task
    it held is lost, and multiprocessing.Pool would wait for its answer forever)."""
    import multiprocessing

    while True:
        try:
            return get(WAIT_SECONDS)
        except multiprocessing.TimeoutError:
            dead = [p for p in processes if p.exitcode is not None]
            if dead:
                code = dead[0].exitcode or 0
                how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
                raise WorkerLost(f"render worker {dead[0].pid} {how} (out of memory?) while the workers rendered "
                                 f"{doing()}; the render stopped") from None


CHUNK_BYTES = 8 << 20  # bodies a worker sends back at once, about (a plan keeps only their digests)


def _slices(n: int, step: list[int]) -> Iterator[tuple[int, int]]:
    """Consecutive (lo, hi) bounds over n services, each `step[0]` long when it is drawn."""
    lo = 0
    while lo < n:
        hi = min(lo + step[0], n)
        yield lo, hi
        lo = hi


def render_chunks(catalog: Catalog, templates: Templates, options: RenderOptions,
                  only: Sequence[str] | None = None, *, workers: int | None = None,
                  chunk: int = 50) -> Iterator[list[Artifact]]:
    """The artifacts of `render_all`, streamed in chunks (services in ref order, then the shared ones).

    With more than one worker the services are rendered by forked worker processes, `chunk` at a
    time (fewer when their bodies exceed `CHUNK_BYTES`), each artifact already hashed. Only a
    single-threaded process forks (a fork copies no other thread and could inherit a lock one of them
    held); otherwise the render runs here, chunk by chunk.
    A SpecError with every problem is raised after the last chunk of services.
    """
    return _stream(catalog, templates, options, only, consume=None, workers=workers, chunk=chunk, services_done=None)


def render_mapped(catalog: Catalog, templates: Templates, options: RenderOptions,
                  consume: Callable[[list[Artifact]], T], *, only: Sequence[str] | None = None,
                  workers: int | None = None, chunk: int = 50,
                  services_done: Callable[[], None] | None = None) -> Generator[T, None, None]:
    """`render_chunks` with each chunk of artifacts turned into `consume(chunk)` where it was rendered: in the
    forked worker for the services (only what `consume` returns travels back, so bodies need not), here for
    the shared artifacts (the last chunk). `consume` runs in a fork of this process: it may use what this
    process holds (a sink's listing) but its side effects on memory stay in the worker.
    `services_done` is called here once every chunk of services was consumed, before the shared artifacts
    are rendered (no more `consume` in a worker from then on).
    """
    return _stream(catalog, templates, options, only, consume=consume, workers=workers, chunk=chunk,
                   services_done=services_done)


def _stream(catalog: Catalog, templates: Templates, options: RenderOptions, only: Sequence[str] | None, *,
            consume: Callable[[list[Artifact]], Any] | None, workers: int | None, chunk: int,
            services_done: Callable[[], None] | None) -> Generator[Any, None, None]:
    ctx = RenderContext.of(catalog, templates, options, list(only) if only else None)
    services = sorted(catalog.services, key=lambda s: str(s.ref))
    workers = default_workers() if workers is None else workers
    bounds = [(i, min(i + chunk, len(services))) for i in range(0, len(services), chunk)]
    summaries: list[ServiceSummary] = []
    problems: list[Problem] = []
    fork = workers > 1 and len(bounds) > 1 and threading.active_count() == 1
    if fork:
        import multiprocessing  # only a forked render pays for it (~25 ms of imports)

        fork = "fork" in multiprocessing.get_all_start_methods()

    def finished(shared: list[Artifact]) -> Any:
        return shared if consume is None else consume(shared)

    if not fork:
        for lo, hi in bounds:
            arts, sums, probs = _render_range(services[lo:hi], ctx)
            summaries.extend(sums)
            problems.extend(probs)
            yield arts if consume is None else consume(arts)
        if services_done is not None:
            services_done()
    else:
        _WORK[:] = [(services, ctx, consume)]
        _modules(ctx.renderers)  # imported once here, not once per worker (and again here for the shared part)
        # what the workers inherit is left out of their garbage collections: a collection writes to every object
        # it visits, which would copy the catalog's pages into each worker
        frozen_before = gc.get_freeze_count()
        gc.freeze()
        try:
            size = min(workers, len(bounds))
            others = set(multiprocessing.active_children())
            with multiprocessing.get_context("fork").Pool(size) as pool:
                processes = [p for p in multiprocessing.active_children() if p not in others]

                def in_hand() -> str:
                    return "; ".join(f"services {services[lo].ref} .. {services[hi - 1].ref}"
                                     for (lo, hi), _result in pending)

                # at most two chunks per worker in flight: a slow consumer holds the workers back instead of
                # piling their bodies up here (imap would run ahead without bound)
                # the first chunks are small; the next hold about CHUNK_BYTES of bodies, at most `chunk` services
                step = [max(1, chunk // 5) if consume is None else chunk]
                todo = _slices(len(services), step)
                early: tuple[tuple[EntityRef, ...], _TeamParts] | None = None
                pending = collections.deque((b, pool.apply_async(_render_slice, (b,)))
                                            for b in itertools.islice(todo, 2 * size))
                while pending:
                    out, sums, probs = _awaited(pending[0][1].get, processes, in_hand)
                    pending.popleft()
                    if consume is None and out:
                        per_service = sum(len(a.body) for a in out) / max(1, len(sums) + len(probs))
                        step[0] = max(1, min(chunk, int(CHUNK_BYTES / max(1.0, per_service))))
                    following = next(todo, None)
                    if following is not None:
                        pending.append((following, pool.apply_async(_render_slice, (following,))))
                    elif early is None:  # every service handed out: the per-team parts of their teams go next
                        teams = tuple(sorted({s.team for s in services}, key=str))
                        early = teams, _team_parts(pool, size, teams, ctx)
                    summaries.extend(sums)
                    problems.extend(probs)
                    yield out
                    del out
                if services_done is not None:
                    services_done()
                shared_of = functools.partial(_shared_over, pool, size, processes, early or ((), {}))
                for shared in _finish(summaries, problems, ctx, shared_of):
                    yield finished(shared)
        finally:
            _WORK.clear()
            if not frozen_before:  # a caller's own frozen objects stay frozen
                gc.unfreeze()
        return
    for shared in _finish(summaries, problems, ctx):
        yield finished(shared)
