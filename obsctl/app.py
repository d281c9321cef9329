"""Composition shared by the CLI and the service: settings -> templates, options, catalog, sinks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from obsctl.config import Settings
from obsctl.errors import ConfigError, Problem, Severity
from obsctl.model import conventions as cv
from obsctl.model.artifact import DesiredState, Kind
from obsctl.model.durations import format_duration, parse_duration
from obsctl.model.entities import Catalog, EntityRef, Service
from obsctl.model.source import SourceFile
from obsctl.reconcile.apply import RetryPolicy
from obsctl.reconcile.converge import ALL_KINDS, Hooks, Policy, carry_forward, unpinned_errors
from obsctl.render import render_all
from obsctl.render.options import (
    CatalogIntegration,
    HeldRoutes,
    KubernetesOptions,
    ReceiverSpec,
    RenderOptions,
    TeamRouting,
)
from obsctl.sources.directory import read_directory, read_template_tree
from obsctl.spec.load import CatalogLoader, LoadResult, load_catalog
from obsctl.spec.templates import Templates, parse_templates

if TYPE_CHECKING:  # backends load when a command composes them: validate and render stay fast
    from obsctl.reconcile.routes_in_place import Unkept
    from obsctl.reconcile.stream import StreamedConverge
    from obsctl.sinks.base import Sink
    from obsctl.sinks.files import FilesSink
    from obsctl.sinks.grafana import GrafanaSink
    from obsctl.sources.base import CombinedSource
    from obsctl.sources.registrations import RegistrationReader


def load_templates(settings: Settings) -> Templates:
    """The platform data folders, parsed."""
    return parse_templates(read_template_tree(settings.templates_dir))


def _routing(page: list[object], ticket: list[object]) -> TeamRouting:
    def conv(items: list[object]) -> tuple[ReceiverSpec, ...]:
        return tuple(ReceiverSpec(r.name, r.type, tuple(sorted(r.settings.items())))  # type: ignore[attr-defined]
                     for r in items)
    return TeamRouting(conv(page), conv(ticket))


def _catalog_integrations(settings: Settings) -> tuple[CatalogIntegration, ...]:
    found = []
    for kind in ("pagerduty", "opsgenie", "slack"):
        item = getattr(settings.alerting.catalog, kind)
        if item is not None:
            found.append(CatalogIntegration(kind, tuple(item.severities), tuple(sorted(item.settings.items()))))
    return tuple(found)


def rendered_kinds(settings: Settings) -> frozenset[Kind]:
    """settings.outputs plus every kind a configured backend sink applies.

    A sink whose kinds were not rendered would find nothing desired and prune everything it owns.
    """
    kinds = set(settings.outputs)
    if settings.ruler.url:
        kinds.add(Kind.RULER_GROUP)
    if settings.prometheus.rules_dir is not None:
        kinds.add(Kind.PROMETHEUS_RULES)
    if settings.alerting.config_dir is not None:
        kinds.add(Kind.ALERTMANAGER_CONFIG)
    if settings.grafana.url:
        kinds |= {Kind.GRAFANA_FOLDER, Kind.GRAFANA_DASHBOARD}
    return frozenset(kinds)


def _dependency_group_wait(settings: Settings) -> str:
    wait = parse_duration(settings.alerting.dependency_wait)
    return format_duration(parse_duration(settings.alerting.group_wait) + wait) if wait > 0 else ""


def render_options(settings: Settings) -> RenderOptions:
    """Plain values for the renderers."""
    teams = tuple(sorted((name, _routing(list(t.page), list(t.ticket)))
                         for name, t in settings.alerting.teams.items()))
    return RenderOptions(
        grafana_url=settings.grafana.public_url.rstrip("/"),
        prometheus_url=settings.prometheus.public_url.rstrip("/"),
        catalog_url=settings.backstage.public_url.rstrip("/"),
        traces_datasource_uid=settings.grafana.traces_datasource_uid,
        logs_datasource_uid=settings.grafana.logs_datasource_uid,
        environment=settings.environment,
        teams=teams,
        default_routing=_routing(list(settings.alerting.default.page), list(settings.alerting.default.ticket)),
        catalog_integrations=_catalog_integrations(settings),
        collector=tuple(sorted(settings.collector.items())),
        group_wait=settings.alerting.group_wait,
        group_interval=settings.alerting.group_interval,
        repeat_interval=settings.alerting.repeat_interval,
        dependency_group_wait=_dependency_group_wait(settings),
        outputs=rendered_kinds(settings),
        kubernetes=KubernetesOptions(
            rules_namespace=settings.kubernetes.rules_namespace,
            labels=tuple(sorted(settings.kubernetes.labels.items())),
            annotations=tuple(sorted(settings.kubernetes.annotations.items())),
            collector_image=settings.kubernetes.collector_image,
            grafana_namespace=settings.kubernetes.grafana_namespace,
            grafana_instance_labels=tuple(sorted(settings.kubernetes.grafana_instance_labels.items()))),
    )


@dataclass
class Rendered:
    """A loaded catalog and what it renders to."""

    load: LoadResult
    desired: DesiredState


def load_path(path: Path, settings: Settings, templates: Templates, *, routing: bool = True) -> LoadResult:
    """Load a catalog directory (or file); with `routing`, teams whose alerts have no destination are errors."""
    result = load_catalog(read_directory(path, settings.catalog.globs), templates, settings.environment)
    return check_routing(result, templates, render_options(settings)) if routing else result


ALERTING_KINDS = frozenset({Kind.PROMETHEUS_RULES, Kind.PROMETHEUS_RULE_CRD, Kind.RULER_GROUP,
                            Kind.ALERTMANAGER_CONFIG})


def alerting_selected(selection: frozenset[Kind]) -> bool:
    """Whether a render selection writes alerts or their routes: then their routing is checked."""
    return bool(selection & ALERTING_KINDS)


def check_routing(result: LoadResult, templates: Templates, options: RenderOptions) -> LoadResult:
    """Move the services whose alerts would reach no receiver to `skipped`, with an error naming team and severity.

    Only that team's services are held back: every other team renders (and `serve` keeps the held
    services' last good artifacts), so one team's missing receiver is that team's problem. A platform
    that does not have obsctl render its Alertmanager config (outputs) routes alerts itself: no check.
    """
    from obsctl.render.routes import routing_problems, stray_team_settings

    if Kind.ALERTMANAGER_CONFIG not in options.outputs:
        return result
    result.problems.extend(stray_team_settings(result.catalog, options))
    return _held_back(result, routing_problems(result.catalog, templates, options))


def _held_back(result: LoadResult, problems: list[Problem]) -> LoadResult:
    """`result` with the services the routing problems name moved to `skipped`, and the problems added."""
    if not problems:
        return result
    lost = {p.entity for p in problems}
    services = tuple(s for s in result.catalog.services if str(s.ref) not in lost)
    held = tuple(s for s in result.catalog.services if str(s.ref) in lost)
    return LoadResult(replace(result.catalog, services=services), [*result.problems, *problems],
                      sorted({*result.skipped, *lost}), (*result.held_back, *held))


def hold_routes(result: LoadResult, lost: dict[EntityRef, Problem] | None = None, *, whole: bool = True,
                why: str = "", not_in_place: Collection[EntityRef] = ()) -> bool:
    """Whether some team's routing is lost in this read (`lost`, by default `lost_routing`), adding a warning per
    such team that says what a one-off command does about it: with no memory of the team's last good Group, the
    config in place holds its last good route. `whole`: the whole Alertmanager config is kept as it is (neither
    written nor pruned: the config in place could not be read completely); otherwise only the team's route and
    receivers are kept as the config in place has them, and every other team is rendered from the catalog.
    `why`: what made the whole config be kept (`routes_in_place.Unkept`), said in the warning.
    `not_in_place`: held teams the config in place has no route for (nothing of theirs is kept: the warning says
    what this read renders for them instead).
    `serve` keeps the last good Group instead (reconcile.desired)."""
    from obsctl.reconcile.routes_in_place import carried_service, lost_routing, nothing_in_place

    lost = lost_routing(result) if lost is None else lost
    why = why or "the config in place could not be read"
    what = (f"the Alertmanager config is kept as it is (not written: {why})" if whole else
            "this team's route and receivers are kept as the Alertmanager config in place has them (the other teams "
            "follow the catalog)")
    rendered = {cv.team_label(s.team) for s in result.catalog.services}
    for team, p in sorted(lost.items(), key=lambda kv: str(kv[0])):
        carried = carried_service(p)  # routes_in_place.carried_teams: the team's routing is not lost, it is held
        if not whole and team in not_in_place:
            message = (f"{nothing_in_place(cv.team_label(team) in rendered)}: " +
                       (f"{p.entity} keeps its last good alerts in this run (see its errors)" if carried else
                        "this team's routing is lost in this catalog read (see its errors)"))
        elif carried:
            message = f"{what}: {_carried_cause(p.entity)}"
        else:
            message = (f"{what}: this team's routing is lost in this catalog read (see its errors); its alerts keep "
                       "their last good route until it is fixed")
        result.problems.append(Problem(p.file, p.line, str(team), "routing", message, Severity.WARNING))
    return bool(lost)


def _carried_cause(entity: str) -> str:
    """Why a carried service's team keeps its routes (said in the routing warnings)."""
    return (f"{entity} keeps its last good alerts in this run (see its errors), so the routes they follow are held "
            "with them until it is fixed")


