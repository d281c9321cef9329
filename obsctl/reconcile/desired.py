"""A serve round's desired state: what the catalog says, corrected by what the loop remembers.

The catalog as read is not what a round converges to. `DesiredStates` keeps what earlier rounds
learned and applies four rules to each read:

- carry-forward: a service skipped for spec errors, whose file broke (an error there names no entity:
  not YAML, a document with no name; an error on another entity of the file is that entity's alone),
  or missing from an incomplete read keeps its last good model (so its artifacts stay as they were); a
  service that fails to render keeps its last good artifacts; a team (Group) skipped for errors, whose
  file broke or missing from an incomplete read, and the team of a service the routing check held back
  (which includes a team whose Group was deleted while services still name it: its route ends when
  they move or go), keep their last good Group, so the Alertmanager config routes their alerts where
  it did; with no last good Group (serve
  restarted meanwhile) such a team's route and receivers are taken from the Alertmanager config in
  place (`routes_in_place`), and the whole config is kept as it is when that cannot be read;
- frozen owners: a service that loaded without an SLO that has errors is rendered from its last
  complete model, or, with none, its artifacts stay exactly as the sink holds them;
- deletion grace: a service missing from a complete read is carried forward until it has been absent
  for `grace_seconds` and `grace_reads` complete reads; owners known only from recorded statuses
  (after a restart) are protected the same way; an explicit deregistration (`forget`) skips it;
- held owners: after the state store was found empty, owners the targets hold that the catalog lacks
  are held (never pruned) until registered again or released.

The reconcile loop (`loop.Reconciler`) schedules rounds and converges what this module builds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from opentelemetry import trace

from obsctl.errors import Severity
from obsctl.model import conventions as cv
from obsctl.model.artifact import DesiredState, Kind
from obsctl.model.entities import Catalog, EntityRef, Service, Team
from obsctl.model.source import SourceFile
from obsctl.model.status import owner_key
from obsctl.reconcile.converge import ConvergeReport, protected_owners, unpinned_errors
from obsctl.reconcile.routes_in_place import Unkept, held_routes, nothing_in_place
from obsctl.reconcile.status import Recorder
from obsctl.render.isolated import IsolatedRender
from obsctl.render.options import HeldRoutes
from obsctl.render.routes import routing_team
from obsctl.spec.load import LoadResult

log = logging.getLogger("obsctl.reconcile")

Loader = Callable[[list[SourceFile]], LoadResult]
# A renderer returns the desired state, or an IsolatedRender: the desired state of the services that
# rendered and the located failure of each one that did not.
Renderer = Callable[[Catalog], "DesiredState | IsolatedRender"]


def service_key(svc: Service) -> str:
    """The owner key (`namespace/name`) of a service."""
    return f"{svc.ref.namespace}/{svc.ref.name}"


@dataclass(frozen=True)
class RoutesInPlace:
    """How a round reads the Alertmanager config in place (`routes_in_place.config_in_place` of the sinks) and
    hands the renderer the team parts taken from it (`IncrementalRenderer.hold_routes`)."""

    read: Callable[[], bytes | Unkept]
    hold: Callable[[tuple[HeldRoutes, ...]], None]


@dataclass
class Desired:
    """One round's desired state and why it differs from the catalog as read."""

    catalog: Catalog
    desired: DesiredState
    complete: bool  # the source listed every file and every error names its entity: pruning is safe
    skipped: list[str]
    carried: list[str]
    protected: frozenset[str]  # owner keys whose artifacts must not be pruned
    problems: list[str]
    last_good: dict[str, Service]
    isolated: dict[str, str] = field(default_factory=dict)  # owner key -> render failure
    grace_left: dict[str, float] = field(default_factory=dict)  # absent owner key -> seconds of grace left
    absent: dict[str, tuple[float, int]] = field(default_factory=dict)  # owner key -> (since, complete reads)
    forgotten: set[str] = field(default_factory=set)
    grace_carried: int = 0  # services in the catalog only because their deletion grace runs
    frozen: frozenset[str] = frozenset()  # owner keys loaded without an SLO that has errors, no good model to use
    last_good_teams: dict[EntityRef, Team] = field(default_factory=dict)


