"""The one converge path: desired state + sinks + policy -> plan -> apply -> report.

`obsctl serve` (every reconcile round), `obsctl apply`, `render`/`plan` to a directory and
`GET /plan` all call `converge`. The safety rules therefore hold the same way everywhere:

- the selection (`--only`, the `outputs` setting) scopes writes AND prunes: a listed artifact of a
  kind outside it is never planned at all, so nothing outside the selection can be deleted;
- an entity skipped for spec errors keeps its artifacts: an owned artifact whose owner (the mark
  the sink keeps: manifest entry, group name; else what the caller recorded) is protected is never
  deleted, and while any entity is protected an artifact of unknown owner is not deleted either;
- prune only when the caller says the read was complete (`Policy.prune`), and a sink whose listing
  fails is neither planned nor written;
- a plan that would delete more than `max_delete_fraction` of what a sink owns is refused: with
  `strict_mass_delete` nothing at all is written (PruneRefused), otherwise that sink is applied
  without its deletes and the refusal is reported.

Every sink is listed and planned before any sink is written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from obsctl.errors import PermanentError, Problem, PruneRefused, TemporaryError
from obsctl.model import conventions as cv
from obsctl.model.artifact import Artifact, Kind, Observed, kind_of
from obsctl.model.status import owner_key
from obsctl.reconcile.apply import ApplyResult, Outcome, RetryPolicy, apply_plan
from obsctl.reconcile.plan import Action, Change, Plan, make_plan
from obsctl.sinks.base import ListsScoped, Reloads, Sink
from obsctl.spec.load import LoadResult

ALL_KINDS = frozenset(Kind)


@dataclass(frozen=True)
class Policy:
    """How one converge may act; plain values the entry points derive from flags and settings."""

    selection: frozenset[Kind] = ALL_KINDS  # kinds in scope, for writes and prunes alike
    prune: bool = True  # the catalog read was complete (and the user did not say --no-prune)
    protected: frozenset[str] = frozenset()  # owner keys (namespace/name) whose artifacts are kept
    # owner keys whose artifacts stay exactly as the sink holds them (an entity that loaded without one of
    # its SLOs): never updated nor deleted; only an artifact the sink does not hold yet is written
    frozen_owners: frozenset[str] = frozenset()
    max_delete_fraction: float = 0.5
    allow_mass_delete: bool = False
    strict_mass_delete: bool = False  # a refused prune anywhere: raise before any write (one-off commands)
    apply: bool = True  # False: list and plan only (plan, GET /plan)
    max_parallelism: int = 8
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # artifact ids that may have changed since the last converge (None: all): only these are planned
    # and written; the mass-delete guard still counts everything the sink owns
    scope: frozenset[str] | None = None


def _no_scope(_sink: Sink, _writes: int) -> contextlib.AbstractContextManager[object]:
    return contextlib.nullcontext()


@dataclass
class Hooks:
    """What a caller that keeps state between runs adds (the reconcile loop); defaults suit one-off commands."""

    deep: Callable[[Sink], bool] = lambda _sink: True  # list this sink deep?
    owner_of: Callable[[Sink, str], str] = lambda _sink, _aid: ""  # owner when the sink keeps no mark
    hold: Callable[[Sink, Change], bool] = lambda _sink, _change: False  # skip this write for now
    proceed: Callable[[], bool] = lambda: True  # checked before each sink's writes (leadership)
    apply_scope: Callable[[Sink, int], contextlib.AbstractContextManager[object]] = _no_scope  # e.g. a span
    on_outcome: Callable[[Outcome], None] | None = None  # hears each write as it lands (a progress line)
    applied: Callable[[SinkRun], None] = lambda _run: None  # one sink's apply ended (record it right away)


@dataclass
class SinkRun:
    """What converge did with one sink."""

    sink: Sink
    desired: dict[str, Artifact]  # this sink's part of the selection
    deep: bool = False
    listed: bool = True
    error: str = ""
    owned: dict[str, Observed] = field(default_factory=dict)  # the whole listing, selection or not
    plan: Plan = field(default_factory=Plan)
    held: list[Change] = field(default_factory=list)
    prune_refused: str = ""
    result: ApplyResult | None = None  # None: not applied (dry run, listing failed, stopped)

    @property
    def stale(self) -> str:
        """Why the backend runs an older config than obsctl wrote (its last reload failed), or ""."""
        return self.sink.stale() if isinstance(self.sink, Reloads) else ""

    @property
    def name(self) -> str:
        """The sink's name."""
        return self.sink.name

    @property
    def failed(self) -> list[Outcome]:
        """Outcomes that did not apply."""
        return self.result.failed if self.result is not None else []