def _carried_whole(result: LoadResult, carried: frozenset[str], why: str) -> None:
    """A warning per service whose carried alerts made a one-off run keep the whole Alertmanager config (`why`:
    the config in place could not be read, so its team's routes could not be taken from it alone)."""
    from obsctl.model.status import owner_key
    from obsctl.reconcile.routes_in_place import carried_service

    named = {p.entity: p for p in reversed(result.errors) if carried_service(p) and owner_key(p.entity) in carried}
    for entity, p in sorted(named.items()):
        result.problems.append(Problem(p.file, p.line, entity, "routing", (
            f"the Alertmanager config is kept as it is (not written: {why}): {_carried_cause(entity)}"),
            Severity.WARNING))


def held_routes(result: LoadResult, sinks: list[Sink], carried: frozenset[str] = frozenset()
                ) -> tuple[tuple[HeldRoutes, ...], dict[EntityRef, Problem]] | Unkept:
    """`routes_in_place.held_routes` of a complete one-off read (an incomplete one keeps the whole config), the
    config in place read from `sinks`; `carried`: owner keys of the entities whose artifacts the run keeps
    (`carry_forward`): their services' teams keep their routes as they are, as their alerts do."""
    from obsctl.reconcile.routes_in_place import config_in_place
    from obsctl.reconcile.routes_in_place import held_routes as held_in_place

    return held_in_place(result, lambda: config_in_place(sinks), complete=True, carried=carried)