class DesiredStates:
    """What the loop remembers between rounds to build each round's desired state (thread-safe)."""

    def __init__(self, load: Loader, render: Renderer, *, grace_seconds: float = 0.0, grace_reads: int = 1,
                 tracer: trace.Tracer | None = None, routes: RoutesInPlace | None = None) -> None:
        self._load = load
        self._render = render
        self._routes = routes
        self._held: tuple[HeldRoutes, ...] = ()  # the held team parts of the last render
        self.grace_seconds = grace_seconds
        self.grace_reads = grace_reads
        self._tracer = tracer or trace.get_tracer("obsctl.reconcile")
        self._lock = threading.RLock()
        self._last_good: dict[str, Service] = {}
        self._last_good_teams: dict[EntityRef, Team] = {}
        self._partial_models: frozenset[str] = frozenset()  # keys whose model in _last_good lacks an SLO
        self._forgotten: set[str] = set()  # deregistered on purpose: no grace, no carry-forward
        self._absent: dict[str, tuple[float, int]] = {}  # owner key -> (absent since, complete reads absent)
        self._render_failures: dict[str, str] = {}
        self._isolated: dict[str, str] = {}  # owner key -> error, as last recorded
        self._adopt = False  # list the targets first and hold what the catalog lacks (state store was empty)
        self._held_owners: set[str] = set()
        self._render_cache: tuple[Catalog, DesiredState] | None = None

    # -- remembered state --------------------------------------------------------------------

    def restore(self, recorder: Recorder) -> None:
        """Absences, isolated services and held owners as recorded (at start, and on becoming leader)."""
        absent = recorder.get_meta("absent_owners")
        isolated = recorder.get_meta("isolated")
        held = recorder.get_meta("held_owners")
        adopt = recorder.get_meta("adopt_targets")
        with self._lock:
            if isinstance(absent, dict):
                self._absent = {str(k): (float(v[0]), int(v[1])) for k, v in absent.items()}
            self._isolated = {str(k): str(v) for k, v in isolated.items()} if isinstance(isolated, dict) else {}
            self._held_owners = {str(k) for k in held} if isinstance(held, list) else set()
            self._adopt = self._adopt or adopt is True

    @property
    def catalog(self) -> Catalog | None:
        """The catalog of the last successful load and render (None before the first one)."""
        cached = self._render_cache
        return cached[0] if cached is not None else None

    @property
    def desired_state(self) -> DesiredState | None:
        """The desired state of the last render (None before the first)."""
        cached = self._render_cache
        return cached[1] if cached is not None else None

    @property
    def held_owners(self) -> list[str]:
        """Owner keys held after the state store was found empty."""
        with self._lock:
            return sorted(self._held_owners)

    def absences(self) -> list[float]:
        """When each absent owner's absence began (its grace ends `grace_seconds` later)."""
        with self._lock:
            return [since for since, _reads in self._absent.values()]

    def forget(self, key: str) -> None:
        """A service removed on purpose (`namespace/name`): never carry it forward or keep it for a grace."""
        with self._lock:
            self._last_good.pop(key, None)
            self._absent.pop(key, None)
            self._forgotten.add(key)

    def adopt_targets(self) -> None:
        """At the next round, hold every owner the targets hold that the catalog lacks."""
        with self._lock:
            self._adopt = True

    def release_held(self, recorder: Recorder | None) -> list[str]:
        """Let the held owners go (they are pruned after the usual grace); the list released."""
        with self._lock:
            released, self._held_owners = sorted(self._held_owners), set()
        if recorder is not None:
            recorder.set_meta("held_owners", [])
        return released

    # -- building ----------------------------------------------------------------------------

    def build(self, files: list[SourceFile], complete: bool, known: Collection[str], now: float) -> Desired:
        """Load and render one read of the catalog, with carry-forward, frozen owners and grace applied.

        `known`: owner keys of every recorded artifact status (owners the targets may still hold).
        """
        with self._tracer.start_as_current_span("catalog.load"):
            result = self._load(files)
        skipped_keys = protected_owners(result.skipped)
        partial = result.partial_owners()
        # a file is broken for the entities it held when an error names none of them (not YAML, a document with no
        # name): an error on one entity (skipped, or loaded without an SLO) is that entity's alone, so another entity
        # deleted from the same file on purpose (a Backstage all.yaml) is deleted, not carried until the file is clean
        broken_files = {p.file for p in result.problems
                        if p.severity is Severity.ERROR and not cv.names_entity(p.entity)}
        current = {service_key(s): s for s in result.catalog.services}
        with self._lock:
            last_good = dict(self._last_good)
            last_good_teams = dict(self._last_good_teams)
            partial_models = set(self._partial_models)
            forgotten = set(self._forgotten) - set(current)  # a re-registered service is back for good
            previous = self._render_cache[1] if self._render_cache is not None else {}
        carried: list[str] = []
        for key in sorted(partial & set(current)):
            # an SLO with errors was left out: render the last complete model rather than drop its alerts
            if key in last_good and key not in partial_models:
                current[key] = last_good[key]
                carried.append(f"{last_good[key].ref} (an SLO has errors: its last good definition is kept)")
        # a file that failed to parse may hold any entity: the read is not whole (as a one-off's carry_forward says)
        whole_read = complete and not unpinned_errors(result, skipped_keys | partial)
        absent: set[str] = set()
        for key in sorted(last_good.keys() - current.keys()):  # a set difference: not a walk of the catalog
            svc = last_good[key]
            if key in forgotten:
                continue
            if key in skipped_keys or svc.origin.file in broken_files or not complete:
                current[key] = svc
                carried.append(str(svc.ref))
            else:
                absent.add(key)
        absent_since = self._absence(absent, complete, now)
        in_grace = {k for k, (since, reads) in absent_since.items() if not self._grace_over(since, reads, now)}
        for key in sorted(in_grace):
            svc = last_good[key]
            current[key] = svc
            carried.append(f"{svc.ref} (absent, in the deletion grace period)")
        grace_carried = len(in_grace)
        frozen = frozenset(k for k, svc in current.items()
                           if (k in partial and svc is not last_good.get(k))
                           or (k in partial_models and svc is last_good.get(k))) if partial or partial_models \
            else frozenset()
        services = tuple(v for _, v in sorted(current.items()))
        teams = {t.ref: t for t in result.catalog.teams}
        kept_teams = self._kept_teams(result, teams, current, last_good_teams, broken_files, complete=complete)
        carried.extend(f"{ref} (its routing: the last good Group is kept until its Group is valid again, or no "
                       "service names the team)" for ref in sorted(kept_teams, key=str))
        # a file that does not parse and that no last good model comes from (after a restart) may hold services
        # with their own routes, or a team's only services: rendering the config without them drops those routes
        remembered = {s.origin.file for s in last_good.values()} | {t.origin.file for t in last_good_teams.values()}
        unknown = sorted(f for f in broken_files if f not in remembered)
        # with every broken file remembered, their last good models stand in for what they held (services carried,
        # Groups kept): only a source that did not list every file can hide a team's Group, so a team routed in
        # place with no Group in the read is held as lost only then (review L2: not a team that never had a Group)
        held, in_place, unkept = ((), (), "") if unknown else self._held_routes(result, kept_teams, complete)
        empty = {h.team for h in held if not h.route_text}  # nothing of the team in place: nothing of it is kept
        rendered = {cv.team_label(s.team) for s in services}
        carried.extend(f"{ref} (its routing: " + (nothing_in_place(cv.team_label(ref) in rendered) if ref in empty else
                                                  "its route and receivers are kept as the Alertmanager config in "
                                                  "place has them") + ")" for ref in sorted(in_place, key=str))
        if kept_teams:
            teams.update(kept_teams)
            catalog = Catalog(services, tuple(teams[ref] for ref in sorted(teams, key=str)))
        else:  # the read's teams as they are (in ref order already)
            catalog = Catalog(services, result.catalog.teams)
        desired, failures = self._rendered(catalog, previous, held)
        whole = bool(unkept) or bool(unknown and any(a.kind is Kind.ALERTMANAGER_CONFIG for a in desired.values()))
        if whole:  # as it is
            desired = {aid: art for aid, art in desired.items() if art.kind is not Kind.ALERTMANAGER_CONFIG}
            carried.append(f"the Alertmanager config (a team's routing is lost and no part of the config in place "
                           f"can be taken for it: {unkept}; it is kept as it is)" if unkept else
                           f"the Alertmanager config ({', '.join(unknown[:3])} does not parse and what it held is not "
                           "known since the start: it is kept as it is)")
        # owners known only from the recorded statuses (after a restart: no model to render) that nothing
        # desired belongs to: their artifacts are kept as they are while in the grace period
        desired_owners = {owner_key(owner) for owner in {a.owner for a in desired.values()}}
        orphans = set(known) - desired_owners - set(current) - forgotten - skipped_keys - set(failures)
        # (after a restart, a file that does not parse may be where they are: such a read does not count)
        absent_since.update(self._absence(orphans, whole_read, now))
        kept_as_is = {k for k in orphans if not self._grace_over(*absent_since[k], now)}
        in_grace |= kept_as_is
        grace_left = {k: max(0.0, absent_since[k][0] + self.grace_seconds - now) for k in in_grace}
        protected = frozenset({k for k in skipped_keys if k not in current} | set(failures) | kept_as_is
                              | ({owner_key(cv.OWNER)} if whole else set()))
        return Desired(catalog, desired, whole_read, list(result.skipped), carried, protected,
                       [str(p) for p in result.problems if p.severity is Severity.ERROR], dict(current),
                       failures, grace_left, absent_since, forgotten, grace_carried, frozen, teams)

    @staticmethod
    def _kept_teams(result: LoadResult, teams: dict[EntityRef, Team], current: dict[str, Service],
                    last_good: dict[EntityRef, Team], broken_files: set[str], *, complete: bool
                    ) -> dict[EntityRef, Team]:
        """The last good Group of each team whose entry is invalid (skipped, its file broken: `broken_files`, missing
        from an incomplete read) or whose services the routing check held back: rendered instead of the read's
        (`teams`)."""
        if not last_good:
            return {}
        kept: dict[EntityRef, Team] = {}
        skipped = set(result.skipped)
        unrouted = {current[key].team for key in {owner_key(p.entity) for p in result.problems
                                                  if p.severity is Severity.ERROR and routing_team(p)}
                    if key in current}
        for ref, team in last_good.items():
            if teams.get(ref) is team:
                continue
            invalid = ref not in teams and (str(ref) in skipped or team.origin.file in broken_files or not complete)
            if invalid or ref in unrouted:
                kept[ref] = team
        return kept

    def _held_routes(self, result: LoadResult, kept: Mapping[EntityRef, Team], complete: bool
                     ) -> tuple[tuple[HeldRoutes, ...], Collection[EntityRef], str]:
        """(the team parts taken from the Alertmanager config in place, the teams they are of, why the whole
        config is kept as it is: "" when it is not) for the teams whose routing this read lost and that have no last
        good Group to route with (`kept`): after a restart, the config in place is their last good route."""
        if self._routes is None:
            return (), (), ""
        found = held_routes(result, self._routes.read, complete=complete, kept=kept)
        if isinstance(found, Unkept):
            return (), (), found.reason
        return found[0], found[1], ""

    def _rendered(self, catalog: Catalog, previous: DesiredState, held: tuple[HeldRoutes, ...] = ()
                  ) -> tuple[DesiredState, dict[str, str]]:
        """The catalog's desired state and render failures (an isolated service keeps its last good artifacts);
        `held`: the team parts the render takes from the config in place."""
        with self._tracer.start_as_current_span("render") as span:
            cached = self._render_cache
            if cached is not None and cached[0] == catalog and held == self._held:
                desired, failures = cached[1], dict(self._render_failures)  # pure: same catalog, same bytes
                span.set_attribute("obsctl.cached", True)
            else:
                if self._routes is not None:
                    self._routes.hold(held)
                self._held = held
                rendered = self._render(catalog)
                if isinstance(rendered, IsolatedRender):
                    desired, failures = rendered.desired, {k: f.error for k, f in rendered.failures.items()}
                else:
                    desired, failures = rendered, {}
                if failures:
                    desired = dict(desired)
                    for aid, art in previous.items():
                        if owner_key(art.owner) in failures and aid not in desired:
                            desired[aid] = art
                    desired = dict(sorted(desired.items()))
                self._render_cache = (catalog, desired)
                self._render_failures = failures
            span.set_attribute("obsctl.artifacts", len(desired))
        return desired, failures

    def _absence(self, absent: set[str], complete: bool, now: float) -> dict[str, tuple[float, int]]:
        """(since, complete reads) of every owner absent now; counts this read when it was complete."""
        with self._lock:
            before = dict(self._absent)
        out: dict[str, tuple[float, int]] = {}
        for key in absent:
            since, reads = before.get(key, (now, 0))
            out[key] = (since, reads + (1 if complete else 0))
        return out

    def _grace_over(self, since: float, reads: int, now: float) -> bool:
        return now - since >= self.grace_seconds and reads >= self.grace_reads

    # -- after a round's read was accepted -----------------------------------------------------

    def commit_absence(self, d: Desired, recorder: Recorder | None) -> None:
        """Keep the absence counts and the isolated services; record and audit what changed."""
        with self._lock:
            self._absent = dict(d.absent)
            self._forgotten -= set(d.last_good)
            before, self._isolated = self._isolated, dict(d.isolated)
        if recorder is None:
            return
        recorder.set_meta("absent_owners", {k: list(v) for k, v in sorted(d.absent.items())})
        if before != d.isolated:
            recorder.set_meta("isolated", dict(sorted(d.isolated.items())))
            for key, error in sorted(d.isolated.items()):
                if before.get(key) != error:
                    log.warning("isolated %s: %s", key, error, extra={"fields": {"service": key}})
                    recorder.audit("obsctl", "isolate", key, {"error": error})
            for key in sorted(set(before) - set(d.isolated)):
                recorder.audit("obsctl", "recover", key, {})

    def accept(self, d: Desired) -> None:
        """The round goes on with `d` (it was not refused): its models are the last good ones now."""
        with self._lock:
            self._last_good = d.last_good
            self._last_good_teams = d.last_good_teams
            self._partial_models = d.frozen

    def held(self, d: Desired, listing: Callable[[], ConvergeReport], recorder: Recorder | None) -> frozenset[str]:
        """Owner keys held after the state store was found empty (listing the targets once to find them).

        `listing` lists every sink (no writes) against `d.desired`.
        """
        with self._lock:
            adopt, held = self._adopt, set(self._held_owners)
        if adopt:
            listed = listing()
            if listed.complete:
                desired_owners = {owner_key(a.owner) for a in d.desired.values()}
                found = {owner_key(o.owner) for run in listed.runs for o in run.owned.values() if o.owner}
                held |= found - desired_owners - d.forgotten
                with self._lock:
                    self._adopt = False
                if recorder is not None:
                    recorder.set_meta("adopt_targets", False)
                if held:
                    log.warning("state store was empty: %d owners found in the targets and not in the catalog "
                                "are held (not pruned) until registered again or released", len(held))
        kept = held - set(d.last_good)  # registered again: back in the catalog
        with self._lock:
            changed = kept != self._held_owners
            self._held_owners = kept
        if changed and recorder is not None:
            recorder.set_meta("held_owners", sorted(kept))
        return frozenset(kept)
