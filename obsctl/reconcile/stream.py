"""The one-off converge of a whole catalog, streamed: render -> plan -> write, bodies never all held at once.

`obsctl render --out`, `plan` and `apply` call `converge_catalog`. It is `converge(render_all(...), ...)`
with the same plans, outcomes and safety rules (see converge.py), arranged so that a large catalog
renders on every core and no process holds every body:

- a sink that stages its writes (`StagesWrites`: the files sinks) reads its ownership records once,
  before the render forks its workers; each worker renders a chunk of services, plans each artifact
  against those records (comparing the bytes on disk with what it rendered, as a deep listing would)
  and stages the body of each change beside the sink's files. Only the plan (id, digest, owner,
  action, a diff when asked) travels back;
- any other sink (Grafana's API, the ruler API) gets the bodies of its kinds in the converging
  process and is listed and planned the usual way (`plan_sink`) once the render is done;
- prunes, the mass-delete guard and the apply happen in the converging process, after the whole
  catalog rendered: a render error or a refused prune stages nothing into place. The staged bodies
  are committed in id order through the sink's ownership protocol (announce, then rename).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from obsctl.errors import PermanentError, PruneRefused, TemporaryError, WorkerLost
from obsctl.model.artifact import Artifact, Kind, Observed, Staged
from obsctl.model.entities import Catalog
from obsctl.model.platform import Templates
from obsctl.model.status import owner_key
from obsctl.reconcile.converge import (
    ConvergeReport,
    Hooks,
    Policy,
    SinkRun,
    apply_report,
    list_into,
    plan_sink,
    prune_candidates,
)
from obsctl.reconcile.plan import Action, Change, Plan, action_for, check_deletes
from obsctl.render import render_mapped
from obsctl.render.options import RenderOptions
from obsctl.sinks.base import Sink, StagesWrites


@dataclass
class StreamedConverge:
    """A streamed converge's report and how many artifacts the render gave (every sink's kinds)."""

    report: ConvergeReport
    artifacts: int


# What a worker sends back for one artifact of a staging sink: (sink slot, id) when unchanged (the listing has
# the rest), else (sink slot, id, action, what was staged, whether the owned file had drifted).
_Planned = tuple[int, str] | tuple[int, str, Action, Staged, bool]


def _plan_one(slot: int, sink: StagesWrites, art: Artifact, policy: Policy, diffs: bool) -> _Planned | None:
    """One artifact's plan for a staging sink (its body staged when the plan will be applied); None when
    the policy keeps what the sink holds (an entity loaded without one of its SLOs)."""
    seen = sink.observe(art)
    if seen is not None and policy.frozen_owners and owner_key(art.owner) in policy.frozen_owners:
        return None
    action = action_for(art.digest, seen)
    if action is Action.UNCHANGED:
        return slot, art.id
    staged = _stage(sink, art, policy) if policy.apply else Staged(art.path, art.digest, art.owner)
    if diffs and action is Action.UPDATE:
        staged = replace(staged, diff=Change(action, art.id, art, seen).diff())
    return slot, art.id, action, staged, seen is not None and seen.drifted


def _change(planned: _Planned, owned: dict[str, Observed]) -> Change:
    """The plan's change for what a worker sent back; what the sink holds comes from its listing."""
    seen = owned.get(planned[1])
    if len(planned) == 2:
        return Change(Action.UNCHANGED, planned[1], None, seen)
    _slot, aid, action, staged, drifted = planned
    if seen is not None and drifted:
        seen = replace(seen, drifted=True)
    return Change(action, aid, None, seen, staged)


