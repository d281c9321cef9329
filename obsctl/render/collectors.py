"""OpenTelemetry collector configs: an agent (sidecar) per service; per team a gateway (load-balancing
layer, traces routed by trace ID) and a sampler (tail-sampling layer); OpenTelemetry Operator
`OpenTelemetryCollector` manifests of all three and a sidecar-injection snippet per service.

Templates are parsed first and placeholders filled in the parsed tree afterwards, so a catalog
value is only ever a YAML scalar. Every config is checked against obsctl's collector model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from obsctl.errors import Problem, SpecError
from obsctl.model import conventions as conv
from obsctl.model import placeholders, yamltext
from obsctl.model.artifact import Artifact, Kind
from obsctl.model.entities import Catalog, EntityRef, LatencySLI, Service
from obsctl.model.escape import otelcol
from obsctl.model.otelcol import CollectorConfigProblem, ComponentKind, component_problems, validate_collector_config
from obsctl.model.platform import Templates
from obsctl.render import symbolic
from obsctl.render.context import RenderContext
from obsctl.render.options import RenderOptions
from obsctl.render.yamlout import dump_yaml, header_line

OPERATOR_API = "opentelemetry.io/v1beta1"


def fill(node: Any, values: Mapping[str, Any], where: str) -> Any:
    """Replace @{name} in every string of a parsed tree. A whole-value placeholder keeps the value's type."""
    def problem(path: str, exc: placeholders.PlaceholderError) -> SpecError:
        return SpecError([Problem(where, 0, "", f"{where}.{path}" if path else where, str(exc))])

    return placeholders.fill_tree(node, values, problem, dollar_names=True)


def _settings(templates: Templates, options: RenderOptions) -> dict[str, Any]:
    base: dict[str, Any] = dict(templates.collectors.settings)
    base.update(dict(options.collector))
    return base


def _endpoint_values(settings: Mapping[str, Any], team: EntityRef) -> dict[str, Any]:
    names = {
        "team": otelcol.value(team.name), "namespace": otelcol.value(team.namespace),
        "gateway_service": otelcol.value(conv.collector_gateway_name(team) + conv.OTEL_SERVICE_SUFFIX),
        "sampler_headless_service": otelcol.value(conv.collector_sampler_name(team) + conv.OTEL_HEADLESS_SUFFIX),
    }
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, str):
            out[key] = placeholders.fill(value, names)
        elif not isinstance(value, dict | list):
            out[key] = value
    return out


def _scrub_actions(settings: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"key": str(k), "action": "delete"} for k in settings.get("scrub_keys", [])]


def _dump(config: Mapping[str, Any], owner: str) -> bytes:
    return dump_yaml(config, header=conv.FILE_HEADER.format(owner=owner), sort_keys=True)


def _check(config: Mapping[str, Any], what: str) -> None:
    _raise(validate_collector_config(config), what)


def _raise(problems: Sequence[CollectorConfigProblem], what: str) -> None:
    if problems:
        raise SpecError([Problem(what, 0, "", p.component, f"{p.rule}: {p.message}") for p in problems])


# The agent's values that differ from service to service (escaped catalog values and the tier).
_OPAQUE = ("service_name", "service_namespace", "team", "environment", "tier")
_ATTRIBUTE_PROCESSORS = ("resource", "attributes")
_SHAPES_MAX = 4096


def _opaque_in(template: Any) -> bool:
    """Whether every `_OPAQUE` placeholder of the agent template is a whole attribute value of a resource or
    attributes processor (`processors.<resource|attributes>[/name].<attributes|actions>[i].value`).

    The collector model reads such a value only as "set or not" (AttributeAction.value: any value, checked
    against None), so configs differing only there get the same verdict; and a whole string value is written
    as one YAML scalar wherever it stands. See `_agent_bodies`.
    """
    def walk(node: Any, path: tuple[Any, ...]) -> bool:
        if isinstance(node, dict):
            return all(walk(v, (*path, k)) for k, v in node.items())
        if isinstance(node, list):
            return all(walk(v, (*path, i)) for i, v in enumerate(node))
        if not isinstance(node, str) or not set(placeholders.names(node)) & set(_OPAQUE):
            return True
        whole = placeholders.PLACEHOLDER.fullmatch(node) is not None
        return (whole and len(path) == 5 and path[0] == "processors"
                and str(path[1]).split("/")[0] in _ATTRIBUTE_PROCESSORS and path[2] in ("attributes", "actions")
                and isinstance(path[3], int) and path[4] == "value")
    return walk(template, ())