@dataclass
class ConvergeReport:
    """Every sink's run, in sink order."""

    runs: list[SinkRun] = field(default_factory=list)
    stopped: bool = False  # hooks.proceed() said stop before every sink was written

    @property
    def complete(self) -> bool:
        """Every sink was listed (and so planned)."""
        return all(r.listed for r in self.runs)

    @property
    def failed(self) -> list[tuple[str, Outcome]]:
        """(sink name, outcome) of every change that did not apply."""
        return [(r.name, o) for r in self.runs for o in r.failed]

    @property
    def prune_refused(self) -> list[str]:
        """`sink: reason` of every refused prune."""
        return [f"{r.name}: {r.prune_refused}" for r in self.runs if r.prune_refused]


def select(desired: Mapping[str, Artifact], kinds: Collection[Kind]) -> dict[str, Artifact]:
    """The artifacts of the given kinds."""
    return {aid: a for aid, a in desired.items() if a.kind in kinds}


def _in_scope(aid: str, sink: Sink, selection: frozenset[Kind]) -> bool:
    kind = kind_of(aid)
    return kind is not None and kind in selection and kind in sink.kinds


def _protected(policy: Policy, owner: str) -> bool:
    kept = policy.protected | policy.frozen_owners
    if not kept:
        return False
    return not owner or owner_key(owner) in kept  # unknown owner: it may be a carried entity's


def _plan_inputs(mine: Mapping[str, Artifact], owned: Mapping[str, Observed], sink: Sink, policy: Policy,
                 hooks: Hooks) -> tuple[dict[str, Artifact], dict[str, Observed]]:
    """What to plan: the desired artifacts (less the frozen owners' that exist) and the owned ones that may
    be updated or deleted (desired, or in the selection and not protected)."""
    if policy.frozen_owners:
        mine = {aid: art for aid, art in mine.items()
                if not (aid in owned and owner_key(art.owner) in policy.frozen_owners)}
    return dict(mine), prune_candidates(owned, mine, sink, policy, hooks)


def prune_candidates(owned: Mapping[str, Observed], desired: Container[str], sink: Sink, policy: Policy,
                     hooks: Hooks) -> dict[str, Observed]:
    """The owned artifacts a plan may update or delete: desired ones, and the others of the selection whose
    owner is not protected (what is left of them after the desired ones is the prune)."""
    return {aid: obs for aid, obs in owned.items()
            if aid in desired or (_in_scope(aid, sink, policy.selection)
                                  and not _protected(policy, obs.owner or hooks.owner_of(sink, aid)))}


def list_into(run: SinkRun, listing: Callable[[], Mapping[str, Observed]]) -> bool:
    """`run.owned` from `listing`; False (the run marked not listed, its error kept) when it fails: the other
    sinks go on, and nothing of this one is planned or pruned."""
    try:
        run.owned = dict(listing())
    except (TemporaryError, PermanentError) as exc:
        run.listed, run.error = False, f"list_owned failed: {exc}"
        return False
    except Exception as exc:  # OSError or a sink bug
        run.listed, run.error = False, f"list_owned failed: {type(exc).__name__}: {exc}"
        return False
    return True