def _stage(sink: StagesWrites, art: Artifact, policy: Policy) -> Staged:
    """`sink.stage`, with the apply's retries for a temporary failure; a failure is kept as the change's outcome."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return sink.stage(art)
        except TemporaryError as exc:
            if attempt >= policy.retry.attempts:
                return Staged(art.path, art.digest, art.owner, error=str(exc), temporary=True)
            policy.retry.sleep(policy.retry.delay(attempt, exc.retry_after))
        except PermanentError as exc:
            return Staged(art.path, art.digest, art.owner, error=str(exc))
        except Exception as exc:  # OSError (a full disk) or a sink bug: this artifact only
            return Staged(art.path, art.digest, art.owner, error=f"{type(exc).__name__}: {exc}")


def _flush_started(staging: Sequence[tuple[StagesWrites, frozenset[Kind]]], policy: Policy
                   ) -> Callable[[], None] | None:
    """What the render calls once the workers are done staging: each staging sink starts putting its staged bodies
    on disk while the shared artifacts render and the plan is finished, so the commit's flush (still made before
    its first rename) finds little left to write. Nothing for a dry run (nothing is staged)."""
    if not policy.apply or not staging:
        return None

    def started() -> None:
        for stager, _kinds in staging:
            stager.start_flush()
    return started


def _finish_plan(run: SinkRun, changes: list[Change], policy: Policy, hooks: Hooks) -> None:
    """A staging sink's plan: its desired changes and the prune of what it owns and no longer renders
    (the candidates and the mass-delete guard of `plan_sink`)."""
    sink = run.sink
    mine = {c.id for c in changes}
    candidates = prune_candidates(run.owned, mine, sink, policy, hooks)
    deletes = [Change(Action.DELETE, aid, None, obs) for aid, obs in candidates.items() if aid not in mine]
    if not policy.prune:
        deletes = []
    elif deletes:
        try:
            check_deletes(len(deletes), len(candidates), max_delete_fraction=policy.max_delete_fraction,
                          allow_mass_delete=policy.allow_mass_delete)
        except PruneRefused as exc:
            run.prune_refused = str(exc)
            deletes = []
    run.plan = Plan(sorted([*changes, *deletes], key=lambda c: c.id))
    run.held = [c for c in run.plan.writes if hooks.hold(sink, c)]


def converge_catalog(catalog: Catalog, templates: Templates, options: RenderOptions, sinks: Sequence[Sink], *,
                     policy: Policy, hooks: Hooks | None = None, diffs: bool = False,
                     workers: int | None = None) -> StreamedConverge:
    """Render the catalog (`options.outputs`) and converge every sink once, streamed (see the module doc).

    The same report as `converge(render_all(...), sinks, policy, hooks)`: raises SpecError (every problem,
    nothing written) when a service fails to render, PruneRefused before any write when
    `policy.strict_mass_delete` and a prune was refused. `diffs`: updates planned by a worker carry their
    diff (a dry run's `plan` shows them; the bodies are gone by then). Staging sinks always list deep.
    """
    hooks = hooks or Hooks()
    if policy.scope is not None:
        raise ValueError("a streamed converge renders the whole catalog: it has no scope")
    runs = [SinkRun(s, {}) for s in sinks]
    staging: list[tuple[StagesWrites, frozenset[Kind]]] = []  # listed staging sinks and the kinds they plan
    slots: dict[int, int] = {}  # index in `staging` -> index in `runs`
    body_kinds: set[Kind] = set()  # the kinds other sinks need the bodies of
    for i, run in enumerate(runs):
        sink = run.sink
        if not isinstance(sink, StagesWrites):
            body_kinds |= sink.kinds & policy.selection
            continue
        run.deep = True
        if not list_into(run, sink.begin_staging):
            continue
        slots[len(staging)] = i
        staging.append((sink, sink.kinds & policy.selection))

    def consume(arts: list[Artifact]) -> tuple[list[_Planned], list[Artifact]]:
        planned: list[_Planned] = []
        for art in arts:
            for slot, (sink, kinds) in enumerate(staging):
                if art.kind in kinds:
                    one = _plan_one(slot, sink, art, policy, diffs)
                    if one is not None:
                        planned.append(one)
        return planned, [a for a in arts if a.kind in body_kinds]

    # what the run holds (the catalog, the listing, then the plan) is left out of the garbage collections: a full
    # collection visits every object, and the commit's allocations (a few objects per file) set off several
    # over more than a million objects (1.5 of 2.3 CPU-s of a 10k commit)
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    changes: list[list[Change]] = [[] for _ in staging]
    bodies: dict[str, Artifact] = {}
    seen: set[str] = set()
    count = 0
    try:
        out: Any
        # closed on any error: the workers stop before the staged bodies are dropped
        with contextlib.closing(render_mapped(catalog, templates, options, consume, workers=workers,
                                              services_done=_flush_started(staging, policy))) as chunks:
            for out in chunks:
                planned, kept = out
                ids = {(p[0], p[1]) for p in planned}
                if len(ids) < len(planned) or len({a.id for a in kept}) < len(kept):
                    raise ValueError("two artifacts share an id")  # a renderer bug, as in desired_state
                for one in planned:
                    changes[one[0]].append(_change(one, runs[slots[one[0]]].owned))
                for art in kept:
                    bodies[art.id] = art
                fresh = {aid for _, aid in ids} | {a.id for a in kept}
                if not seen.isdisjoint(fresh):
                    raise ValueError(f"two artifacts share the id {min(seen & fresh)}")
                seen |= fresh
                count += len(fresh)
        for slot, (_sink, _kinds) in enumerate(staging):
            _finish_plan(runs[slots[slot]], changes[slot], policy, hooks)
        for i, run in enumerate(runs):
            if not isinstance(run.sink, StagesWrites):
                runs[i] = plan_sink(run.sink, dict(sorted(bodies.items())), policy, hooks)
        gc.freeze()
        report = apply_report(ConvergeReport(runs), policy, hooks)
    except WorkerLost as exc:  # raised by the render, before anything was committed
        raise WorkerLost(f"{exc}; nothing was committed") from None
    finally:
        if not frozen_before:  # a caller's own frozen objects stay frozen
            gc.unfreeze()
        for stager, _kinds in staging:
            stager.end_staging()
    return StreamedConverge(report, count)