def render_files(files: list[SourceFile], settings: Settings, templates: Templates,
                 only: list[str] | None = None) -> Rendered:
    """Load and render catalog files."""
    options = render_options(settings)
    result = check_routing(load_catalog(files, templates, settings.environment), templates, options)
    return Rendered(result, render_all(result.catalog, templates, options, only))


def converge_path(path: Path, settings: Settings, templates: Templates, sinks: list[Sink], *,
                  only: frozenset[Kind] | None = None, no_prune: bool = False, allow_mass_delete: bool = False,
                  apply: bool = True, diffs: bool = False, hooks: Hooks | None = None,
                  phase: Callable[[str], None] | None = None) -> tuple[LoadResult, StreamedConverge]:
    """A one-off command (render --out, plan, apply): load a catalog path, render the selected kinds
    (settings' outputs narrowed by `only`) and converge the sinks once, streamed over every core.

    Entities skipped for spec errors keep what they own; an error that names no entity means the read
    was incomplete, so nothing is pruned. A refused mass deletion stops the command before any write.
    `phase` (a progress line) hears what is being done.
    """
    from obsctl.reconcile.routes_in_place import Unkept
    from obsctl.reconcile.stream import converge_catalog

    options = render_options(settings)
    selection = options.outputs & (only if only is not None else ALL_KINDS)
    if phase:
        phase("loading the catalog")
    result = load_path(path, settings, templates, routing=alerting_selected(selection))
    protected, frozen, complete = carry_forward(result)
    if Kind.ALERTMANAGER_CONFIG in selection and not complete:
        # an error that names no entity hides which services (own routes, dependencies) and teams the file held:
        # rendering the config without them would drop their routes, as a prune would their files
        first = unpinned_errors(result, protected | frozen)[0]
        result.problems.append(Problem(first.file, first.line, first.entity, "routing", (
            "the Alertmanager config is kept as it is (not written): this catalog read is incomplete, so the "
            "routes of what this error hides would be dropped"), Severity.WARNING))
        selection -= {Kind.ALERTMANAGER_CONFIG}
    if Kind.ALERTMANAGER_CONFIG in selection:
        # only the teams whose routing is lost keep their part of the config in place; the whole config only when
        # that cannot be read completely
        held = held_routes(result, sinks, protected | frozen)
        if isinstance(held, Unkept):
            if not hold_routes(result, whole=True, why=held.reason):
                _carried_whole(result, protected | frozen, held.reason)
            selection -= {Kind.ALERTMANAGER_CONFIG}
        elif held[1]:
            hold_routes(result, held[1], whole=False, not_in_place={h.team for h in held[0] if not h.route_text})
            options = dataclasses.replace(options, held_routes=held[0])
    policy = Policy(selection=selection, prune=complete and not no_prune, protected=protected, frozen_owners=frozen,
                    max_delete_fraction=settings.serve.max_delete_fraction, allow_mass_delete=allow_mass_delete,
                    strict_mass_delete=True, apply=apply, retry=RetryPolicy())
    if phase:
        phase(f"rendering {len(result.catalog.services)} services and comparing them with what is there")
    return result, converge_catalog(result.catalog, templates, dataclasses.replace(options, outputs=selection),
                                    sinks, policy=policy, hooks=hooks, diffs=diffs)