def plan_sink(sink: Sink, desired: Mapping[str, Artifact], policy: Policy, hooks: Hooks | None = None) -> SinkRun:
    """Prepare, list and plan one sink (no writes)."""
    hooks = hooks or Hooks()
    mine = select(desired, sink.kinds & policy.selection)
    run = SinkRun(sink, mine)
    run.deep = hooks.deep(sink)

    def listing() -> Mapping[str, Observed]:
        sink.prepare(mine.values())
        if policy.scope is not None and isinstance(sink, ListsScoped):  # the rest is counted, not planned
            return sink.list_scoped(policy.scope, run.deep)
        return sink.list_owned(run.deep)

    if not list_into(run, listing):
        return run
    mine, candidates = _plan_inputs(mine, run.owned, sink, policy, hooks)
    count = None
    if policy.scope is not None:  # the plan restricted to the ids in scope; the mass-delete guard counts all
        count = len(candidates)
        mine = {aid: mine[aid] for aid in policy.scope if aid in mine}
        candidates = {aid: candidates[aid] for aid in policy.scope if aid in candidates}
    try:
        run.plan = make_plan(mine, candidates, prune=policy.prune, max_delete_fraction=policy.max_delete_fraction,
                             allow_mass_delete=policy.allow_mass_delete, owned_count=count)
    except PruneRefused as exc:
        run.prune_refused = str(exc)
        run.plan = make_plan(mine, candidates, prune=False)
    run.held = [c for c in run.plan.writes if hooks.hold(sink, c)]
    return run


def apply_run(run: SinkRun, policy: Policy, hooks: Hooks | None = None) -> None:
    """Apply one planned sink run (its held changes left out)."""
    hooks = hooks or Hooks()
    held = {c.id for c in run.held}
    todo = Plan([c for c in run.plan.changes if c.id not in held])
    parallelism = max(1, min(run.sink.contract.parallelism, policy.max_parallelism))
    with hooks.apply_scope(run.sink, len(todo.writes)):
        run.result = apply_plan(run.sink, todo, policy.retry, parallelism=parallelism, on_outcome=hooks.on_outcome)
    hooks.applied(run)


def converge(desired: Mapping[str, Artifact], sinks: Sequence[Sink], policy: Policy,
             hooks: Hooks | None = None) -> ConvergeReport:
    """List and plan every sink, then (unless a dry run) apply each plan. Never deletes outside the policy.

    Raises PruneRefused before any write when `policy.strict_mass_delete` and a plan was refused.
    """
    hooks = hooks or Hooks()
    return apply_report(ConvergeReport([plan_sink(s, desired, policy, hooks) for s in sinks]), policy, hooks)


def apply_report(report: ConvergeReport, policy: Policy, hooks: Hooks) -> ConvergeReport:
    """Apply every listed sink's plan in turn (unless a dry run), until `hooks.proceed()` says stop.

    Raises PruneRefused before any write when `policy.strict_mass_delete` and a plan was refused.
    """
    if policy.strict_mass_delete and report.prune_refused:
        raise PruneRefused(next(r.prune_refused for r in report.runs if r.prune_refused))
    if not policy.apply:
        return report
    for run in report.runs:
        if not run.listed:
            continue
        if not hooks.proceed():
            report.stopped = True
            break
        apply_run(run, policy, hooks)
    return report


def protected_owners(skipped: Iterable[str]) -> frozenset[str]:
    """Owner keys of the entity refs among a loader's skipped labels (documents without a ref are left out)."""
    return frozenset(owner_key(ref) for ref in skipped if cv.names_entity(ref))


def carry_forward(result: LoadResult) -> tuple[frozenset[str], frozenset[str], bool]:
    """For a one-off read: (entities whose artifacts stay, entities whose artifacts stay as they are,
    whether pruning is safe).

    A skipped entity keeps its artifacts; one that loaded without an SLO that has errors keeps them
    unchanged (rewriting them would drop that SLO's alerts). Pruning is safe when every error belongs
    to such an entity; an error it cannot pin on an entity (a file that is not YAML) hides which
    entities the file held, so the read is incomplete and nothing is pruned.
    """
    protected = protected_owners(result.skipped)
    frozen = result.partial_owners()
    return protected, frozen, not unpinned_errors(result, protected | frozen)


def unpinned_errors(result: LoadResult, kept: Collection[str]) -> list[Problem]:
    """The errors of a read not pinned on an entity whose artifacts stay (`kept`: owner keys of the skipped and
    frozen entities): any of them hides what its file held, so the read is incomplete."""
    return [p for p in result.errors if not (p.entity and owner_key(p.entity) in kept)]


def changes_as_dicts(plan: Plan, diffs: bool = True) -> list[dict[str, str]]:
    """The writes of a plan as JSON-able rows (diffs for updates)."""
    return [{"action": c.action.value, "id": c.id, "path": c.path,
             **({"diff": c.diff()} if diffs and c.action is Action.UPDATE else {})} for c in plan.writes]
