"""Platform settings: one YAML file plus OBSCTL_* environment variables (env wins).

Nested fields use `__` in env names: OBSCTL_GRAFANA__URL. A list or mapping is given as JSON
(OBSCTL_OUTPUTS='["prometheus-rules"]'). Secrets are read from env or from a file path
(`*_file`), never logged.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import yaml

from obsctl.errors import ConfigError
from obsctl.model.artifact import Kind
from obsctl.render.options import DEFAULT_COLLECTOR_IMAGE, DEFAULT_OUTPUTS

# --------------------------------------------------------------------------- typed settings blocks
# Each settings block is a class whose annotated attributes are its keys (default = the class
# value). Values are converted the lenient way a settings file and environment variables need
# ("3" -> 3, "yes" -> True, "a" -> Path("a")); unknown keys are errors; every error names its
# path. This used to be pydantic, whose import and model building were a third of a command's
# start-up; the messages are pydantic's, so errors read as before.


class SecretStr:
    """A secret value: shown as ********** by str/repr, read with get_secret_value()."""

    __slots__ = ("_secret",)

    def __init__(self, value: str) -> None:
        self._secret = value

    def get_secret_value(self) -> str:
        """The secret itself."""
        return self._secret

    def __str__(self) -> str:
        return "**********" if self._secret else ""

    def __repr__(self) -> str:
        return f"SecretStr({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._secret == self._secret

    def __hash__(self) -> int:
        return hash(self._secret)


class SettingsError(ValueError):
    """Settings that do not decode: `errors` lists (path, message) pairs."""

    def __init__(self, errors: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in errors))
        self.errors = errors


class _Bounds(NamedTuple):
    default: Any
    ge: float | None = None
    gt: float | None = None
    le: float | None = None


def Field(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None) -> Any:  # noqa: N802
    """A default with bounds for a number setting."""
    return _Bounds(default, ge, gt, le)


_REQUIRED: Any = object()
_Errors = list[tuple[tuple[str | int, ...], str]]
_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


class _Fail(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


_INT_TEXT = re.compile(r"\s*[+-]?[0-9][0-9_]*(\.0*)?\s*")


def _to_int(value: Any) -> int:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _Fail("Input should be a finite number")
        if not value.is_integer():
            raise _Fail("Input should be a valid integer, got a number with a fractional part")
        return int(value)
    if isinstance(value, str):
        if not _INT_TEXT.fullmatch(value):
            raise _Fail("Input should be a valid integer, unable to parse string as an integer")
        return int(value.strip().split(".")[0])
    raise _Fail("Input should be a valid integer")


def _to_float(value: Any) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str | bytes):
        try:
            if not value.isascii():
                raise ValueError(value)
            return float(value.strip())
        except ValueError:
            raise _Fail("Input should be a valid number, unable to parse string as a number") from None
    raise _Fail("Input should be a valid number")


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    if not isinstance(value, str):
        raise _Fail("Input should be a valid boolean")
    raise _Fail("Input should be a valid boolean, unable to interpret input")


def _to_str(value: Any) -> str:
    if isinstance(value, str) and not isinstance(value, Enum):
        return value
    if isinstance(value, bytes):  # YAML !!binary
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise _Fail("Input should be a valid string, unable to parse raw data as a unicode string") from None
    raise _Fail("Input should be a valid string")


def _to_path(value: Any) -> Path:
    if isinstance(value, Path):
        return value
    if isinstance(value, str):
        return Path(value)
    raise _Fail("Input is not a valid path for <class 'pathlib.Path'>")


def _to_secret(value: Any) -> SecretStr:
    return value if isinstance(value, SecretStr) else SecretStr(_to_str(value))


_SCALARS: dict[Any, Callable[[Any], Any]] = {int: _to_int, float: _to_float, bool: _to_bool, str: _to_str,
                                              Path: _to_path, SecretStr: _to_secret}


def _decode(tp: Any, value: Any, loc: tuple[str | int, ...], errors: _Errors) -> Any:
    origin = typing.get_origin(tp)
    if origin is types.UnionType or origin is typing.Union:
        if value is None:
            return None
        tp = next(arg for arg in typing.get_args(tp) if arg is not type(None))
        origin = typing.get_origin(tp)
    try:
        if origin is list:
            if not isinstance(value, list | tuple | set | frozenset):
                raise _Fail("Input should be a valid list")
            (item,) = typing.get_args(tp)
            return [_decode(item, v, (*loc, i), errors) for i, v in enumerate(value)]
        if origin is dict:
            if not isinstance(value, Mapping):
                raise _Fail("Input should be a valid dictionary")
            _, item = typing.get_args(tp)
            out = {}
            for key, v in value.items():
                if not isinstance(key, str):
                    errors.append(((*loc, key, "[key]"), "Input should be a valid string"))
                out[key] = _decode(item, v, (*loc, key), errors)
            return out
        if isinstance(tp, type) and issubclass(tp, _Strict):
            if isinstance(value, tp):
                return value
            if not isinstance(value, Mapping):
                raise _Fail(f"Input should be a valid dictionary or instance of {tp.__name__}")
            return tp._build(value, loc, errors)
        if isinstance(tp, type) and issubclass(tp, Enum):
            if isinstance(value, tp):
                return value
            try:
                return tp(value)
            except ValueError:
                raise _Fail("Input should be " + " or ".join(repr(m.value) for m in tp)) from None
        return _SCALARS[tp](value)
    except _Fail as exc:
        errors.append((loc, exc.message))
        return None


class _Strict:
    """Base of every settings block: typed keys, unknown keys refused, `_check` run after decoding."""

    # key -> (type, default or _REQUIRED, bounds); built on first use from the annotations
    _fields_cache: ClassVar[dict[str, tuple[Any, Any, _Bounds | None]]]
    # key -> check of the raw value before decoding (raise ValueError)
    _before: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    def __init__(self, **data: Any) -> None:
        errors: _Errors = []
        built = type(self)._build(data, (), errors)
        if errors or built is None:
            raise SettingsError(errors)
        self.__dict__.update(built.__dict__)

    @classmethod
    def fields(cls) -> dict[str, tuple[Any, Any, _Bounds | None]]:
        """The block's keys: (type, default, bounds)."""
        cached = cls.__dict__.get("_fields_cache")
        if cached is None:
            cached = {}
            for name, tp in typing.get_type_hints(cls).items():
                if name.startswith("_") or typing.get_origin(tp) is ClassVar:
                    continue
                default = getattr(cls, name, _REQUIRED)
                bounds = default if isinstance(default, _Bounds) else None
                cached[name] = (tp, bounds.default if bounds else default, bounds)
            cls._fields_cache = cached
        return cached

    @classmethod
    def _build(cls, data: Mapping[str, Any], loc: tuple[str | int, ...], errors: _Errors) -> Any:
        fields = cls.fields()
        start = len(errors)
        values: dict[str, Any] = {}
        for name, (tp, default, bounds) in fields.items():
            if name not in data:
                if default is _REQUIRED:
                    errors.append(((*loc, name), "Field required"))
                else:
                    values[name] = copy.deepcopy(default) if isinstance(default, list | dict | _Strict) else default
                continue
            raw = data[name]
            if name in cls._before:
                try:
                    raw = cls._before[name](raw)
                except ValueError as exc:
                    errors.append(((*loc, name), f"Value error, {exc}"))
                    continue
            value = _decode(tp, raw, (*loc, name), errors)
            if bounds is not None and isinstance(value, float | int):
                problem = _bounds_problem(value, bounds)
                if problem:
                    errors.append(((*loc, name), problem))
            values[name] = value
        for key in data:
            if key not in fields:
                errors.append(((*loc, key), "Extra inputs are not permitted" if isinstance(key, str)
                               else "Keys should be strings"))
        if len(errors) > start:
            return None
        block = cls.__new__(cls)
        block.__dict__.update(values)
        try:
            block._check()
        except ValueError as exc:
            errors.append((loc, f"Value error, {exc}"))
            return None
        return block

    def _check(self) -> None:
        """Checks across keys (raise ValueError)."""

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.__dict__ == self.__dict__

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"