def _percent(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not 0 <= number <= 100:
        raise SpecError([Problem("collectors/settings.yaml", 0, "", what, f"{value!r} is not a percentage (0-100)")])
    return number


def _agent_values(svc: Service, templates: Templates, options: RenderOptions,
                  endpoints: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every value the agent template of a service is filled with (`endpoints`: its team's, if known)."""
    settings = _settings(templates, options)
    values = dict(endpoints) if endpoints is not None else _endpoint_values(settings, svc.team)
    head = _percent(settings.get("agent_sampling_percent", 100), "agent_sampling_percent")
    environment = conv.service_environment(svc, options.environment)
    values.update({
        # identity values come from the catalog: escaped, so the collector never expands them
        "service_name": otelcol.value(svc.name), "service_namespace": otelcol.value(svc.namespace),
        "team": otelcol.value(svc.team.name), "environment": otelcol.value(environment),
        "tier": str(svc.tier), "agent_sampling_percent": head,
        "scrub_actions": _scrub_actions(settings),
    })
    latency_ms = _latency_threshold_ms(svc)
    values["slow_statements"] = [slow_statement(latency_ms)] if latency_ms else []
    return values


def _agent_from(values: Mapping[str, Any], templates: Templates) -> dict[str, Any]:
    config: dict[str, Any] = fill(templates.collectors.agent, values, "agent")
    if not values["slow_statements"]:
        _drop_processor(config, "transform/slow")
    if values["agent_sampling_percent"] >= 100:
        _drop_processor(config, "probabilistic_sampler")
    return config


def agent_config(svc: Service, templates: Templates, options: RenderOptions) -> dict[str, Any]:
    """The sidecar config of one service: no tail sampling (that needs whole traces: the sampler tier)."""
    config = _agent_from(_agent_values(svc, templates, options), templates)
    _check(config, f"collectors/agent.yaml for {svc.ref}")
    return config


SLOW_ATTRIBUTE = "obsctl.slow"


def slow_statement(threshold_ms: int) -> str:
    """The OTTL statement marking the service's server spans slower than its tightest latency objective.

    The agent marks, the team sampler keeps every trace holding a marked span: each service is judged
    by its own objective on its own spans, and the sampler needs to know nothing about the services.
    """
    return (f'set(attributes["{SLOW_ATTRIBUTE}"], true) where kind == SPAN_KIND_SERVER and '
            f"end_time_unix_nano - start_time_unix_nano > {threshold_ms * 1_000_000}")


def _latency_threshold_ms(svc: Service) -> int:
    thresholds = [s.sli.threshold_seconds for s in svc.slos if isinstance(s.sli, LatencySLI)]
    return round(min(thresholds) * 1000) if thresholds else 0


def _drop_processor(config: dict[str, Any], name: str) -> None:
    config["processors"].pop(name, None)
    for pipeline in config["service"]["pipelines"].values():
        pipeline["processors"] = [p for p in pipeline["processors"] if p != name]


def _sampler_resolver(values: Mapping[str, Any]) -> dict[str, Any]:
    static = [h.strip() for h in str(values.get("sampler_static_hostnames") or "").split(",") if h.strip()]
    if static:
        return {"static": {"hostnames": static}}
    return {"dns": {"hostname": str(values["sampler_hostname"]), "port": str(values["sampler_port"])}}


def gateway_config(team: EntityRef, templates: Templates, options: RenderOptions,
                   memo: dict[str, Any] | None = None) -> dict[str, Any]:
    """The gateway config of one team: metrics and logs to the backends, traces by trace ID to the samplers
    (`memo`: a render context's, whose verdicts the check may reuse)."""
    settings = _settings(templates, options)
    values = _endpoint_values(settings, team)
    values.update({"team": otelcol.value(team.name), "environment": otelcol.value(options.environment),
                   "scrub_actions": _scrub_actions(settings), "sampler_resolver": _sampler_resolver(values)})
    config: dict[str, Any] = fill(templates.collectors.gateway, values, "gateway")
    _team_check("gateway", templates.collectors.gateway, values, config, f"collectors/gateway.yaml for {team}",
                memo=memo)
    return config


def sampling_policies(by_tier: Mapping[Any, Any]) -> list[dict[str, Any]]:
    """The tail-sampling policies of a team's sampler: a trace is kept when any policy keeps it.

    An error in any span; a span its agent marked slower than its service's latency objective
    (`obsctl.slow`, see `slow_statement`); otherwise the baseline share of the service tier's table, by
    trace-ID hash (the same traces in every sampler), for traces touching a service of that tier (the
    agents stamp `service.tier`). Nothing here depends on which services the team has.
    """
    policies: list[dict[str, Any]] = [
        {"name": "keep-errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
        {"name": "keep-slower-than-objective", "type": "boolean_attribute",
         "boolean_attribute": {"key": SLOW_ATTRIBUTE, "value": True}}]
    tiers = sorted({int(k) for k in by_tier})
    for tier in tiers:
        percent = _percent(by_tier.get(tier, by_tier.get(str(tier))), "baseline_sampling_percent_by_tier")
        policies.append({"name": f"baseline-tier-{tier}", "type": "and", "and": {"and_sub_policy": [
            {"name": "tier", "type": "string_attribute",
             "string_attribute": {"key": "service.tier", "values": [str(tier)]}},
            {"name": "baseline", "type": "probabilistic", "probabilistic": {"sampling_percentage": percent}}]}})
    return policies


def sampler_config(team: EntityRef, templates: Templates, options: RenderOptions,
                   memo: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sampler config of one team: tail sampling on whole traces, kept traces to the traces backend
    (`memo`: a render context's, whose verdicts the check may reuse)."""
    settings = _settings(templates, options)
    values = _endpoint_values(settings, team)
    values["sampling_policies"] = sampling_policies(settings.get("baseline_sampling_percent_by_tier") or {})
    config: dict[str, Any] = fill(templates.collectors.sampler, values, "sampler")
    _team_check("sampler", templates.collectors.sampler, values, config, f"collectors/sampler.yaml for {team}",
                memo=memo)
    return config


def _operator_manifest(name: str, namespace: str, mode: str, config: Mapping[str, Any], *, owner: str,
                       options: RenderOptions) -> dict[str, Any]:
    return {
        "apiVersion": OPERATOR_API,
        "kind": "OpenTelemetryCollector",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**dict(options.kubernetes.labels), conv.K8S_MANAGED_BY: conv.OWNER},
            "annotations": {**dict(options.kubernetes.annotations), "obsctl.dev/owner": owner},
        },
        "spec": {"mode": mode, "image": options.kubernetes.collector_image, "config": dict(config)},
    }


def _sidecar_snippet(svc: Service) -> bytes:
    """The pod-template fragment that makes the operator inject a service's agent (merge it into the
    Deployment, StatefulSet or DaemonSet of the service, in the namespace of the agent's manifest)."""
    body = {"spec": {"template": {"metadata": {"annotations": {
        conv.OTEL_SIDECAR_ANNOTATION: conv.collector_agent_name(svc)}}}}}
    return _dump(body, str(svc.ref))


@dataclass(frozen=True)
class _AgentShape:
    """The agent file and manifest of a set of agent values, cut at the per-service scalars."""

    agent: symbolic.Template | None
    manifest: symbolic.Template | None


def _whole_names(template: Any) -> frozenset[str]:
    """The placeholders that only ever stand as a whole string value, outside the service's pipelines (whose
    processor lists are edited by name): their values are written as one YAML scalar each."""
    whole: set[str] = set()
    partial: set[str] = set()

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))
        elif isinstance(node, str):
            names = placeholders.names(node)
            if len(names) == 1 and placeholders.PLACEHOLDER.fullmatch(node) and path[:2] != ("service", "pipelines"):
                whole.update(names)
            else:
                partial.update(names)
    walk(template, ())
    return frozenset(whole - partial)


def _names_in(template: Any) -> frozenset[str]:
    """Every placeholder name in a parsed template."""
    if isinstance(template, dict):
        return frozenset().union(*(_names_in(v) for v in template.values()))
    if isinstance(template, list):
        return frozenset().union(*(_names_in(v) for v in template))
    return frozenset(placeholders.names(template)) if isinstance(template, str) else frozenset()


# Read by `_agent_from` to drop processors: they shape the config, wherever they stand in the template.
_STRUCTURAL = frozenset({"slow_statements", "agent_sampling_percent"})
_COMPONENT_KINDS = {kind.section: kind for kind in ComponentKind}


def _body_only(template: Any) -> frozenset[str]:
    """The placeholders that stand only inside component bodies (`<section>.<id>.<...>` of a component section),
    never in the `service` section or a key: the config's ids and `service` section do not depend on them."""
    inside: set[str] = set()
    outside: set[str] = set()

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                outside.update(placeholders.names(k) if isinstance(k, str) else ())
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, i))
        elif isinstance(node, str):
            in_body = len(path) >= 3 and path[0] in _COMPONENT_KINDS
            (inside if in_body else outside).update(placeholders.names(node))
    walk(template, ())
    return frozenset(inside - outside)


