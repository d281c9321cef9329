"""Platform settings: one YAML file plus OBSCTL_* environment variables (env wins).

Nested fields use `__` in env names: OBSCTL_GRAFANA__URL. A list or mapping is given as JSON
(OBSCTL_OUTPUTS='["prometheus-rules"]'). Secrets are read from env or from a file path
(`*_file`), never logged.
"""

from __future__ import annotations

import json
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from obsctl.errors import ConfigError
from obsctl.model.artifact import Kind
from obsctl.render.options import DEFAULT_COLLECTOR_IMAGE, DEFAULT_OUTPUTS


def _read_secret(value: SecretStr | None, file: Path | None, what: str) -> str:
    if value is not None and value.get_secret_value():
        return value.get_secret_value()
    if file is not None:
        try:
            return file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read secret file {file}: {exc.strerror}") from exc
    return ""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CatalogSettings(_Strict):
    """Where the catalog comes from."""

    path: Path = Path("examples/catalog")  # relative to the working directory, like out_dir
    globs: list[str] = ["**/*.yaml", "**/*.yml"]


class GrafanaSettings(_Strict):
    """The Grafana API sink; off unless url is set."""

    url: str = ""
    public_url: str = ""  # the Grafana users open: dashboard links in alerts and status; "" = no links
    # Grafana datasource uids: dashboards link to the service's traces (and ask for exemplars) and logs
    traces_datasource_uid: str = ""
    logs_datasource_uid: str = ""
    token: SecretStr | None = None
    token_file: Path | None = None
    org_id: int = 1
    parallelism: int = 8
    drift_policy: str = "overwrite"
    # serve: a full resync reads every dashboard (finds UI edits) at most this often; other rounds
    # trust the search hits' digest tags (0 = every full resync; `obsctl apply` always reads all)
    deep_check_seconds: float = Field(600.0, ge=0)

    def api_token(self) -> str:
        """The token, from env/settings or its file."""
        return _read_secret(self.token, self.token_file, "grafana.token")


class PrometheusSettings(_Strict):
    """Rule files and the Prometheus that loads them."""

    url: str = ""
    public_url: str = ""  # the Prometheus UI users open: alert links on dashboards; "" = no links
    rules_dir: Path | None = None
    promtool: str = "promtool"


class BackstageSettings(_Strict):
    """The Backstage catalog source (off unless url is set) and the entity pages links point at."""

    url: str = ""
    public_url: str = ""  # the Backstage UI users open (dashboard "Catalog" links, entity status links)
    token: SecretStr | None = None
    token_file: Path | None = None
    poll_seconds: float = 10.0

    def api_token(self) -> str:
        """The token, from env/settings or its file."""
        return _read_secret(self.token, self.token_file, "backstage.token")


class ReceiverSettings(_Strict):
    """An Alertmanager receiver; secrets only by file path (routing_key_file, api_key_file, api_url_file)."""

    name: str
    type: str
    settings: dict[str, str] = {}

    @model_validator(mode="after")
    def _check(self) -> ReceiverSettings:
        # the routes renderer owns the rules (known types, no inlined secrets): refuse bad settings at load
        from obsctl.render.options import ReceiverSpec
        from obsctl.render.routes import integration

        try:
            integration(ReceiverSpec(self.name, self.type, tuple(sorted(self.settings.items()))))
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self


class TeamRoutingSettings(_Strict):
    """Where one team's pages and tickets go."""

    page: list[ReceiverSettings] = []
    ticket: list[ReceiverSettings] = []


class CatalogIntegrationSettings(_Strict):
    """How one well-known catalog annotation becomes a receiver integration (secrets by file path only)."""

    severities: list[str]
    settings: dict[str, str] = {}


class CatalogRoutingSettings(_Strict):
    """Routing from catalog annotations: pagerduty (pagerduty.com/service-id on a Group or Component,
    `{service_id}` in settings), opsgenie (opsgenie.com/team on a Group), slack (slack.com/channel)."""

    pagerduty: CatalogIntegrationSettings | None = None
    opsgenie: CatalogIntegrationSettings | None = None
    slack: CatalogIntegrationSettings | None = None

    @model_validator(mode="after")
    def _check(self) -> CatalogRoutingSettings:
        from obsctl.render.options import ReceiverSpec
        from obsctl.render.routes import SERVICE_ID_PLACEHOLDER, SEVERITIES, integration

        for kind in ("pagerduty", "opsgenie", "slack"):
            item: CatalogIntegrationSettings | None = getattr(self, kind)
            if item is None:
                continue
            bad = [s for s in item.severities if s not in SEVERITIES]
            if bad or not item.severities:
                raise ValueError(f"{kind}.severities must list page and/or ticket")
            probe = {k: v.replace(SERVICE_ID_PLACEHOLDER, "PABC123") for k, v in item.settings.items()}
            if kind == "pagerduty" and not any(SERVICE_ID_PLACEHOLDER in v for v in item.settings.values()):
                raise ValueError("pagerduty.settings must use {service_id} (e.g. routing_key_file: "
                                 "/etc/alertmanager/secrets/pagerduty/{service_id}): each PagerDuty service has "
                                 "its own integration key")
            try:
                integration(ReceiverSpec(f"catalog-{kind}", kind, tuple(sorted(probe.items()))))
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return self


