"""Grafana dashboards: one per service, one SLO overview per team and one for the org, their folders,
and a file-provisioning provider. Layout and panels are data in `dashboards/` (see its README).

Placeholders in that data are `@{name}`; an unknown one fails the render. Catalog values are escaped
for where they land: PromQL label values inside `expr`, JSON strings everywhere else (by the encoder).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from obsctl.errors import Problem, SpecError
from obsctl.model import conventions as cv
from obsctl.model import placeholders
from obsctl.model.artifact import Artifact, Kind
from obsctl.model.entities import SLO, BudgetingMethod, Catalog, EntityRef, Service, Team
from obsctl.model.escape import promql
from obsctl.model.escape import url as url_escape
from obsctl.model.platform import SliShape, Templates
from obsctl.model.windows import WindowTable
from obsctl.render.context import RenderContext
from obsctl.render.options import RenderOptions
from obsctl.render.promql import parse_error
from obsctl.render.sli import shape_selector
from obsctl.render.yamlout import dump_yaml
from obsctl.slo.alerts import enabled_tiers

LAYOUT = "dashboards/layout.yaml"
PANELS = "dashboards/panels.yaml"
RUNTIMES = "dashboards/runtimes.yaml"
DEFAULTS = "dashboards/defaults.yaml"

_UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]*\]\]")
_MAX_TITLE = 200
_MAX_TEXT = 2000
DATASOURCE_VAR = "datasource"
ENVIRONMENT_VAR = "environment"
_DS = {"type": "prometheus", "uid": "${" + DATASOURCE_VAR + "}"}
_PANEL_TYPES = ("timeseries", "stat", "table")
_PANEL_KEYS = frozenset({"type", "title", "description", "unit", "decimals", "min", "max", "width", "height",
                         "time_from", "targets", "thresholds", "thresholds_style", "options", "custom",
                         "transformations", "overrides"})


# ----------------------------------------------------------------------------- escaping and filling

def _url_quote(value: str) -> str:
    return url_escape.component(value)


def _clean_text(value: str, limit: int) -> str:
    return " ".join(value.split())[:limit].strip()


def _safe_url(url: str) -> str:
    """Only http(s) links leave the catalog for a dashboard; anything else (javascript:, data:) is dropped."""
    url = url.strip()
    return url if re.match(r"^https?://[^\s\"'<>]+$", url) else ""


@dataclass(frozen=True)
class Var:
    """A placeholder's value as text (titles, legends) and inside PromQL (expr)."""

    text: str
    expr: str

    @classmethod
    def label(cls, value: str) -> Var:
        """A catalog value: verbatim in text, escaped inside a PromQL string."""
        return cls(value, promql.grafana_string_body(value))

    @classmethod
    def fragment(cls, value: str) -> Var:
        """Something obsctl built (a selector, a metric name): the same everywhere."""
        return cls(value, value)


Vars = Mapping[str, Var]