# -- serve composition ----------------------------------------------------------------------------


def build_sinks(settings: Settings) -> list[Sink]:
    """Every sink `obsctl serve` reconciles, in apply order.

    A backend sink registers itself here with one line (it then owns its kinds); every kind no
    sink claims goes to plain files under settings.out_dir. Sink names must be unique.
    """
    from obsctl.sinks.collectors import collector_sink
    from obsctl.sinks.files import FilesSink

    sinks: list[Sink] = []
    sinks.append(collector_sink(settings.out_dir, settings.otelcol_binary or None))
    if settings.grafana.url:
        sinks.append(grafana_sink_from_settings(settings))
    sinks.extend(alerting_sinks(settings))
    claimed: set[Kind] = set()
    for sink in sinks:
        claimed |= sink.kinds
    rest = frozenset(Kind) - claimed
    if rest:
        sinks.append(FilesSink(settings.out_dir, rest, name="files"))
    return sinks


def directory_sink(settings: Settings, out: Path) -> FilesSink:
    """Every artifact as a file under out (`render --out`); collector configs checked by the real
    collector first when settings.otelcol_binary is set."""
    from obsctl.sinks.collectors import otelcol_validator
    from obsctl.sinks.files import FilesSink

    return FilesSink(out, validate=otelcol_validator(settings.otelcol_binary) if settings.otelcol_binary else None)


def alerting_sinks(settings: Settings) -> list[Sink]:
    """Rule files (+ Prometheus reload), the ruler API and the Alertmanager config, where configured."""
    from obsctl.sinks.alertmanager import AlertmanagerSink
    from obsctl.sinks.rulefiles import RuleFilesSink
    from obsctl.sinks.ruler import RulerSink

    sinks: list[Sink] = []
    p, a, r = settings.prometheus, settings.alerting, settings.ruler
    if p.rules_dir is not None:
        sinks.append(RuleFilesSink(p.rules_dir, p.url, p.promtool))
    if r.url:
        sinks.append(RulerSink(r.url, r.tenant, r.api_token()))
    if a.config_dir is not None:
        sinks.append(AlertmanagerSink(a.config_dir, a.alertmanager_url, a.amtool))
    return sinks


def grafana_sink_from_settings(settings: Settings) -> GrafanaSink:
    """The Grafana API sink (folders and dashboards) from settings.grafana; url must be set."""
    from obsctl.sinks.grafana import GrafanaSink

    g = settings.grafana
    if not g.url:
        raise ConfigError("grafana.url is not set (OBSCTL_GRAFANA__URL)")
    return GrafanaSink(g.url, g.api_token(), org_id=g.org_id, drift_policy=g.drift_policy,
                       parallelism=g.parallelism, deep_check_seconds=g.deep_check_seconds)