class AlertingSettings(_Strict):
    """Alertmanager routing: per-team receivers, catalog-annotation mapping, per-severity defaults."""

    teams: dict[str, TeamRoutingSettings] = {}
    catalog: CatalogRoutingSettings = CatalogRoutingSettings()
    default: TeamRoutingSettings = TeamRoutingSettings()
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"
    alertmanager_url: str = ""  # POST /-/reload after a config change
    config_dir: Path | None = None  # where alertmanager.yml is written (the Alertmanager sink is off without it)
    amtool: str = "amtool"


class RulerSettings(_Strict):
    """The Mimir/Cortex ruler API sink; off unless url is set. Ruler namespace = owning team."""

    url: str = ""
    tenant: str = "anonymous"  # X-Scope-OrgID
    token: SecretStr | None = None
    token_file: Path | None = None

    def api_token(self) -> str:
        """The bearer token (optional), from env/settings or its file."""
        return _read_secret(self.token, self.token_file, "ruler.token")


_K8S_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_K8S_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


class KubernetesSettings(_Strict):
    """What the Kubernetes manifests carry beyond the catalog (PrometheusRule, OpenTelemetryCollector).

    kube-prometheus-stack's Prometheus selects PrometheusRules by `release: <helm release name>`:
    set `labels: {release: <name>}` (and `rules_namespace` to a namespace it watches).
    """

    rules_namespace: str = ""  # PrometheusRule metadata.namespace; "" = the service's catalog namespace
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    collector_image: str = DEFAULT_COLLECTOR_IMAGE
    # Grafana Operator resources (outputs grafana-dashboard-crd, grafana-folder-crd): their namespace and
    # the labels of the Grafana custom resources they apply to (spec.instanceSelector.matchLabels)
    grafana_namespace: str = "monitoring"
    grafana_instance_labels: dict[str, str] = {"dashboards": "grafana"}

    @model_validator(mode="after")
    def _check(self) -> KubernetesSettings:
        for key, value in self.labels.items():
            if not _K8S_KEY.match(key) or len(key.rpartition("/")[2]) > 63:
                raise ValueError(f"kubernetes.labels: {key!r} is not a Kubernetes label key")
            if len(value) > 63 or not _K8S_LABEL_VALUE.match(value):
                raise ValueError(f"kubernetes.labels.{key}: {value!r} is not a Kubernetes label value")
        for key in self.annotations:
            if not _K8S_KEY.match(key):
                raise ValueError(f"kubernetes.annotations: {key!r} is not a Kubernetes annotation key")
        for field, ns in (("rules_namespace", self.rules_namespace), ("grafana_namespace", self.grafana_namespace)):
            if (ns or field == "grafana_namespace") and (len(ns) > 63 or
                                                         not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", ns)):
                raise ValueError(f"kubernetes.{field}: {ns!r} is not a DNS label")
        for key, value in self.grafana_instance_labels.items():
            if not _K8S_KEY.match(key) or len(value) > 63 or not _K8S_LABEL_VALUE.match(value):
                raise ValueError(f"kubernetes.grafana_instance_labels: {key}={value!r} is not a Kubernetes label")
        if not self.collector_image.strip() or any(c.isspace() for c in self.collector_image):
            raise ValueError(f"kubernetes.collector_image: {self.collector_image!r} is not an image reference")
        return self


class ServeSettings(_Strict):
    """The long-running service."""

    listen: str = "127.0.0.1:8080"
    resync_seconds: float = 60.0
    read_tokens: list[SecretStr] = []
    write_tokens: list[SecretStr] = []
    tokens_file: Path | None = None
    max_delete_fraction: float = Field(0.5, ge=0, le=1)
    allow_mass_delete: bool = False
    otlp_endpoint: str = ""
    sources: list[str] = ["directory", "api", "backstage"]  # backstage only when backstage.url is set
    watch: bool = True  # wake on catalog changes (inotify, polling fallback) besides the periodic resync
    leader_lock_key: int = 0x0B5C7100  # PostgreSQL advisory lock id shared by all replicas
    # a leader that cannot renew its lease stops writing within this; a frozen leader's lease expires after it
    leader_lease_seconds: float = Field(10.0, gt=0)
    # with no token configured writes are refused; this opens them to anyone reaching `listen` (banner says so)
    allow_unauthenticated_writes: bool = False
    team_write_tokens: dict[str, list[SecretStr]] = {}  # team -> tokens that write only that team's services
    allowed_hosts: list[str] = []  # Host names served besides IP literals and localhost ("*": any)
    allowed_origins: list[str] = []  # browser origins that may write ("*": any); same-host origins always may
    registrations_may_override_catalog: bool = False  # a registration may replace a catalog-owned service
    # a service absent from the catalog leaves only after this long and two complete reads (API DELETE: at once)
    deletion_grace_seconds: float = Field(120.0, ge=0)


class Settings(_Strict):
    """All platform settings (load_settings adds the file and the environment)."""

    # alert-rules/, dashboards/, collectors/ overriding the packaged ones (per folder); None = packaged
    templates_dir: Path | None = None
    out_dir: Path = Path("out")
    environment: str = "production"
    state_url: str = "sqlite:///.obsctl/state.db"
    catalog: CatalogSettings = CatalogSettings()
    grafana: GrafanaSettings = GrafanaSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    backstage: BackstageSettings = BackstageSettings()
    alerting: AlertingSettings = AlertingSettings()
    ruler: RulerSettings = RulerSettings()
    serve: ServeSettings = ServeSettings()
    collector: dict[str, str] = {}
    # an otelcol binary (e.g. otelcol-contrib): when set, every collector config is checked with
    # `<binary> validate` before it is written, as promtool and amtool check rules and routes
    otelcol_binary: str = ""
    kubernetes: KubernetesSettings = KubernetesSettings()
    # Artifact kinds to render (Kind values); app.rendered_kinds adds those a configured backend applies.
    outputs: list[Kind] = [k for k in Kind if k in DEFAULT_OUTPUTS]

    @field_validator("outputs", mode="before")
    @classmethod
    def _known_kinds(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            known = [k.value for k in Kind]
            for item in value:
                if isinstance(item, Kind):
                    continue
                if item not in known:
                    raise ValueError(f"unknown output kind {item!r}; known kinds: {', '.join(known)}")
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.grafana.drift_policy not in ("overwrite", "keep", "report"):
            raise ValueError("grafana.drift_policy must be overwrite, keep or report")
        return self


ENV_PREFIX = "OBSCTL_"
_TEXT_TYPES = (str, SecretStr, Path)


def _is_text(annotation: Any) -> bool:
    """str, SecretStr, Path, or an optional one: the env value is taken as it is, never as JSON."""
    if annotation in _TEXT_TYPES:
        return True
    return isinstance(annotation, types.UnionType) and any(arg in _TEXT_TYPES for arg in typing.get_args(annotation))


def _leaf_annotation(path: list[str]) -> Any:
    model: Any = Settings
    annotation: Any = None
    for key in path:
        fields = getattr(model, "model_fields", None)
        if not fields or key not in fields:
            return None
        annotation = fields[key].annotation
        model = annotation
    return annotation


def env_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """OBSCTL_* variables as nested settings: OBSCTL_GRAFANA__URL=u -> {"grafana": {"url": "u"}}.

    Names are case-insensitive; a variable whose first part names no setting is not ours (say
    OBSCTL_CACHE) and is ignored; a value for a list, mapping or model field is parsed as JSON.
    """
    out: dict[str, Any] = {}
    for name, value in sorted(environ.items()):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        if path[0] not in Settings.model_fields or not all(path):
            continue
        parsed: Any = value
        if value.lstrip().startswith(("[", "{")) and not _is_text(_leaf_annotation(path)):
            try:
                parsed = json.loads(value)
            except ValueError as exc:
                raise ConfigError(f"{name}: not valid JSON: {exc}") from None
        node = out
        for key in path[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{name}: conflicts with {ENV_PREFIX}{key.upper()}")
            node = child
        node[path[-1]] = parsed
    return out


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Settings from a YAML file (optional) and the environment; a ConfigError names every bad field."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: settings must be a mapping")
        data.update(loaded)
    data.update({k: v for k, v in overrides.items() if v is not None})
    data = _deep_merge(data, env_settings(os.environ))
    try:
        return Settings(**data)
    except ValidationError as exc:
        lines = [f"{path or 'settings'}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from None