class _Filler:
    """Fills @{name} placeholders; every failure names the template and the missing name."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fill(self, template: str, values: Vars, context: str, where: str) -> str:
        def lookup(name: str) -> str | None:
            var = values.get(name)
            return None if var is None else (var.expr if context == "expr" else var.text)

        try:
            return placeholders.fill_text(template, lookup, lambda: sorted(values))
        except placeholders.PlaceholderError as exc:
            raise SpecError([Problem(self.source, 0, "", where, str(exc))]) from None

    def deep(self, value: Any, values: Vars, where: str) -> Any:
        """Fill every string inside a nested structure (text context)."""
        if isinstance(value, str):
            return self.fill(value, values, "text", where)
        if isinstance(value, list):
            return [self.deep(v, values, where) for v in value]
        if isinstance(value, dict):
            return {str(k): self.deep(v, values, f"{where}.{k}") for k, v in value.items()}
        return value


# ----------------------------------------------------------------------------- the template data

@dataclass(frozen=True)
class Library:
    """The parsed `dashboards/` data."""

    settings: Mapping[str, Any]
    layouts: Mapping[str, Mapping[str, Any]]
    panels: Mapping[str, Mapping[str, Any]]
    runtimes: Mapping[str, Sequence[Mapping[str, Any]]]
    defaults: Mapping[str, Mapping[str, Any]]

    @classmethod
    def load(cls, templates: Templates) -> Library:
        """Parse and check the dashboards/ data files; every problem at once."""
        problems: list[Problem] = []

        def doc(path: str) -> dict[str, Any]:
            data = templates.yaml(path)  # parsed (and its YAML syntax checked) when the templates loaded
            if not isinstance(data, dict):
                problems.append(Problem(path, 0, "", "", "must be a mapping"))
                return {}
            return data

        layout, panels, runtimes, defaults = doc(LAYOUT), doc(PANELS), doc(RUNTIMES), doc(DEFAULTS)
        for name, panel in panels.items():
            _check_panel(panel, PANELS, str(name), problems)
        for runtime, items in runtimes.items():
            if not isinstance(items, list):
                problems.append(Problem(RUNTIMES, 0, "", str(runtime), "must be a list of panels"))
                continue
            for i, panel in enumerate(items):
                _check_panel(panel, RUNTIMES, f"{runtime}[{i}]", problems)
        for kind in ("service", "team", "org"):
            spec = layout.get(kind)
            if not isinstance(spec, dict) or not isinstance(spec.get("rows"), list):
                problems.append(Problem(LAYOUT, 0, "", kind, "needs a mapping with a `rows` list"))
                continue
            for i, row in enumerate(spec["rows"]):
                names = row.get("panels", []) if isinstance(row, dict) else None
                if not isinstance(names, list):
                    problems.append(Problem(LAYOUT, 0, "", f"{kind}.rows[{i}]", "needs a `panels` list"))
                    continue
                for name in names:
                    if name not in panels:
                        problems.append(Problem(LAYOUT, 0, "", f"{kind}.rows[{i}]", f"unknown panel {name!r}"))
        if not isinstance(layout.get("settings"), dict):
            problems.append(Problem(LAYOUT, 0, "", "settings", "missing"))
        if problems:
            raise SpecError(problems)
        return cls(layout["settings"], {k: layout[k] for k in ("service", "team", "org")}, panels,
                   runtimes, defaults)


def _check_panel(panel: Any, path: str, name: str, problems: list[Problem]) -> None:
    if not isinstance(panel, dict):
        problems.append(Problem(path, 0, "", name, "a panel must be a mapping"))
        return
    unknown = set(panel) - _PANEL_KEYS
    if unknown:
        problems.append(Problem(path, 0, "", name, f"unknown panel keys: {', '.join(sorted(map(str, unknown)))}"))
    if panel.get("type") not in _PANEL_TYPES:
        problems.append(Problem(path, 0, "", name, f"type must be one of {', '.join(_PANEL_TYPES)}"))
    targets = panel.get("targets")
    if not isinstance(targets, list) or not targets or \
            not all(isinstance(t, dict) and isinstance(t.get("expr"), str) for t in targets):
        problems.append(Problem(path, 0, "", name, "targets must be a non-empty list of {expr: ...}"))
    width = panel.get("width", 12)
    if not isinstance(width, int) or not 1 <= width <= 24:
        problems.append(Problem(path, 0, "", name, "width must be an integer from 1 to 24"))


# ----------------------------------------------------------------------------- panels

def _number(text: Any, where: str, source: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise SpecError([Problem(source, 0, "", where, f"not a number: {text!r}")]) from None


def _copy(value: Any) -> Any:
    """A deep copy of parsed template data (dicts, lists, immutable scalars), without deepcopy's bookkeeping."""
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    return value


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = _copy(dict(base))
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else _copy(v)
    return out


@dataclass
class _Ctx:
    """What one dashboard's panels are filled from."""

    lib: Library
    filler: _Filler
    values: dict[str, Var]
    windows: Sequence[str] = ()
    tiers: Sequence[Mapping[str, Var]] = ()