def _agent_valid(values: Mapping[str, Any], used: frozenset[str], body_only: frozenset[str],
                 ctx: RenderContext) -> bool:
    """Whether the agent config of `values` passes the check, whatever its `_OPAQUE` values (see `_agent_bodies`
    and `_passes`: the whole check runs once per set of the other values that shape the config)."""
    agent_template = ctx.templates.collectors.agent
    stood = {**values, **{k: symbolic.sentinel(i) for i, k in enumerate(_OPAQUE)}}
    return _passes("agent", agent_template, {k: v for k, v in values.items() if k in used and k not in _OPAQUE},
                   body_only=body_only, whole=lambda: _agent_from(stood, ctx.templates),
                   body=lambda section, raw_id: fill(agent_template[section][raw_id], stood,
                                                     f"agent.{section}.{raw_id}"),
                   memo=ctx.memo)


def _passes(name: str, template: Any, values: Mapping[str, Any], *, body_only: frozenset[str],
            whole: Callable[[], dict[str, Any]], body: Callable[[str, str], Any], memo: dict[str, Any]) -> bool:
    """Whether the config `whole()` builds from `template` and `values` (what it reads of them) passes the check.

    The whole check runs once per set of the values that shape the config: all but those standing only inside
    component bodies (`body_only`, see `_body_only`: a team's endpoints). Two configs alike in those differ only
    in the bodies holding the others, and the check reads a body only through `component_problems` (the rest
    of its verdict reads ids and the `service` section): so once one config of a shaping set passed whole,
    another passes exactly when each of those bodies (`body(section, id)`, as `whole()` would build it) passes
    `component_problems`. The caller builds a failing config the ordinary way, whose check names its problems.
    """
    verdicts: dict[tuple[str, str], bool] = memo.setdefault(f"collectors.{name}.verdicts", {})
    shaping = repr(sorted((k, v) for k, v in values.items() if k not in body_only))
    key = (shaping, repr(sorted((k, v) for k, v in values.items() if k in body_only)))
    valid = verdicts.get(key)
    if valid is not None:
        return valid
    if len(verdicts) >= _SHAPES_MAX:
        verdicts.clear()
    # per shaping set that had a config pass whole: the components of that config holding a body-only value
    passed: dict[str, tuple[tuple[str, str], ...]] = memo.setdefault(f"collectors.{name}.passed", {})
    held = passed.get(shaping)
    if held is None:
        config = whole()
        valid = not validate_collector_config(config)
        if valid:
            if len(passed) >= _SHAPES_MAX:
                passed.clear()
            passed[shaping] = tuple((section, raw_id) for section in _COMPONENT_KINDS
                                    for raw_id in config.get(section) or {}
                                    if _names_in(template[section][raw_id]) & body_only)
    else:
        valid = not any(component_problems(_COMPONENT_KINDS[section], raw_id, body(section, raw_id))
                        for section, raw_id in held)
    verdicts[key] = valid
    return valid