def build_source(settings: Settings, registrations: RegistrationReader | None = None) -> CombinedSource:
    """The catalog sources named in settings.serve.sources, read as one catalog."""
    from obsctl.sources.backstage import BackstageSource
    from obsctl.sources.base import CatalogSource, CombinedSource
    from obsctl.sources.directory import DirectorySource
    from obsctl.sources.registrations import RegistrationSource

    parts: list[CatalogSource] = []
    for name in settings.serve.sources:
        if name == "directory":
            parts.append(DirectorySource(settings.catalog.path, settings.catalog.globs))
        elif name == "api" and registrations is not None:
            parts.append(RegistrationSource(registrations))
        elif name == "backstage" and settings.backstage.url:
            parts.append(BackstageSource(settings.backstage.url, settings.backstage.api_token(),
                                         poll_seconds=settings.backstage.poll_seconds))
    return CombinedSource(parts)


class RoutingCheck:
    """`check_routing` for a loader that loads again what changed: each team is checked again only when
    one of its services or its Group changed (a team's verdict reads nothing else)."""

    def __init__(self, templates: Templates, options: RenderOptions) -> None:
        self.templates = templates
        self.options = options
        self._team_of: dict[EntityRef, EntityRef] = {}  # service ref -> its team
        self._members: dict[EntityRef, dict[EntityRef, Service]] = {}  # team -> its services by ref
        self._problems: dict[EntityRef, list[Problem]] = {}  # team -> its routing problems

    def check(self, result: LoadResult, loader: CatalogLoader) -> LoadResult:
        """As check_routing(result, ...), `result` being `loader`'s last load."""
        from obsctl.render.routes import routing_problems

        if Kind.ALERTMANAGER_CONFIG not in self.options.outputs:
            return result
        changed, changed_teams = loader.changed_refs, loader.changed_teams
        if changed is None or changed_teams is None:
            self._team_of, self._members, self._problems = {}, {}, {}
            for each in result.catalog.services:
                self._team_of[each.ref] = each.team
                self._members.setdefault(each.team, {})[each.ref] = each
            changed, teams = frozenset(), set(self._members)
        else:
            teams = set(changed_teams)
        for ref in changed:
            before = self._team_of.pop(ref, None)
            if before is not None:
                teams.add(before)
                former = self._members[before]
                del former[ref]
                if not former:
                    del self._members[before]
            svc = loader.service(ref)
            if svc is not None:
                self._team_of[ref] = svc.team
                self._members.setdefault(svc.team, {})[ref] = svc
                teams.add(svc.team)
        for team in teams:
            members = self._members.get(team)
            group = result.catalog.team(team)
            found = routing_problems(Catalog(tuple(members[r] for r in sorted(members, key=str)),
                                             (group,) if group is not None else ()),
                                     self.templates, self.options) if members else []
            if found:
                self._problems[team] = found
            else:
                self._problems.pop(team, None)
        return _held_back(result, [p for team in sorted(self._problems, key=str) for p in self._problems[team]])


def catalog_loader(templates: Templates, settings: Settings | None = None, *, environment: str | None = None
                   ) -> Callable[[list[SourceFile]], LoadResult]:
    """Bytes -> validated catalog, with the platform templates bound (and the routing check, given settings).

    `environment`: the platform's (default: the settings', else production), which a spec's `environment` label
    must match on a service that names none. The loader keeps its last load: a round loads again only what
    changed (`CatalogLoader`).
    """
    if environment is None:
        environment = settings.environment if settings is not None else "production"
    loader = CatalogLoader(templates, environment)
    if settings is None:
        return loader.load
    check = RoutingCheck(templates, render_options(settings))
    return lambda files: check.check(loader.load(files), loader)


def catalog_renderer(settings: Settings, templates: Templates) -> Callable[[Catalog], DesiredState]:
    """Catalog -> desired artifacts, with templates and render options bound."""
    from obsctl.render.incremental import IncrementalRenderer

    # serve renders on every event: only the services whose inputs changed are rendered again
    return IncrementalRenderer(templates, render_options(settings))