def _panel(spec: Mapping[str, Any], ctx: _Ctx, where: str) -> dict[str, Any]:
    fill = ctx.filler.fill
    values = ctx.values
    ptype = str(spec["type"])
    targets: list[dict[str, Any]] = []
    for i, t in enumerate(spec["targets"]):
        scopes: Iterable[Mapping[str, Var]] = [{}]
        if t.get("for_each") == "window":
            scopes = [{"window": Var.fragment(w),
                       "window_burn_rate_series": Var.fragment(cv.series(cv.SERIES_BURN_RATE, w)),
                       "window_error_ratio_series": Var.fragment(cv.series(cv.SERIES_ERROR_RATIO, w))}
                      for w in ctx.windows]
        for extra in scopes:
            scope = {**values, **extra}
            target: dict[str, Any] = {
                "datasource": dict(_DS),
                "expr": fill(str(t["expr"]), scope, "expr", f"{where}.targets[{i}].expr"),
                "refId": str(t.get("ref") or _ref_id(len(targets))),
            }
            if "legend" in t:
                target["legendFormat"] = fill(str(t["legend"]), scope, "text", f"{where}.targets[{i}].legend")
            if t.get("instant"):
                target["instant"] = True
                target["range"] = False
            if t.get("format"):
                target["format"] = str(t["format"])
            targets.append(target)
    defaults = ctx.lib.defaults.get(ptype, {})
    field_defaults: dict[str, Any] = {
        "custom": _deep_merge(defaults.get("custom") or {}, ctx.filler.deep(spec.get("custom") or {}, values, where)),
    }
    for key in ("unit",):
        if key in spec:
            field_defaults[key] = fill(str(spec[key]), values, "text", f"{where}.{key}")
    for key in ("decimals", "min", "max"):
        if key in spec:
            field_defaults[key] = _number(spec[key], f"{where}.{key}", ctx.filler.source)
    if "thresholds" in spec:
        steps: list[dict[str, Any]] = []
        for j, step in enumerate(spec["thresholds"]):
            scopes2: Iterable[Mapping[str, Var]] = ctx.tiers if step.get("for_each") == "tier" else [{}]
            for extra in scopes2:
                scope = {**values, **extra}
                w = f"{where}.thresholds[{j}]"
                steps.append({"color": fill(str(step["color"]), scope, "text", w),
                              "value": _number(fill(str(step["value"]), scope, "text", w), w, ctx.filler.source)})
        # The first step is Grafana's base colour (its value is ignored); the rest ascend.
        steps = steps[:1] + sorted(steps[1:], key=lambda s: (s["value"], s["color"]))
        field_defaults["thresholds"] = {"mode": "absolute", "steps": steps}
        if spec.get("thresholds_style") and ptype == "timeseries":
            field_defaults["custom"]["thresholdsStyle"] = {"mode": str(spec["thresholds_style"])}
        if ptype == "stat":
            field_defaults["color"] = {"mode": "thresholds"}
    overrides = ctx.filler.deep(spec.get("overrides") or [], values, f"{where}.overrides")
    panel: dict[str, Any] = {
        "type": ptype,
        "title": _clean_text(fill(str(spec.get("title", "")), values, "text", f"{where}.title"), _MAX_TITLE),
        "datasource": dict(_DS),
        "targets": targets,
        "fieldConfig": {"defaults": field_defaults, "overrides": overrides},
        "options": _deep_merge(defaults.get("options") or {},
                               ctx.filler.deep(spec.get("options") or {}, values, where)),
    }
    if spec.get("description"):
        panel["description"] = _clean_text(fill(str(spec["description"]), values, "text", f"{where}.description"),
                                           _MAX_TEXT)
    if spec.get("time_from"):
        panel["timeFrom"] = fill(str(spec["time_from"]), values, "text", f"{where}.time_from")
    if spec.get("transformations"):
        panel["transformations"] = ctx.filler.deep(spec["transformations"], values, f"{where}.transformations")
    return panel