def _team_check(name: str, template: Any, values: Mapping[str, Any], config: dict[str, Any], what: str, *,
                memo: dict[str, Any] | None) -> None:
    """`_check` of a team's gateway or sampler config filled from `template` with `values`; through `_passes`
    with a render's `memo` (the raising check runs only for a config that does not pass)."""
    if memo is not None:
        names = memo.get(f"collectors.{name}.names")
        if names is None:
            names = memo[f"collectors.{name}.names"] = (_names_in(template), _body_only(template))
        used, body_only = names
        if _passes(name, template, {k: v for k, v in values.items() if k in used}, body_only=body_only,
                   whole=lambda: config, body=lambda section, raw_id: config[section][raw_id], memo=memo):
            return
    _check(config, what)


def _agent_bodies(svc: Service, ctx: RenderContext, agents: bool, crds: bool) -> tuple[bytes, bytes] | None:
    """The agent file and operator manifest of a service, substituted into its shape's text; None when the
    template or the service's values do not allow it (then they are built and checked the ordinary way).

    The check's verdict does not depend on the `_OPAQUE` values (`_opaque_in`): it is taken once per set of
    the other values, with stand-ins for those, and a failing set is left to the ordinary path (which
    reports the real problems). The text does not depend on any value standing as a whole string (one line,
    written as one YAML scalar wherever it stands; `_whole_names`) besides through that scalar: it is built
    once per set of the remaining values with stand-ins, and each service's scalars are substituted.
    """
    templates, options = ctx.templates, ctx.options
    agent_template = templates.collectors.agent
    found = ctx.memo.get("collectors.whole_names")
    if found is None:
        found = ctx.memo["collectors.whole_names"] = (
            _whole_names(agent_template) if _opaque_in(agent_template) else frozenset(),
            _names_in(agent_template) | {"slow_statements", "agent_sampling_percent"})  # read by _agent_from too
    names, used = found
    if not names:
        return None
    body_only = ctx.memo.get("collectors.body_only")
    if body_only is None:
        body_only = ctx.memo["collectors.body_only"] = _body_only(agent_template) - _STRUCTURAL - set(_OPAQUE)
    by_team: dict[EntityRef, dict[str, Any]] = ctx.memo.setdefault("collectors.endpoints", {})
    endpoints = by_team.get(svc.team)
    if endpoints is None:
        if len(by_team) >= _SHAPES_MAX:
            by_team.clear()
        endpoints = by_team[svc.team] = _endpoint_values(_settings(templates, options), svc.team)
    values = _agent_values(svc, templates, options, endpoints)
    if not _agent_valid(values, used, body_only, ctx):
        return None
    owner = str(svc.ref)
    text_names = tuple(sorted(k for k in names if isinstance(values.get(k), str)))
    strings = [values[k] for k in text_names] + [conv.collector_agent_name(svc), svc.namespace, owner]
    if any("\n" in v for v in strings):
        return None
    shapes: dict[Any, _AgentShape] = ctx.memo.setdefault("collectors.agents", {})
    key = (agents, crds, text_names,
           repr(sorted((k, v) for k, v in values.items() if k in used and k not in text_names)))
    shape = shapes.get(key)
    if shape is None:
        if len(shapes) >= _SHAPES_MAX:
            shapes.clear()
        stand_ins = [symbolic.sentinel(i) for i in range(len(strings))]
        n = len(text_names)
        config = _agent_from({**values, **dict(zip(text_names, stand_ins, strict=False))}, templates)
        manifest = _operator_manifest(stand_ins[n], stand_ins[n + 1], "sidecar", config, owner=stand_ins[n + 2],
                                      options=options) if crds else None
        shape = shapes[key] = _AgentShape(
            symbolic.Template.of(yamltext.dump(config, sort_keys=True).encode()) if agents else None,
            symbolic.Template.of(yamltext.dump(manifest, sort_keys=True).encode()) if manifest else None)
    scalars = [yamltext.one_line(v).encode() for v in strings]
    header = header_line(conv.FILE_HEADER.format(owner=owner))
    return (header + shape.agent.fill(scalars) if shape.agent else b"",
            header + shape.manifest.fill(scalars) if shape.manifest else b"")


