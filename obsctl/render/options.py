"""Plain values the renderers need from platform settings (renderers never read config)."""

from __future__ import annotations

from dataclasses import dataclass, field

from obsctl.model.artifact import Kind
from obsctl.model.entities import EntityRef

# What a platform renders unless its settings say otherwise: one delivery path per artifact family.
# The Kubernetes manifests (PrometheusRule, OpenTelemetryCollector) and the ruler groups are opt-in.
DEFAULT_OUTPUTS: frozenset[Kind] = frozenset({
    Kind.PROMETHEUS_RULES, Kind.ALERTMANAGER_CONFIG, Kind.GRAFANA_FOLDER, Kind.GRAFANA_DASHBOARD,
    Kind.GRAFANA_PROVIDER, Kind.COLLECTOR_AGENT, Kind.COLLECTOR_GATEWAY,
})


@dataclass(frozen=True)
class ReceiverSpec:
    """One Alertmanager receiver of a team, from the platform config (secrets by file path only)."""

    name: str
    type: str  # pagerduty, opsgenie, slack, webhook
    settings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class TeamRouting:
    """Where a team's pages and tickets go."""

    page: tuple[ReceiverSpec, ...] = ()
    ticket: tuple[ReceiverSpec, ...] = ()


# The collector image of the OpenTelemetryCollector manifests: a distribution that has every
# component obsctl renders (checked in tests against its manifest, tests/data/otelcol/).
DEFAULT_COLLECTOR_IMAGE = "otel/opentelemetry-collector-contrib:0.159.0"


@dataclass(frozen=True)
class KubernetesOptions:
    """What Kubernetes manifests carry beyond the catalog (settings `kubernetes:`)."""

    rules_namespace: str = ""  # PrometheusRule metadata.namespace; "" = the service's catalog namespace
    labels: tuple[tuple[str, str], ...] = ()  # extra metadata.labels on every manifest (e.g. release)
    annotations: tuple[tuple[str, str], ...] = ()
    collector_image: str = DEFAULT_COLLECTOR_IMAGE
    grafana_namespace: str = "monitoring"  # where GrafanaDashboard/GrafanaFolder resources go
    grafana_instance_labels: tuple[tuple[str, str], ...] = (("dashboards", "grafana"),)  # their instanceSelector


@dataclass(frozen=True)
class CatalogIntegration:
    """How the platform turns a well-known catalog annotation into a receiver integration.

    `type` names the annotation it reads: pagerduty (pagerduty.com/service-id on a Group or a
    Component), opsgenie (opsgenie.com/team on a Group), slack (slack.com/channel on a Group).
    `settings` are the integration's settings; `{service_id}` in them is replaced by the PagerDuty
    service id (e.g. `routing_key_file: /etc/alertmanager/secrets/pagerduty/{service_id}`).
    """

    type: str
    severities: tuple[str, ...]
    settings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class HeldRoutes:
    """One team's part of the Alertmanager config kept as the config in place has it, while the catalog read has
    lost the team's routing (its Group held back for errors, or its services held back by the routing check).

    `route_text` and `receivers_text` are the team's route (an item of route.routes) and its receivers (items of
    the top-level list) re-emitted from the config in place ("" when it has no route for the team: then the
    catalog's route, if any, is rendered); `keys` and `edges` are what the team's services that are not rendered
    bring to the dependency inhibitions (see routes.TeamRoutes).
    """

    team: EntityRef
    route_text: str = ""
    receivers_text: str = ""
    keys: tuple[tuple[str, EntityRef], ...] = ()
    edges: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class RenderOptions:
    """Everything renderers take from outside the catalog."""

    # Public URLs for links and alert annotations; "" leaves those links out (never a placeholder).
    grafana_url: str = ""
    prometheus_url: str = ""
    catalog_url: str = ""  # Backstage's UI: entity pages
    traces_datasource_uid: str = ""  # Grafana datasource uids; "" = no trace/log links, no exemplars
    logs_datasource_uid: str = ""
    environment: str = "production"
    datasource_uid: str = "prometheus"
    teams: tuple[tuple[str, TeamRouting], ...] = ()  # team name -> routing
    default_routing: TeamRouting = field(default_factory=TeamRouting)
    catalog_integrations: tuple[CatalogIntegration, ...] = ()  # catalog annotations -> receivers
    collector: tuple[tuple[str, str], ...] = ()  # collector endpoint settings (key -> value)
    group_wait: str = "30s"  # Alertmanager route timing
    group_interval: str = "5m"
    repeat_interval: str = "4h"
    dependency_group_wait: str = ""  # the group_wait of a dependent's pages ("" = group_wait)
    grafana_dashboards_dir: str = "/var/lib/grafana/dashboards/obsctl"  # where Grafana sees grafana/dashboards/
    outputs: frozenset[Kind] = DEFAULT_OUTPUTS  # the artifact kinds to render; renderers build nothing else
    kubernetes: KubernetesOptions = field(default_factory=KubernetesOptions)
    held_routes: tuple[HeldRoutes, ...] = ()  # teams whose routes are kept as the config in place has them

    def wants(self, *kinds: Kind) -> bool:
        """Whether any of `kinds` is to be rendered."""
        return any(k in self.outputs for k in kinds)

    def team_settings(self, team: str) -> TeamRouting:
        """A team's receivers from the platform settings (empty when it has none there)."""
        return dict(self.teams).get(team, TeamRouting())