def _ref_id(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"Q{i}"


def _layout_rows(rows: Sequence[tuple[str, list[dict[str, Any]]]], height: int) -> list[dict[str, Any]]:
    """Rows and their panels in Grafana's flat list, with grid positions flowing left to right."""
    out: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for title, panels in rows:
        out.append({"type": "row", "title": title, "collapsed": False, "id": next_id, "panels": [],
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
        next_id += 1
        y += 1
        x = 0
        line_h = 0
        for panel in panels:
            w = int(panel.pop("_width", 12))
            h = int(panel.pop("_height", height))
            if x + w > 24:
                y += line_h
                x, line_h = 0, 0
            panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
            panel["id"] = next_id
            next_id += 1
            x += w
            line_h = max(line_h, h)
            out.append(panel)
        y += line_h
    return out


def _build_panel(spec: Mapping[str, Any], ctx: _Ctx, where: str) -> dict[str, Any]:
    panel = _panel(spec, ctx, where)
    panel["_width"] = int(spec.get("width", 12))
    panel["_height"] = int(spec.get("height", ctx.lib.settings.get("panel_height", 8)))
    return panel


# ----------------------------------------------------------------------------- dashboards

def _link(title: str, url: str, icon: str, tooltip: str = "") -> dict[str, Any]:
    return {"title": title, "type": "link", "icon": icon, "tooltip": tooltip, "url": url, "tags": [],
            "asDropdown": False, "targetBlank": True, "includeVars": False, "keepTime": False}


def _tag_link(title: str, tags: list[str]) -> dict[str, Any]:
    return {"title": title, "type": "dashboards", "icon": "dashboard", "tooltip": "", "tags": tags,
            "asDropdown": True, "targetBlank": False, "includeVars": False, "keepTime": True}


def _datasource_var(options: RenderOptions) -> dict[str, Any]:
    return {"type": "datasource", "name": DATASOURCE_VAR, "label": "Data source", "query": "prometheus",
            "current": {"text": options.datasource_uid, "value": options.datasource_uid},
            "hide": 0, "refresh": 1, "regex": "", "options": [], "multi": False, "includeAll": False}


def _environment_var(options: RenderOptions, query: str) -> dict[str, Any]:
    return {"type": "query", "name": ENVIRONMENT_VAR, "label": "Environment", "datasource": dict(_DS),
            "query": query, "refresh": 2, "sort": 1, "includeAll": True, "allValue": ".*", "multi": False,
            "current": {"text": options.environment, "value": options.environment}, "options": [], "hide": 0,
            "regex": ""}


def _dashboard(lib: Library, uid: str, title: str, description: str, tags: list[str], *,
               panels: list[dict[str, Any]], variables: list[dict[str, Any]],
               links: list[dict[str, Any]]) -> dict[str, Any]:
    s = lib.settings
    time = s.get("time") or {"from": "now-6h", "to": "now"}
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": tags,
        "editable": True,
        "graphTooltip": int(s.get("graph_tooltip", 1)),
        "schemaVersion": int(s.get("schema_version", 41)),
        "time": {"from": str(time["from"]), "to": str(time["to"])},
        "timezone": str(s.get("timezone", "browser")),
        "refresh": str(s.get("refresh", "1m")),
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": variables},
        "links": links,
        "panels": panels,
    }


def _period(days: int) -> str:
    return f"{days}d"


def _table(templates: Templates, slo: SLO, source: str) -> WindowTable:
    table = templates.windows.get(slo.period_days)
    if table is None:
        raise SpecError([Problem(source, 0, "", "", f"no window table for a {slo.period_days}d period")])
    return table


def _common_vars(options: RenderOptions) -> dict[str, Var]:
    names = {
        "series_period_error_ratio": cv.SERIES_PERIOD_ERROR_RATIO,
        "series_budget_remaining": cv.SERIES_BUDGET_REMAINING,
        "series_objective": cv.SERIES_OBJECTIVE,
        "series_error_budget": cv.SERIES_ERROR_BUDGET,
        "series_period_burn_rate": cv.SERIES_PERIOD_BURN_RATE,
        "series_period_total": cv.SERIES_PERIOD_TOTAL,
        "series_info": cv.SERIES_INFO,
        "environment_default": options.environment,
        "slo_identity": ", ".join((cv.LABEL_SERVICE, cv.LABEL_NAMESPACE, cv.LABEL_SLO)),
    }
    return {k: Var.fragment(v) for k, v in names.items()}


def _shape_selector(shape: SliShape, svc: Service) -> str:
    # without an environment matcher: the dashboard adds its own, on the $environment variable
    return shape_selector(shape, svc, "", promql.grafana_string_body)


TeamLookup = Callable[[EntityRef], Team | None]


def _team_title(team_of: TeamLookup, ref: EntityRef) -> str:
    team = team_of(ref)
    return _clean_text(team.title if team and team.title else ref.name, _MAX_TITLE) or ref.name


def _team_folder(ref: EntityRef) -> str:
    return cv.team_folder_uid(ref)


def _catalog_url(svc: Service, options: RenderOptions) -> str:
    """The service's Backstage entity page (backstage.public_url); none without that setting."""
    return _safe_url(cv.backstage_entity_url(options.catalog_url, svc)) if options.catalog_url else ""


def _service_dashboard(svc: Service, team_of: TeamLookup, templates: Templates, options: RenderOptions,
                       lib: Library) -> dict[str, Any]:
    filler = _Filler(LAYOUT)
    shape = templates.sli_shapes.get(svc.protocol.value)
    if shape is None:
        raise SpecError([Problem(str(svc.origin.file), 0, str(svc.ref), "protocol",
                                 f"no SLI shape for protocol {svc.protocol.value} in alert-rules/sli.yaml")])
    env_label = str(lib.settings.get("environment_label", "deployment_environment_name"))
    base = _shape_selector(shape, svc)
    env_matcher = f'{env_label}=~"${ENVIRONMENT_VAR}"'
    title = _clean_text(svc.title or svc.name, _MAX_TITLE) or svc.name
    team_title = _team_title(team_of, svc.team)
    values: dict[str, Var] = {
        **_common_vars(options),
        "service": Var.label(svc.name),
        "namespace": Var.label(svc.namespace),
        "service_title": Var.label(title),
        "service_description": Var.label(_clean_text(svc.description, _MAX_TEXT)),
        "team": Var.label(svc.team.name),
        "team_title": Var.label(team_title),
        "system": Var.label(svc.system),
        "tier": Var.fragment(str(svc.tier)),
        "protocol": Var.fragment(svc.protocol.value),
        "runtime": Var.fragment(svc.runtime.value),
        "environment_label": Var.fragment(env_label),
        "selector": Var.fragment(f"{base},{env_matcher}"),
        "runtime_selector": Var.fragment(f"{base},{env_matcher}"),
        "base_selector": Var.fragment(base),
        "count_metric": Var.fragment(shape.count_metric),
        "bucket_metric": Var.fragment(shape.bucket_metric),
        "error_matcher": Var.fragment(shape.error_matcher),
    }
    spec = lib.layouts["service"]
    colors = lib.settings.get("severity_colors") or {}
    rows: list[tuple[str, list[dict[str, Any]]]] = []
    for ri, row in enumerate(spec["rows"]):
        where = f"service.rows[{ri}]"
        if row.get("runtime"):
            runtime_panels = lib.runtimes.get(svc.runtime.value) or []
            if not runtime_panels:
                continue
            ctx = _Ctx(lib, _Filler(RUNTIMES), values)
            rows.append((filler.fill(str(row.get("title", "")), values, "text", where),
                         [_build_panel(p, ctx, f"{svc.runtime.value}[{i}]") for i, p in enumerate(runtime_panels)]))
            continue
        if row.get("for_each") == "slo":
            for slo in svc.slos:
                table = _table(templates, slo, str(svc.origin.file))
                slo_values = {**values, **_slo_vars(svc, slo)}
                tiers = [{"tier": Var.fragment(t.name), "tier_burn_rate": Var.fragment(repr(t.burn_rate)),
                          "tier_severity": Var.fragment(t.severity),
                          "tier_color": Var.fragment(str(colors.get(t.severity, "red")))}
                         for t in enabled_tiers(slo, table)]
                windows = [cv.window_name(w) for w in table.windows_s]
                ctx = _Ctx(lib, _Filler(PANELS), slo_values, windows, tiers)
                rows.append((_clean_text(filler.fill(str(row.get("title", "")), slo_values, "text", where),
                                         _MAX_TITLE),
                             [_build_panel(lib.panels[n], ctx, str(n)) for n in row["panels"]]))
            continue
        ctx = _Ctx(lib, _Filler(PANELS), values)
        rows.append((_clean_text(filler.fill(str(row.get("title", "")), values, "text", where), _MAX_TITLE),
                     [_build_panel(lib.panels[n], ctx, str(n)) for n in row["panels"]]))
    links: list[dict[str, Any]] = []
    for name, url, icon in (("Runbook", svc.links.runbook, "doc"), ("Source", svc.links.source, "external link"),
                            ("Catalog", _catalog_url(svc, options), "info"),
                            ("Catalog file", svc.links.catalog, "external link")):
        if _safe_url(url):
            links.append(_link(name, _safe_url(url), icon))
    alerts_url = _safe_url(f"{options.prometheus_url.rstrip('/')}/alerts?search="
                           f"{_url_quote(cv.rule_group_name(svc, '').rstrip('-'))}") if options.prometheus_url else ""
    if alerts_url:
        links.append(_link("Alerting rules", alerts_url, "bolt", "obsctl's SLO alerts for this service"))
    links.append(_link("Team SLO overview", f"/d/{cv.team_overview_uid(svc.team)}", "dashboard"))
    links.append(_tag_link("Team dashboards", [cv.MANAGED_TAG, f"team:{svc.team.name}"]))
    variables = [_datasource_var(options), _environment_var(
        options, f"label_values({shape.count_metric}{{{base}}}, {env_label})")]
    desc = filler.fill(str(spec.get("description", "")), values, "text", "service.description")
    return _dashboard(lib, cv.service_dashboard_uid(svc),
                      _clean_text(filler.fill(str(spec.get("title", "")), values, "text", "service.title"),
                                  _MAX_TITLE) or svc.name,
                      _clean_text(desc, _MAX_TEXT), cv.dashboard_tags(svc),
                      panels=_layout_rows(rows, int(lib.settings.get("panel_height", 8))), variables=variables,
                      links=links)


def _slo_vars(svc: Service, slo: SLO) -> dict[str, Var]:
    selector = ",".join(f'{k}="{promql.grafana_string_body(v)}"' for k, v in cv.alert_selector(svc, slo).items())
    return {
        "slo_name": Var.label(slo.name),
        "slo_description": Var.label(_clean_text(slo.description, _MAX_TEXT)),
        "slo_selector": Var.fragment(selector),
        "objective": Var.fragment(repr(slo.objective)),
        "objective_percent": Var.fragment(slo.objective_percent),
        "error_budget": Var.fragment(repr(round(slo.error_budget, 12))),
        "period": Var.fragment(_period(slo.period_days)),
        "period_days": Var.fragment(str(slo.period_days)),
        "budgeting": Var.fragment(slo.budgeting.value),
        "sli_kind": Var.fragment(slo.sli.kind),
        "timeslices": Var.fragment("true" if slo.budgeting is BudgetingMethod.TIMESLICES else "false"),
        # What the period's budget is counted on: bad slices for timeslices, bad events otherwise.
        "series_period_bad_ratio": Var.fragment(cv.SERIES_PERIOD_BAD_SLICES if slo.budgeting is
                                                BudgetingMethod.TIMESLICES else cv.SERIES_PERIOD_ERROR_RATIO),
    }


def _overview(lib: Library, kind: str, uid: str, tags: list[str], *, values: dict[str, Var],
              options: RenderOptions, links: list[dict[str, Any]]) -> dict[str, Any]:
    spec = lib.layouts[kind]
    filler = _Filler(LAYOUT)
    ctx = _Ctx(lib, _Filler(PANELS), values)
    rows = [(_clean_text(filler.fill(str(row.get("title", "")), values, "text", f"{kind}.rows[{i}]"), _MAX_TITLE),
             [_build_panel(lib.panels[n], ctx, str(n)) for n in row["panels"]])
            for i, row in enumerate(spec["rows"])]
    title = _clean_text(filler.fill(str(spec.get("title", "")), values, "text", f"{kind}.title"), _MAX_TITLE)
    desc = _clean_text(filler.fill(str(spec.get("description", "")), values, "text", f"{kind}.description"),
                       _MAX_TEXT)
    return _dashboard(lib, uid, title or uid, desc, tags,
                      panels=_layout_rows(rows, int(lib.settings.get("panel_height", 8))),
                      variables=[_datasource_var(options)], links=links)


def _info_join(info_matchers: str) -> str:
    """Join an SLO series with the info series: it brings the team label (and filters by it, when asked)."""
    on = ", ".join((cv.LABEL_SERVICE, cv.LABEL_NAMESPACE, cv.LABEL_SLO))
    return f"* on({on}) group_left({cv.LABEL_TEAM}) {cv.SERIES_INFO}{info_matchers}"


def _team_overview(ref: EntityRef, team_of: TeamLookup, options: RenderOptions, lib: Library) -> dict[str, Any]:
    values = {**_common_vars(options), "team": Var.label(ref.name), "team_namespace": Var.label(ref.namespace),
              "team_title": Var.label(_team_title(team_of, ref))}
    values["overview_join"] = Var.fragment(
        _info_join(f'{{{cv.LABEL_TEAM}="{promql.grafana_string_body(ref.name)}"}}'))
    links = [_tag_link("Service dashboards", [cv.MANAGED_TAG, f"team:{ref.name}"]),
             _link("SLO overview", f"/d/{cv.ORG_OVERVIEW_UID}", "dashboard")]
    return _overview(lib, "team", cv.team_overview_uid(ref), cv.team_overview_tags(ref), values=values,
                     options=options, links=links)


def _org_overview(options: RenderOptions, lib: Library) -> dict[str, Any]:
    values = {**_common_vars(options), "overview_join": Var.fragment(_info_join(""))}
    links = [_tag_link("Team SLO overviews", [cv.MANAGED_TAG, cv.OVERVIEW_TAG])]
    return _overview(lib, "org", cv.ORG_OVERVIEW_UID, cv.org_overview_tags(), values=values, options=options,
                     links=links)


# ----------------------------------------------------------------------------- self-check

def _promql_check(expr: str) -> str | None:
    """Parse an expression with Grafana's variables stood in for; the error text when it does not parse."""
    probe = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return parse_error(_GRAFANA_VAR.sub("x", probe))


def self_check(dashboard: Mapping[str, Any]) -> list[str]:
    """Structural checks of a rendered dashboard (the full JSON-schema validation runs in the tests)."""
    errs: list[str] = []
    uid = dashboard.get("uid")
    if not isinstance(uid, str) or not _UID.match(uid):
        errs.append(f"uid {uid!r} does not fit [A-Za-z0-9_-]{{1,40}}")
    title = dashboard.get("title")
    if not isinstance(title, str) or not title or title != title.strip():
        errs.append("title must be a non-empty trimmed string")
    for key in ("schemaVersion", "templating", "annotations"):
        if key not in dashboard:
            errs.append(f"missing {key}")
    ids: set[int] = set()
    for panel in dashboard.get("panels", []):
        pid = panel.get("id")
        if pid in ids:
            errs.append(f"duplicate panel id {pid}")
        ids.add(pid)
        pos = panel.get("gridPos", {})
        if not (0 < pos.get("w", 0) <= 24 and 0 <= pos.get("x", -1) < 24 and pos["x"] + pos["w"] <= 24
                and pos.get("h", 0) > 0):
            errs.append(f"panel {pid}: gridPos out of bounds {pos}")
        if panel.get("type") == "row":
            continue
        refs = [t.get("refId") for t in panel.get("targets", [])]
        if len(set(refs)) != len(refs):
            errs.append(f"panel {pid}: duplicate refIds")
        for t in panel.get("targets", []):
            problem = _promql_check(str(t.get("expr", "")))
            if problem:
                errs.append(f"panel {pid} ({panel.get('title')}): PromQL does not parse: {problem}: {t.get('expr')}")
        for step in panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", []):
            if not isinstance(step.get("value"), float | int):
                errs.append(f"panel {pid}: threshold value must be a number")
    return errs


def _artifact_for(dashboard: dict[str, Any], folder_uid: str, owner: str) -> Artifact:
    errs = self_check(dashboard)
    if errs:
        raise SpecError([Problem(owner, 0, owner, f"dashboard {dashboard.get('uid')}", e) for e in errs])
    uid = str(dashboard["uid"])
    return Artifact(Kind.GRAFANA_DASHBOARD, uid, cv.dashboard_path(folder_uid, uid), cv.grafana_json(dashboard),
                    owner)


def _folder(uid: str, title: str, parent: str, owner: str) -> Artifact:
    body: dict[str, Any] = {"uid": uid, "title": title, "description": cv.folder_description(title)}
    if parent:
        body["parentUid"] = parent
    return Artifact(Kind.GRAFANA_FOLDER, uid, cv.folder_path(uid), cv.grafana_json(body), owner)


def _provider(folders: Sequence[tuple[str, str]], options: RenderOptions) -> Artifact:
    base = options.grafana_dashboards_dir.rstrip("/")
    providers = [{
        "name": f"obsctl-{uid}"[:64], "orgId": 1, "type": "file", "folder": title, "folderUid": uid,
        "disableDeletion": False, "allowUiUpdates": False, "updateIntervalSeconds": 60,
        "options": {"path": f"{base}/{uid}", "foldersFromFilesStructure": False},
    } for uid, title in folders]
    body = dump_yaml({"apiVersion": 1, "providers": providers}, header=cv.FILE_HEADER.format(owner="the catalog"),
                     sort_keys=True)
    return Artifact(Kind.GRAFANA_PROVIDER, cv.GRAFANA_PROVIDER_KEY, cv.GRAFANA_PROVIDER_PATH, body, cv.OWNER)


# ----------------------------------------------------------------------------- entry point

def _library(ctx: RenderContext) -> Library:
    """The dashboard library of the context, parsed once."""
    lib = ctx.memo.get("dashboards.library")
    if lib is None:
        lib = ctx.memo["dashboards.library"] = Library.load(ctx.templates)
    return lib


def render_service(svc: Service, ctx: RenderContext) -> list[Artifact]:
    """The dashboard of one service (none when dashboards are not in the outputs)."""
    if Kind.GRAFANA_DASHBOARD not in ctx.options.outputs:
        return []
    board = _service_dashboard(svc, ctx.team, ctx.templates, ctx.options, _library(ctx))
    return [_artifact_for(board, _team_folder(svc.team), str(svc.ref))]


def render_shared(teams: tuple[EntityRef, ...], ctx: RenderContext) -> list[Artifact]:
    """The folders (root, one per team in `teams`), team and org overviews, the file provider (those in the outputs)."""
    options = ctx.options
    if not options.wants(Kind.GRAFANA_FOLDER, Kind.GRAFANA_DASHBOARD, Kind.GRAFANA_PROVIDER):
        return []
    dashboards = Kind.GRAFANA_DASHBOARD in options.outputs
    lib = _library(ctx)
    out: list[Artifact] = [_folder(cv.ROOT_FOLDER_UID, cv.ROOT_FOLDER_TITLE, "", cv.OWNER)]
    folders: list[tuple[str, str]] = [(cv.ROOT_FOLDER_UID, cv.ROOT_FOLDER_TITLE)]
    problems: list[Problem] = []

    def guard(build: Callable[[], dict[str, Any]], folder_uid: str, owner: str) -> None:
        if not dashboards:
            return
        try:
            out.append(_artifact_for(build(), folder_uid, owner))
        except SpecError as exc:
            problems.extend(exc.problems)

    for ref in teams:
        uid = _team_folder(ref)
        title = _team_title(ctx.team, ref)
        out.append(_folder(uid, title, cv.ROOT_FOLDER_UID, str(ref)))
        folders.append((uid, title))
        guard(functools.partial(_team_overview, ref, ctx.team, options, lib), uid, str(ref))
    guard(functools.partial(_org_overview, options, lib), cv.ROOT_FOLDER_UID, cv.OWNER)
    if problems:
        raise SpecError(problems)
    if Kind.GRAFANA_PROVIDER in options.outputs:
        out.append(_provider(folders, options))
    if Kind.GRAFANA_FOLDER not in options.outputs:  # built anyway (a few bytes): the provider needs the titles
        out = [a for a in out if a.kind is not Kind.GRAFANA_FOLDER]
    return out


def render(catalog: Catalog, templates: Templates, options: RenderOptions) -> list[Artifact]:
    """Every Grafana artifact of the catalog in `options.outputs`: folders, dashboards, the file provider."""
    ctx = RenderContext.of(catalog, templates, options)
    if not options.wants(Kind.GRAFANA_FOLDER, Kind.GRAFANA_DASHBOARD, Kind.GRAFANA_PROVIDER):
        return []
    out: list[Artifact] = []
    problems: list[Problem] = []
    for svc in sorted(catalog.services, key=lambda s: str(s.ref)):
        try:
            out.extend(render_service(svc, ctx))
        except SpecError as exc:
            problems.extend(exc.problems)
    try:
        out.extend(render_shared(catalog.teams_in_use(), ctx))
    except SpecError as exc:
        problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    return sorted(out, key=lambda a: a.id)


__all__ = ["Library", "render", "self_check"]
