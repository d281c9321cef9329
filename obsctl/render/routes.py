"""The Alertmanager config: a routing tree from catalog ownership, receivers from platform settings.

Every team that owns a service gets a route on its `team` label with a page and a ticket receiver,
chosen by obsctl's own class label `obsctl_severity` (a spec's `severity: critical` stays as written)
(PagerDuty, Opsgenie, Slack, webhook integrations from `options.routing(team)`). Alerts are grouped
per SLO. Inhibition: a firing page mutes the same SLO's tickets, and a faster tier mutes a slower
tier of the same severity. Secrets are only referenced by file (`routing_key_file`,
`service_key_file`, `api_key_file`, `api_url_file`: what Alertmanager 0.25 reads from files);
a setting that inlines one is refused.
"""

from __future__ import annotations

import re
from typing import Any

from obsctl.errors import ConfigError
from obsctl.model import conventions as cv
from obsctl.model.artifact import Artifact, Kind
from obsctl.model.entities import Catalog, EntityRef
from obsctl.model.escape import promql
from obsctl.model.platform import Templates
from obsctl.render.context import RenderContext
from obsctl.render.options import ReceiverSpec, RenderOptions
from obsctl.render.yamlout import dump_yaml

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
    """Faster tier mutes slower tier of the same severity, for pairs ordered alike in every window table."""
    pairs: dict[tuple[str, str], bool] = {}
    for table in templates.windows.values():
        for a in table.tiers:
            for b in table.tiers:
                if a.name == b.name or a.severity != b.severity:
                    continue
                faster = a.long_window_s < b.long_window_s
                pairs[(a.name, b.name)] = pairs.get((a.name, b.name), True) and faster
    rules = []
    for (fast, slow), ok in sorted(pairs.items()):
        if ok:
            rules.append({"source_matchers": [matcher(cv.LABEL_TIER, fast)],
                          "target_matchers": [matcher(cv.LABEL_TIER, slow)],
                          "equal": [*SLO_IDENTITY, cv.LABEL_SEVERITY_CLASS]})
    return rules


def config(catalog: Catalog, templates: Templates, options: RenderOptions) -> dict[str, Any]:
    """The Alertmanager configuration document."""
    return teams_config(catalog.teams_in_use(), templates, options)


def teams_config(teams: tuple[EntityRef, ...], templates: Templates, options: RenderOptions) -> dict[str, Any]:
    """The Alertmanager configuration document routing the given teams (those owning a service, sorted)."""
    receivers = [receiver(cv.DEFAULT_RECEIVER, options.default_routing.ticket)]
    routes = []
    seen: set[str] = set()
    for team in teams:
        if team.name in seen:
            continue
        seen.add(team.name)
        routing = options.routing(team.name)
        page, ticket = cv.receiver_name(team, "page"), cv.receiver_name(team, "ticket")
        receivers += [receiver(page, routing.page), receiver(ticket, routing.ticket)]
        routes.append({
            "matchers": [matcher(cv.LABEL_TEAM, team.name)],
            "receiver": ticket,
            "routes": [{"matchers": [matcher(cv.LABEL_SEVERITY_CLASS, "page")], "receiver": page},
                       {"matchers": [matcher(cv.LABEL_SEVERITY_CLASS, "ticket")], "receiver": ticket}],
        })
    inhibit = [{"source_matchers": [matcher(cv.LABEL_SEVERITY_CLASS, "page"), matcher(cv.LABEL_SLO, ".+", "=~")],
                "target_matchers": [matcher(cv.LABEL_SEVERITY_CLASS, "ticket")],
                "equal": SLO_IDENTITY}]
    inhibit += _tier_inhibitions(templates)
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {"receiver": cv.DEFAULT_RECEIVER, "group_by": GROUP_BY, "group_wait": options.group_wait,
                  "group_interval": options.group_interval, "repeat_interval": options.repeat_interval,
                  "routes": routes},
        "inhibit_rules": inhibit,
        "receivers": receivers,
    }


def render_shared(teams: tuple[EntityRef, ...], ctx: RenderContext) -> list[Artifact]:
    """One Alertmanager config routing `teams` (none when it is not in the outputs)."""
    if Kind.ALERTMANAGER_CONFIG not in ctx.options.outputs:
        return []
    body = dump_yaml(teams_config(teams, ctx.templates, ctx.options),
                     header=cv.FILE_HEADER.format(owner="the catalog"))
    return [Artifact(Kind.ALERTMANAGER_CONFIG, cv.ALERTMANAGER_CONFIG_KEY, cv.ALERTMANAGER_CONFIG_PATH, body,
                     cv.OWNER)]


def render(catalog: Catalog, templates: Templates, options: RenderOptions) -> list[Artifact]:
    """One Alertmanager config for the whole catalog (none when it is not in `options.outputs`)."""
    return render_shared(catalog.teams_in_use(), RenderContext.of(catalog, templates, options))