def render_service(svc: Service, ctx: RenderContext) -> list[Artifact]:
    """The agent config of one service, its operator manifest and sidecar snippet (those in the outputs)."""
    agents, crds = (k in ctx.options.outputs for k in (Kind.COLLECTOR_AGENT, Kind.COLLECTOR_CRD))
    out: list[Artifact] = []
    if not (agents or crds):
        return out
    owner = str(svc.ref)
    key = conv.service_key(svc.ref)
    name = conv.collector_agent_name(svc)
    bodies = _agent_bodies(svc, ctx, agents, crds)
    if bodies is None:
        config = agent_config(svc, ctx.templates, ctx.options)
        bodies = (_dump(config, owner) if agents else b"",
                  _dump(_operator_manifest(name, svc.namespace, "sidecar", config, owner=owner, options=ctx.options),
                        owner) if crds else b"")
    if agents:
        out.append(Artifact(Kind.COLLECTOR_AGENT, key, conv.collector_agent_path(svc), bodies[0], owner))
    if crds:
        out.append(Artifact(Kind.COLLECTOR_CRD, f"agent/{key}", conv.collector_crd_path(svc.namespace, name),
                            bodies[1], owner))
        out.append(Artifact(Kind.COLLECTOR_CRD, f"snippet/{key}", conv.sidecar_snippet_path(svc),
                            _sidecar_snippet(svc), owner))
    return out


