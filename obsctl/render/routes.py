"""The Alertmanager config: a routing tree from catalog ownership, receivers from settings and catalog.

Every team that owns a service gets a route on its `team` label, split by obsctl's own class label
`obsctl_severity` (a spec's `severity: critical` stays as written) into one receiver per severity
the team's alerts can carry. Where a team's alerts of one severity go is decided per severity, in
this order (`resolve`):

1. the team's receivers in the platform settings (`alerting.teams.<team>.<severity>`): settings win;
2. the catalog: the team's Group annotations (`pagerduty.com/service-id`, `opsgenie.com/team`,
   `slack.com/channel`) turned into integrations by `alerting.catalog` in the settings, which holds
   the secrets' file paths; a Component's own `pagerduty.com/service-id` routes that service's
   alerts of that severity to its PagerDuty service (a sub-route on `service`);
3. the platform default for that severity (`alerting.default.<severity>`).

A severity never borrows the other one's receivers. `routing_problems` names every team and
severity whose alerts would reach no integration; the composition turns those into errors on the
team's services (render fails, serve keeps that team's last good artifacts and reports it).
Alerts are grouped per SLO. Inhibition: a firing page mutes the same SLO's tickets, and a faster
tier mutes a slower tier of the same severity. Secrets are only referenced by file
(`routing_key_file`, `service_key_file`, `api_key_file`, `api_url_file`: what Alertmanager 0.25
reads from files); a setting that inlines one is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from obsctl.errors import ConfigError, Problem, Severity
from obsctl.model import conventions as cv
from obsctl.model import yamltext
from obsctl.model.artifact import Artifact, Kind
from obsctl.model.entities import Catalog, EntityRef, Service, Team
from obsctl.model.escape import promql
from obsctl.model.platform import Templates
from obsctl.render.context import RenderContext, ServiceSummary, by_team, summary_of
from obsctl.render.options import CatalogIntegration, HeldRoutes, ReceiverSpec, RenderOptions
from obsctl.render.yamlout import dump_yaml

# The severity a dependency's alert mutes in its dependents (and the one it mutes with); the routes of a
# dependent's alerts of this severity wait `dependency_group_wait` for the dependency's alert to arrive.
DEPENDENCY_MUTED = "page"
GROUP_BY = ["alertname", cv.LABEL_NAMESPACE, cv.LABEL_SERVICE, cv.LABEL_SLO]
SLO_IDENTITY = [cv.LABEL_NAMESPACE, cv.LABEL_SERVICE, cv.LABEL_SLO]

# type -> (Alertmanager config list, {inline secret field: its file field}, required (any of))
INTEGRATIONS: dict[str, tuple[str, dict[str, str], tuple[str, ...]]] = {
    "pagerduty": ("pagerduty_configs", {"routing_key": "routing_key_file", "service_key": "service_key_file"},
                  ("routing_key_file", "service_key_file")),
    "opsgenie": ("opsgenie_configs", {"api_key": "api_key_file"}, ("api_key_file",)),
    "slack": ("slack_configs", {"api_url": "api_url_file"}, ("api_url_file",)),
    # Alertmanager 0.25 has no webhook url_file: the URL is written as is (no credentials in it;
    # use credentials_file for an Authorization header).
    "webhook": ("webhook_configs", {}, ("url",)),
}
BOOL_FIELDS = frozenset({"send_resolved"})
INT_FIELDS = frozenset({"max_alerts"})
OPSGENIE_TEAM_FIELD = "responder_team"  # -> responders: [{type: team, name: ...}]
SERVICE_ID_PLACEHOLDER = "{service_id}"
SEVERITIES = ("page", "ticket")
# catalog annotation each integration type reads, for messages
CATALOG_ANNOTATIONS = {"pagerduty": "pagerduty.com/service-id", "opsgenie": "opsgenie.com/team",
                       "slack": "slack.com/channel"}
AUTH_FILE_FIELD = "credentials_file"  # -> http_config.authorization.credentials_file
_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@")


def matcher(label: str, value: str, op: str = "=") -> str:
    """An Alertmanager matcher with the value quoted and escaped."""
    return f"{label}{op}{promql.string(value)}"


def integration(spec: ReceiverSpec) -> tuple[str, dict[str, Any]]:
    """(Alertmanager config list name, one integration config) of a receiver spec; ConfigError if unsafe."""
    if spec.type not in INTEGRATIONS:
        raise ConfigError(f"receiver {spec.name!r}: unknown type {spec.type!r}; "
                          f"use one of {', '.join(sorted(INTEGRATIONS))}")
    list_name, secrets, required = INTEGRATIONS[spec.type]
    cfg: dict[str, Any] = {}
    for key, value in spec.settings:
        if key in secrets:
            raise ConfigError(f"receiver {spec.name!r}: {key} would inline a secret into the Alertmanager config; "
                              f"set {secrets[key]} to a file holding it")
        if key == "url" and _USERINFO.match(value):
            raise ConfigError(f"receiver {spec.name!r}: url carries credentials; use {AUTH_FILE_FIELD}")
        if key in BOOL_FIELDS:
            if value.lower() not in ("true", "false"):
                raise ConfigError(f"receiver {spec.name!r}: {key} must be true or false")
            cfg[key] = value.lower() == "true"
        elif key in INT_FIELDS:
            try:
                cfg[key] = int(value)
            except ValueError:
                raise ConfigError(f"receiver {spec.name!r}: {key} must be an integer") from None
        elif key == OPSGENIE_TEAM_FIELD and spec.type == "opsgenie":
            cfg["responders"] = [{"name": value, "type": "team"}]
        elif key == AUTH_FILE_FIELD:
            cfg["http_config"] = {"authorization": {"credentials_file": value}}
        else:
            cfg[key] = value
    if not any(k in cfg for k in required):
        raise ConfigError(f"receiver {spec.name!r} ({spec.type}) needs {' or '.join(required)}")
    return list_name, dict(sorted(cfg.items()))


def receiver(name: str, specs: tuple[ReceiverSpec, ...]) -> dict[str, Any]:
    """One Alertmanager receiver holding every integration of `specs` (none: notifications are dropped)."""
    out: dict[str, Any] = {"name": name}
    for spec in specs:
        list_name, cfg = integration(spec)
        out.setdefault(list_name, []).append(cfg)
    return out


def _tier_inhibitions(templates: Templates) -> list[dict[str, Any]]:
    """Faster tier mutes slower tier of the same severity, for pairs ordered alike in every window table.

    Each pair is matched on `tier` and again on `obsctl_tier`, where obsctl writes the tier when a spec uses
    the label `tier` itself (Sloth's own examples do: `tier: "2"`, the service tier); the tiers of one SLO and
    severity carry the same spec labels, so their tier names sit under the same one of the two.
    """
    pairs: dict[tuple[str, str], bool] = {}
    for table in templates.windows.values():
        for a in table.tiers:
            for b in table.tiers:
                if a.name == b.name or a.severity != b.severity:
                    continue
                faster = a.long_window_s < b.long_window_s
                pairs[(a.name, b.name)] = pairs.get((a.name, b.name), True) and faster
    rules = []
    for label in (cv.LABEL_TIER, cv.own_label(cv.LABEL_TIER, {cv.LABEL_TIER})):
        for (fast, slow), ok in sorted(pairs.items()):
            if ok:
                rules.append({"source_matchers": [matcher(label, fast)],
                              "target_matchers": [matcher(label, slow)],
                              "equal": [*SLO_IDENTITY, cv.LABEL_SEVERITY_CLASS]})
    return rules


def _catalog_specs(integrations: tuple[CatalogIntegration, ...], severity: str, *, service_id: str = "",
                   opsgenie_team: str = "", slack_channel: str = "") -> tuple[ReceiverSpec, ...]:
    """The integrations the platform maps from these annotation values, for one severity."""
    out = []
    for ci in integrations:
        if severity not in ci.severities:
            continue
        settings = dict(ci.settings)
        if ci.type == "pagerduty" and service_id:
            settings = {k: v.replace(SERVICE_ID_PLACEHOLDER, service_id) for k, v in settings.items()}
        elif ci.type == "opsgenie" and opsgenie_team:
            settings[OPSGENIE_TEAM_FIELD] = opsgenie_team
        elif ci.type == "slack" and slack_channel:
            settings["channel"] = slack_channel if slack_channel.startswith("#") else f"#{slack_channel}"
        else:
            continue
        out.append(ReceiverSpec(f"catalog-{ci.type}", ci.type, tuple(sorted(settings.items()))))
    return tuple(out)


def resolve(team: EntityRef, group: Team | None, severity: str,
            options: RenderOptions) -> tuple[tuple[ReceiverSpec, ...], str]:
    """(integrations, where they came from: settings, catalog, default or none) of a team's severity."""
    own: tuple[ReceiverSpec, ...] = getattr(options.team_settings(cv.team_label(team)), severity)
    if own:
        return own, "settings"
    if group is not None:
        found = _catalog_specs(options.catalog_integrations, severity, service_id=group.pagerduty_service_id,
                               opsgenie_team=group.opsgenie_team, slack_channel=group.slack_channel)
        if found:
            return found, "catalog"
    default: tuple[ReceiverSpec, ...] = getattr(options.default_routing, severity)
    return (default, "default") if default else ((), "none")


def service_specs(svc: ServiceSummary, severity: str, options: RenderOptions) -> tuple[ReceiverSpec, ...]:
    """A service's own PagerDuty routing for one severity (pagerduty.com/service-id on its Component).

    Empty when the team's settings name receivers for that severity (settings win) or the
    platform maps no PagerDuty integration for it.
    """
    if not svc.pagerduty_service_id or getattr(options.team_settings(cv.team_label(svc.team)), severity):
        return ()
    pd = tuple(ci for ci in options.catalog_integrations if ci.type == "pagerduty")
    return _catalog_specs(pd, severity, service_id=svc.pagerduty_service_id)


def team_severities(summaries: Sequence[ServiceSummary]) -> dict[EntityRef, dict[str, list[ServiceSummary]]]:
    """Per owning team, per severity its alerts can carry, the services that emit it."""
    out: dict[EntityRef, dict[str, list[ServiceSummary]]] = {}
    for svc in sorted(summaries, key=lambda s: s.ref):
        per = out.setdefault(svc.team, {})
        for severity in sorted(svc.severities):
            per.setdefault(severity, []).append(svc)
    return dict(sorted(out.items(), key=lambda kv: str(kv[0])))


ROUTING_FIELD = "routing"  # a routing problem's field: routing.<team>.<severity>


def routing_team(problem: Problem) -> str:
    """The team (its `cv.team_label`) of a problem `routing_problems` found ("" for any other problem)."""
    head, dot, rest = problem.field.partition(".")
    label, dot2, severity = rest.rpartition(".")  # a team's name may hold dots
    return label if head == ROUTING_FIELD and dot and dot2 and label and severity in SEVERITIES else ""


def _settings_key(label: str) -> str:
    """A team label as a key of the `alerting.teams` settings (quoted when it holds a namespace)."""
    return f'"{label}"' if "/" in label else label


def routing_problems(catalog: Catalog, templates: Templates, options: RenderOptions) -> list[Problem]:
    """One error per service whose alerts of some severity would reach no integration, naming team and severity."""
    services: dict[str, Service] = {str(s.ref): s for s in catalog.services}
    summaries = [summary_of(s, templates) for s in services.values()]
    problems = []
    for team, per in team_severities(summaries).items():
        group = catalog.team(team)
        label = cv.team_label(team)
        for severity, emitting in per.items():
            specs, _source = resolve(team, group, severity, options)
            if specs:
                continue
            lost = [s for s in emitting if not service_specs(s, severity, options)]
            if not lost:
                continue
            mapped = {ci.type for ci in options.catalog_integrations if severity in ci.severities}
            present = {"pagerduty": group.pagerduty_service_id, "opsgenie": group.opsgenie_team,
                       "slack": group.slack_channel} if group is not None else {}
            hints = [f"the Group's {CATALOG_ANNOTATIONS[kind]} is not mapped for {severity} (alerting.catalog.{kind})"
                     for kind, value in sorted(present.items()) if value and kind not in mapped]
            message = (f"team {label}: {severity} alerts of {', '.join(s.ref for s in lost)} have no destination: "
                       f"alerting.teams.{_settings_key(label)}.{severity} and alerting.default.{severity} are empty "
                       "and the catalog maps none (annotate the Group with "
                       f"{', '.join(CATALOG_ANNOTATIONS.values())} and map it in alerting.catalog)"
                       + (f"; {'; '.join(hints)}" if hints else ""))
            for summary in lost:
                svc = services[summary.ref]
                problems.append(Problem(svc.origin.file, svc.origin.line, summary.ref,
                                        f"{ROUTING_FIELD}.{label}.{severity}", message))
    return problems


def stray_team_settings(catalog: Catalog, options: RenderOptions) -> list[Problem]:
    """A warning per `alerting.teams` key that names no team in use but is the name of teams in use outside the
    default namespace: those teams are keyed `<namespace>/<name>`, so the settings do not apply to them."""
    in_use = {s.team for s in catalog.services}
    labels = {cv.team_label(t) for t in in_use}
    problems = []
    for key, _routing in options.teams:
        if key in labels:
            continue
        meant = sorted((t for t in in_use if t.name == key), key=str)
        if meant:
            group = catalog.team(meant[0])
            origin = group.origin if group is not None else next(s.origin for s in catalog.services
                                                                   if s.team == meant[0])
            problems.append(Problem(origin.file, origin.line, str(meant[0]), f"alerting.teams.{key}", (
                f"alerting.teams.{key} names no team in the default namespace, so it routes none of "
                f"{', '.join(map(str, meant))}: outside the default namespace a team's key is <namespace>/<name> "
                f"({', '.join(_settings_key(cv.team_label(t)) for t in meant)})"), Severity.WARNING))
    return problems


def _in_cycles(edges: dict[str, set[str]]) -> set[str]:
    """Nodes on a dependency cycle (Tarjan's strongly connected components of size > 1, or a self-loop)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: set[str] = set()

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.update(comp)

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return out


def dependency_inhibitions(summaries: Sequence[ServiceSummary]) -> list[dict[str, Any]]:
    """One inhibit rule per dependency with alerts: its page mutes the pages of whatever depends on it.

    Dependents carry `obsctl_depends_on="|ns/name|..."` on their alerts; the rule matches that list
    against the dependency's identity, in the same environment. The rule count is the number of
    distinct dependencies (never services squared). Dependencies on a cycle get no rule: two
    services muting each other would page nobody.
    """
    keys, edges = _dependency_graph(summaries)
    return _inhibitions(keys.get, edges)


def _dependency_graph(summaries: Sequence[ServiceSummary]
                      ) -> tuple[dict[str, EntityRef], tuple[tuple[str, tuple[str, ...]], ...]]:
    """(dependency key -> entity of each service with an entity, (key, its dependencies' keys) of each one
    that has dependencies)."""
    keys = {cv.dependency_key(s.entity): s.entity for s in summaries if s.entity is not None}
    edges = tuple((cv.dependency_key(s.entity), tuple(cv.dependency_key(d) for d in s.depends_on))
                  for s in summaries if s.entity is not None and s.depends_on)
    return keys, edges


def _inhibitions(known: Callable[[str], EntityRef | None], edges: Iterable[tuple[str, tuple[str, ...]]]
                 ) -> list[dict[str, Any]]:
    """The dependency rules from the (key, dependencies) of every service that has some, `known` giving the
    entity of a service's key: a service without dependencies lies on no cycle, so the graph holds only
    the others."""
    found: dict[str, EntityRef] = {}
    graph: dict[str, set[str]] = {}
    for key, deps in edges:
        targets = graph.setdefault(key, set())
        for dep in deps:
            entity = found.get(dep) or known(dep)
            if entity is not None:
                found[dep] = entity
                targets.add(dep)
    cyclic = _in_cycles(graph)
    return [_dependency_rule(found[key]) for key in sorted({d for targets in graph.values() for d in targets} - cyclic)]


def _route(matchers: list[str], receiver_name: str) -> dict[str, Any]:
    return {"matchers": matchers, "receiver": receiver_name}


@dataclass(frozen=True)
class TeamRoutes:
    """One team's part of the routing tree: its route and its receivers, each also as the YAML lines the
    whole config writes for it, and what its services bring to the dependency inhibitions.

    A part depends only on the team, its Group and the summaries of its services, so a cache may keep it
    while those are unchanged; `render_pieces` assembles the config from the parts of every team.
    """

    team: EntityRef
    route: dict[str, Any]
    receivers: tuple[dict[str, Any], ...]
    route_text: str  # the route as an item of route.routes (indent 2)
    receivers_text: str  # the receivers as items of the top-level receivers list ("" when none)
    keys: Mapping[str, EntityRef]  # dependency key -> entity, of each service with an entity
    edges: tuple[tuple[str, tuple[str, ...]], ...]  # (dependency key, its dependencies) of services with some


def team_piece(team: EntityRef, summaries: Sequence[ServiceSummary], ctx: RenderContext) -> TeamRoutes:
    """The part of one team, from the summaries of its services (in ref order)."""
    options = ctx.options
    group = ctx.team(team)
    receivers: list[dict[str, Any]] = []
    sub: list[dict[str, Any]] = []
    for severity in SEVERITIES:
        emitting = [s for s in summaries if severity in s.severities]
        if not emitting:
            continue
        wait = options.dependency_group_wait if severity == DEPENDENCY_MUTED else ""
        team_routed_dependents = False
        for svc in emitting:
            own = service_specs(svc, severity, options)
            if not (own and svc.entity is not None):
                team_routed_dependents |= bool(svc.depends_on)
            else:
                name = f"{cv.receiver_name(team, severity)}-{svc.entity.namespace}-{svc.entity.name}"
                receivers.append(receiver(name, own))
                sub.append(_route([matcher(cv.LABEL_SEVERITY_CLASS, severity),
                                   matcher(cv.LABEL_NAMESPACE, svc.entity.namespace),
                                   matcher(cv.LABEL_SERVICE, svc.entity.name)], name))
                if wait and svc.depends_on:
                    sub[-1]["group_wait"] = wait
        specs, _source = resolve(team, group, severity, options)
        if specs:
            name = cv.receiver_name(team, severity)
            receivers.append(receiver(name, specs))
            sub.append(_route([matcher(cv.LABEL_SEVERITY_CLASS, severity)], name))
            if wait and team_routed_dependents:
                sub[-1]["routes"] = [{"matchers": [matcher(cv.LABEL_DEPENDS_ON, ".+", "=~")], "group_wait": wait}]
    route = {"matchers": [matcher(cv.LABEL_TEAM, cv.team_label(team))], "receiver": cv.DEFAULT_RECEIVER, "routes": sub}
    keys, edges = _dependency_graph(summaries)
    return TeamRoutes(team, route, tuple(receivers), yamltext.dump_at([route], 2),
                      yamltext.dump_at(receivers, 0) if receivers else "", keys, edges)


def _dependency_rules(pieces: Sequence[TeamRoutes]) -> list[dict[str, Any]]:
    """`dependency_inhibitions` over the services of every part: only services with dependencies are walked,
    and each part's keys are looked up once, for the dependencies named (not once per dependency)."""
    edges = [edge for p in pieces for edge in p.edges]
    if not edges:
        return []
    wanted = {dep for _key, deps in edges for dep in deps}
    index: dict[str, EntityRef] = {}
    for p in pieces:  # each part costs the smaller of its keys and the dependencies named
        found = [k for k in wanted if k in p.keys] if len(wanted) < len(p.keys) else [k for k in p.keys if k in wanted]
        for key in found:
            index.setdefault(key, p.keys[key])  # the first part that has it, as a walk in part order finds
    return _inhibitions(index.get, edges)


def _dependency_rule(dep: EntityRef) -> dict[str, Any]:
    key = cv.dependency_key(dep)
    pattern = ".*\\|" + key.replace(".", "[.]") + "\\|.*"  # names hold [A-Za-z0-9._-] and one /
    return {
        "source_matchers": [matcher(cv.LABEL_SEVERITY_CLASS, DEPENDENCY_MUTED),
                            matcher(cv.LABEL_NAMESPACE, dep.namespace), matcher(cv.LABEL_SERVICE, dep.name)],
        "target_matchers": [matcher(cv.LABEL_SEVERITY_CLASS, DEPENDENCY_MUTED),
                            matcher(cv.LABEL_DEPENDS_ON, pattern, "=~")],
        "equal": [cv.LABEL_ENVIRONMENT],
    }


def _fixed_inhibitions(ctx: RenderContext) -> list[dict[str, Any]]:
    # A page mutes its SLO's tickets, unless the page may itself be muted by a dependency's page:
    # Alertmanager lets a muted alert mute others, and a dependent must still ticket.
    inhibit = [{"source_matchers": [matcher(cv.LABEL_SEVERITY_CLASS, "page"), matcher(cv.LABEL_SLO, ".+", "=~"),
                                    matcher(cv.LABEL_DEPENDS_ON, "")],
                "target_matchers": [matcher(cv.LABEL_SEVERITY_CLASS, "ticket")],
                "equal": SLO_IDENTITY}]
    return inhibit + _tier_inhibitions(ctx.templates)


def _head(ctx: RenderContext) -> dict[str, Any]:
    options = ctx.options
    return {"global": {"resolve_timeout": "5m"},
            "route": {"receiver": cv.DEFAULT_RECEIVER, "group_by": GROUP_BY, "group_wait": options.group_wait,
                      "group_interval": options.group_interval, "repeat_interval": options.repeat_interval}}


def config(catalog: Catalog, templates: Templates, options: RenderOptions) -> dict[str, Any]:
    """The Alertmanager configuration document."""
    ctx = RenderContext.of(catalog, templates, options)
    return teams_config([summary_of(s, templates) for s in catalog.services], ctx)


def teams_config(summaries: Sequence[ServiceSummary], ctx: RenderContext) -> dict[str, Any]:
    """The Alertmanager configuration routing the teams of the services summarised.

    A team/severity without any integration gets no sub-route: its alerts fall to the root
    receiver (`routing_problems` reports it; the composition does not render such teams).
    """
    return _config([team_piece(team, group, ctx) for team, group in by_team(summaries)], ctx)


def _config(pieces: Sequence[TeamRoutes], ctx: RenderContext) -> dict[str, Any]:
    head = _head(ctx)
    head["route"]["routes"] = [p.route for p in pieces]
    return {**head,
            "inhibit_rules": _fixed_inhibitions(ctx) + _dependency_rules(pieces),
            "receivers": [receiver(cv.DEFAULT_RECEIVER, ctx.options.default_routing.ticket),
                          *(r for p in pieces for r in p.receivers)]}


def render_pieces(pieces: Sequence[TeamRoutes], ctx: RenderContext) -> list[Artifact]:
    """The Alertmanager config from the parts of every team in use (in team order): the YAML of `teams_config`,
    byte for byte, joined from each part's lines, so a new service costs the lines of its team."""
    if Kind.ALERTMANAGER_CONFIG not in ctx.options.outputs:
        return []
    fixed = ctx.memo.get(_FIXED_TEXT)  # from the templates and options only
    if fixed is None:
        head = dump_yaml(_head(ctx), header=cv.FILE_HEADER.format(owner="the catalog")).decode()
        default = yamltext.dump_at([receiver(cv.DEFAULT_RECEIVER, ctx.options.default_routing.ticket)], 0)
        fixed = ctx.memo[_FIXED_TEXT] = (head, yamltext.dump_at(_fixed_inhibitions(ctx), 0), default)
    head, inhibit, default = fixed
    if ctx.options.held_routes:
        pieces = _with_held(pieces, ctx.options.held_routes)
    routes = "".join(p.route_text for p in pieces)
    dependency = _dependency_rules(pieces)
    body = "".join((head, "  routes:\n" if routes else "  routes: []\n", routes,
                    "inhibit_rules:\n", inhibit, yamltext.dump_at(dependency, 0) if dependency else "",
                    "receivers:\n", default, *(p.receivers_text for p in pieces))).encode()
    return [Artifact(Kind.ALERTMANAGER_CONFIG, cv.ALERTMANAGER_CONFIG_KEY, cv.ALERTMANAGER_CONFIG_PATH, body,
                     cv.OWNER)]


_FIXED_TEXT = "routes.fixed-text"


def held_part(team: EntityRef, route_text: str, receivers_text: str,
              summaries: Sequence[ServiceSummary] = ()) -> HeldRoutes:
    """A team's part kept as the config in place has it (`route_text`, `receivers_text`: its lines there), with
    what `summaries` (its services that are not rendered) bring to the dependency inhibitions."""
    keys, edges = _dependency_graph(summaries)
    return HeldRoutes(team, route_text, receivers_text, tuple(sorted(keys.items())), edges)


def _with_held(pieces: Sequence[TeamRoutes], held: Sequence[HeldRoutes]) -> list[TeamRoutes]:
    """The parts with each held team's route and receivers as the config in place has them (the catalog's, when
    it has none there), and its services' dependencies added, in team order."""
    out = {p.team: p for p in pieces}
    by_label = {cv.team_label(p.team): p.team for p in pieces}  # the routing key the matcher and receivers use
    for h in held:
        fresh = out.pop(by_label.get(cv.team_label(h.team), h.team), None)
        keys = {**dict(h.keys), **(fresh.keys if fresh is not None else {})}
        edges = (fresh.edges if fresh is not None else ()) + h.edges
        if h.route_text or fresh is None:
            out[h.team] = TeamRoutes(h.team, {}, (), h.route_text, h.receivers_text, keys, edges)
        else:
            out[h.team] = TeamRoutes(h.team, fresh.route, fresh.receivers, fresh.route_text, fresh.receivers_text,
                                     keys, edges)
    return [out[team] for team in sorted(out, key=str)]


def render_summaries(summaries: Sequence[ServiceSummary], ctx: RenderContext) -> list[Artifact]:
    """One Alertmanager config routing the services summarised (none when it is not in the outputs)."""
    if Kind.ALERTMANAGER_CONFIG not in ctx.options.outputs:
        return []
    return render_pieces([team_piece(team, group, ctx) for team, group in by_team(summaries)], ctx)


def render(catalog: Catalog, templates: Templates, options: RenderOptions) -> list[Artifact]:
    """One Alertmanager config for the whole catalog (none when it is not in `options.outputs`)."""
    return render_summaries([summary_of(s, templates) for s in catalog.services],
                            RenderContext.of(catalog, templates, options))