def _bounds_problem(value: float, bounds: _Bounds) -> str:
    if bounds.ge is not None and not value >= bounds.ge:
        return f"Input should be greater than or equal to {_num(bounds.ge)}"
    if bounds.gt is not None and not value > bounds.gt:
        return f"Input should be greater than {_num(bounds.gt)}"
    if bounds.le is not None and not value <= bounds.le:
        return f"Input should be less than or equal to {_num(bounds.le)}"
    return ""


def _num(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _read_secret(value: SecretStr | None, file: Path | None, what: str) -> str:
    if value is not None and value.get_secret_value():
        return value.get_secret_value()
    if file is not None:
        try:
            return file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read secret file {file}: {exc.strerror}") from exc
    return ""


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

    def _check(self) -> None:
        # the routes renderer owns the rules (known types, no inlined secrets): refuse bad settings at load
        from obsctl.render.options import ReceiverSpec
        from obsctl.render.routes import integration

        try:
            integration(ReceiverSpec(self.name, self.type, tuple(sorted(self.settings.items()))))
        except ConfigError as exc:
            raise ValueError(str(exc)) from None


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

    def _check(self) -> None:
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


class AlertingSettings(_Strict):
    """Alertmanager routing: per-team receivers, catalog-annotation mapping, per-severity defaults."""

    teams: dict[str, TeamRoutingSettings] = {}
    catalog: CatalogRoutingSettings = CatalogRoutingSettings()
    default: TeamRoutingSettings = TeamRoutingSettings()
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"
    # Added to group_wait for the pages of a service with dependencies, so its dependency's page (evaluated
    # in another rule group, at another offset) reaches Alertmanager first and mutes them: at least twice
    # Prometheus' rule evaluation interval. "0s" = no wait (a dependent then pages whenever its alert is first).
    dependency_wait: str = "2m"
    alertmanager_url: str = ""  # POST /-/reload after a config change
    config_dir: Path | None = None  # where alertmanager.yml is written (the Alertmanager sink is off without it)
    amtool: str = "amtool"

    def _check(self) -> None:
        from obsctl.model.durations import parse_duration

        for key in ("group_wait", "group_interval", "repeat_interval", "dependency_wait"):
            try:
                parse_duration(getattr(self, key))
            except ValueError as exc:
                raise ValueError(f"alerting.{key}: {exc}") from None


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

    def _check(self) -> None:
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


def _known_kinds(value: Any) -> Any:
    if isinstance(value, list | tuple):
        known = [k.value for k in Kind]
        for item in value:
            if isinstance(item, Kind):
                continue
            if item not in known:
                raise ValueError(f"unknown output kind {item!r}; known kinds: {', '.join(known)}")
    return value


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

    _before: ClassVar[dict[str, Callable[[Any], Any]]] = {"outputs": _known_kinds}

    def _check(self) -> None:
        if self.grafana.drift_policy not in ("overwrite", "keep", "report"):
            raise ValueError("grafana.drift_policy must be overwrite, keep or report")


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
        fields = model.fields() if isinstance(model, type) and issubclass(model, _Strict) else None
        if not fields or key not in fields:
            return None
        annotation = fields[key][0]
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
        if path[0] not in Settings.fields() or not all(path):
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
    except SettingsError as exc:
        lines = [f"{path or 'settings'}: {'.'.join(map(str, loc))}: {msg}" for loc, msg in exc.errors]
        raise ConfigError("\n".join(lines)) from None