# render_shared over several teams is render_shared over each team: a cache may build one team's alone.
SHARED_PARTS = (("team", "render_shared"),)


def render_shared(teams: tuple[EntityRef, ...], ctx: RenderContext) -> list[Artifact]:
    """The gateway and sampler configs of every team in `teams` and their operator manifests (those in the
    outputs)."""
    gateways, crds = (k in ctx.options.outputs for k in (Kind.COLLECTOR_GATEWAY, Kind.COLLECTOR_CRD))
    out: list[Artifact] = []
    for team in teams if gateways or crds else ():
        owner = str(team)
        key = conv.team_key(team)
        gateway = gateway_config(team, ctx.templates, ctx.options, ctx.memo)
        sampler = sampler_config(team, ctx.templates, ctx.options, ctx.memo)
        if gateways:
            out.append(Artifact(Kind.COLLECTOR_GATEWAY, key, conv.collector_gateway_path(team),
                                _dump(gateway, owner), owner))
            out.append(Artifact(Kind.COLLECTOR_GATEWAY, f"sampler/{key}", conv.collector_sampler_path(team),
                                _dump(sampler, owner), owner))
        if crds:
            for role, name, config in (("gateway", conv.collector_gateway_name(team), gateway),
                                       ("sampler", conv.collector_sampler_name(team), sampler)):
                manifest = _operator_manifest(name, team.namespace, "deployment", config, owner=owner,
                                              options=ctx.options)
                out.append(Artifact(Kind.COLLECTOR_CRD, f"{role}/{key}", conv.collector_crd_path(team.namespace, name),
                                    _dump(manifest, owner), owner))
    return out


def render(catalog: Catalog, templates: Templates, options: RenderOptions) -> list[Artifact]:
    """Agent configs per service; gateway and sampler configs per team; their operator manifests and a
    sidecar-injection snippet per service (those in `options.outputs`)."""
    ctx = RenderContext.of(catalog, templates, options)
    out = [a for svc in catalog.services for a in render_service(svc, ctx)]
    return out + render_shared(catalog.teams_in_use(), ctx)
