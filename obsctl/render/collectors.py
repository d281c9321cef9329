"""OpenTelemetry collector configs: an agent (sidecar) per service and a gateway per team,
plus OpenTelemetry Operator `OpenTelemetryCollector` manifests of both.

Templates are parsed first and placeholders filled in the parsed tree afterwards, so a catalog
value is only ever a YAML scalar. Every config is checked against obsctl's collector model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from obsctl.errors import Problem, SpecError
from obsctl.model import conventions as conv
from obsctl.model import placeholders
from obsctl.model.artifact import Artifact, Kind
from obsctl.model.entities import Catalog, EntityRef, LatencySLI, Service
from obsctl.model.escape import otelcol
from obsctl.model.otelcol import validate_collector_config
from obsctl.model.platform import Templates
from obsctl.render.context import RenderContext
from obsctl.render.options import RenderOptions
from obsctl.render.yamlout import dump_yaml

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
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, str):
            out[key] = placeholders.fill(value, {"team": otelcol.value(team.name),
                                                 "namespace": otelcol.value(team.namespace)})
        elif not isinstance(value, dict | list):
            out[key] = value
    return out


def _scrub_actions(settings: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"key": str(k), "action": "delete"} for k in settings.get("scrub_keys", [])]


def _latency_threshold_ms(svc: Service) -> int:
    thresholds = [s.sli.threshold_seconds for s in svc.slos if isinstance(s.sli, LatencySLI)]
    return round(min(thresholds) * 1000) if thresholds else 0


def _dump(config: Mapping[str, Any], owner: str) -> bytes:
    return dump_yaml(config, header=conv.FILE_HEADER.format(owner=owner), sort_keys=True)


def _check(config: Mapping[str, Any], what: str) -> None:
    problems = validate_collector_config(config)
    if problems:
        raise SpecError([Problem(what, 0, "", p.component, f"{p.rule}: {p.message}") for p in problems])


def agent_config(svc: Service, templates: Templates, options: RenderOptions) -> dict[str, Any]:
    """The sidecar config of one service."""
    settings = _settings(templates, options)
    values = _endpoint_values(settings, EntityRef("group", svc.namespace, svc.team.name))
    by_tier = settings.get("baseline_sampling_percent_by_tier", {}) or {}
    latency_ms = _latency_threshold_ms(svc)
    environment = conv.service_environment(svc, options.environment)
    values.update({
        # identity values come from the catalog: escaped, so the collector never expands them
        "service_name": otelcol.value(svc.name), "service_namespace": otelcol.value(svc.namespace),
        "team": otelcol.value(svc.team.name), "environment": otelcol.value(environment),
        "tier": str(svc.tier), "latency_threshold_ms": latency_ms,
        "baseline_sampling_percent": by_tier.get(svc.tier, by_tier.get(str(svc.tier), 5)),
        "scrub_actions": _scrub_actions(settings),
    })
    config: dict[str, Any] = fill(templates.collectors.agent, values, "agent")
    if not latency_ms:
        # No latency objective: drop the latency policy rather than keep every trace slower than 0 ms.
        policies = config["processors"]["tail_sampling"]["policies"]
        config["processors"]["tail_sampling"]["policies"] = [p for p in policies if p.get("type") != "latency"]
    _check(config, f"collectors/agent.yaml for {svc.ref}")
    return config


def gateway_config(team: EntityRef, templates: Templates, options: RenderOptions) -> dict[str, Any]:
    """The gateway config of one team."""
    settings = _settings(templates, options)
    values = _endpoint_values(settings, team)
    values.update({"team": otelcol.value(team.name), "environment": otelcol.value(options.environment),
                   "scrub_actions": _scrub_actions(settings)})
    config: dict[str, Any] = fill(templates.collectors.gateway, values, "gateway")
    _check(config, f"collectors/gateway.yaml for {team}")
    return config


def _operator_manifest(name: str, namespace: str, mode: str, config: Mapping[str, Any], owner: str) -> dict[str, Any]:
    return {
        "apiVersion": OPERATOR_API,
        "kind": "OpenTelemetryCollector",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": conv.OWNER},
            "annotations": {"obsctl.dev/owner": owner},
        },
        "spec": {"mode": mode, "config": dict(config)},
    }


def render_service(svc: Service, ctx: RenderContext) -> list[Artifact]:
    """The agent config of one service and its operator manifest (those in the outputs)."""
    agents, crds = (k in ctx.options.outputs for k in (Kind.COLLECTOR_AGENT, Kind.COLLECTOR_CRD))
    out: list[Artifact] = []
    if not (agents or crds):
        return out
    config = agent_config(svc, ctx.templates, ctx.options)
    owner = str(svc.ref)
    key = conv.service_key(svc.ref)
    if agents:
        out.append(Artifact(Kind.COLLECTOR_AGENT, key, conv.collector_agent_path(svc), _dump(config, owner), owner))
    if crds:
        manifest = _operator_manifest(conv.fit(f"{svc.name}-agent", 63, owner), svc.namespace, "sidecar",
                                      config, owner)
        out.append(Artifact(Kind.COLLECTOR_CRD, f"agent/{key}",
                            f"kubernetes/opentelemetrycollectors/{svc.namespace}/{svc.name}-agent.yaml",
                            _dump(manifest, owner), owner))
    return out


def render_shared(teams: tuple[EntityRef, ...], ctx: RenderContext) -> list[Artifact]:
    """The gateway config of every team in `teams` and its operator manifest (those in the outputs)."""
    gateways, crds = (k in ctx.options.outputs for k in (Kind.COLLECTOR_GATEWAY, Kind.COLLECTOR_CRD))
    out: list[Artifact] = []
    for team in teams if gateways or crds else ():
        config = gateway_config(team, ctx.templates, ctx.options)
        owner = str(team)
        key = conv.team_key(team)
        if gateways:
            out.append(Artifact(Kind.COLLECTOR_GATEWAY, key, conv.collector_gateway_path(team), _dump(config, owner),
                                owner))
        if crds:
            manifest = _operator_manifest(conv.fit(f"otel-gateway-{team.name}", 63, owner), team.namespace,
                                          "deployment", config, owner)
            out.append(Artifact(Kind.COLLECTOR_CRD, f"gateway/{key}",
                                f"kubernetes/opentelemetrycollectors/{team.namespace}/otel-gateway-{team.name}.yaml",
                                _dump(manifest, owner), owner))
    return out


def render(catalog: Catalog, templates: Templates, options: RenderOptions) -> list[Artifact]:
    """Agent configs per service, gateway configs per team, their operator manifests (those in `options.outputs`)."""
    ctx = RenderContext.of(catalog, templates, options)
    out = [a for svc in catalog.services for a in render_service(svc, ctx)]
    return out + render_shared(catalog.teams_in_use(), ctx)
