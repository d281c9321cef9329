"""Grafana dashboards (the build step): one per service, one SLO overview per team and one for the org,
their folders, and a file-provisioning provider. Layout and panels are data in `dashboards/` (see its
README), parsed by `dashboard_library`; every dashboard passes `dashboard_check` before it becomes an
artifact.

Placeholders in that data are `@{name}`; an unknown one fails the render. Catalog values are escaped
for where they land: PromQL label values inside `expr`, JSON strings everywhere else (by the encoder).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

from obsctl.errors import Problem, SpecError
from obsctl.model import conventions as cv
from obsctl.model.artifact import Artifact, Kind
from obsctl.model.entities import SLO, AvailabilitySLI, BudgetingMethod, Catalog, EntityRef, LatencySLI, Service, Team
from obsctl.model.escape import promql
from obsctl.model.platform import DASHBOARD_LAYOUT as LAYOUT
from obsctl.model.platform import DASHBOARD_PANELS as PANELS
from obsctl.model.platform import DASHBOARD_RUNTIMES as RUNTIMES
from obsctl.model.platform import SliShape, Templates
from obsctl.model.windows import WindowTable
from obsctl.render import grafana_crds
from obsctl.render.context import RenderContext
from obsctl.render.dashboard_check import self_check
from obsctl.render.dashboard_library import (
    DATASOURCE_REF,
    DATASOURCE_VAR,
    ENVIRONMENT_VAR,
    MAX_TEXT,
    MAX_TITLE,
    Filler,
    Library,
    PanelContext,
    Var,
    build_panel,
    clean_text,
    layout_rows,
    safe_url,
    url_quote,
)
from obsctl.render.options import RenderOptions
from obsctl.render.sli import group_labels, shape_selector
from obsctl.render.yamlout import dump_yaml
from obsctl.slo.alerts import enabled_tiers

__all__ = ["LAYOUT", "PANELS", "Library", "render", "render_service", "render_shared", "self_check"]

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
    return {"type": "query", "name": ENVIRONMENT_VAR, "label": "Environment", "datasource": dict(DATASOURCE_REF),
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
        "series_errors_short": cv.series(cv.SERIES_ERRORS, cv.SHORT_RESOLUTION),
        "series_total_short": cv.series(cv.SERIES_TOTAL, cv.SHORT_RESOLUTION),
        "slo_identity": ", ".join((cv.LABEL_SERVICE, cv.LABEL_NAMESPACE, cv.LABEL_SLO)),
    }
    return {k: Var.fragment(v) for k, v in names.items()}


def _shape_selector(shape: SliShape, svc: Service) -> str:
    # without an environment matcher: the dashboard adds its own, on the $environment variable
    return shape_selector(shape, svc, "", promql.grafana_string_body)


TeamLookup = Callable[[EntityRef], Team | None]


def _team_title(team_of: TeamLookup, ref: EntityRef) -> str:
    team = team_of(ref)
    return clean_text(team.title if team and team.title else ref.name, MAX_TITLE) or ref.name


def _team_folder(ref: EntityRef) -> str:
    return cv.team_folder_uid(ref)


def _catalog_url(svc: Service, options: RenderOptions) -> str:
    """The service's Backstage entity page (backstage.public_url); none without that setting."""
    return safe_url(cv.backstage_entity_url(options.catalog_url, svc)) if options.catalog_url else ""


def _service_dashboard(svc: Service, team_of: TeamLookup, templates: Templates, options: RenderOptions,
                       lib: Library) -> dict[str, Any]:
    filler = Filler(LAYOUT)
    shape = templates.sli_shapes.get(svc.protocol.value)
    if shape is None:
        raise SpecError([Problem(str(svc.origin.file), 0, str(svc.ref), "protocol",
                                 f"no SLI shape for protocol {svc.protocol.value} in alert-rules/sli.yaml")])
    env_label = str(lib.settings.get("environment_label", "deployment_environment_name"))
    base = _shape_selector(shape, svc)
    env_matcher = f'{env_label}=~"${ENVIRONMENT_VAR}"'
    title = clean_text(svc.title or svc.name, MAX_TITLE) or svc.name
    team_title = _team_title(team_of, svc.team)
    values: dict[str, Var] = {
        **_common_vars(options),
        "service": Var.label(svc.name),
        "namespace": Var.label(svc.namespace),
        "service_title": Var.label(title),
        "service_description": Var.label(clean_text(svc.description, MAX_TEXT)),
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
        "service_alert_selector": Var.fragment(",".join(
            f'{k}="{promql.grafana_string_body(v)}"' for k, v in
            ((cv.LABEL_SERVICE, svc.name), (cv.LABEL_NAMESPACE, svc.namespace)))),
    }
    spec = lib.layouts["service"]
    colors = lib.settings.get("severity_colors") or {}
    exemplars = bool(options.traces_datasource_uid)
    rows: list[tuple[str, list[dict[str, Any]]]] = []
    for ri, row in enumerate(spec["rows"]):
        where = f"service.rows[{ri}]"
        if row.get("otel_sli") and not _reads_otel_metrics(svc):
            continue
        if row.get("runtime"):
            runtime_panels = lib.runtimes.get(svc.runtime.value) or []
            if not runtime_panels:
                continue
            ctx = PanelContext(lib, Filler(RUNTIMES), values, exemplars=exemplars)
            rows.append((filler.fill(str(row.get("title", "")), values, "text", where),
                         [build_panel(p, ctx, f"{svc.runtime.value}[{i}]") for i, p in enumerate(runtime_panels)]))
            continue
        if row.get("for_each") == "slo":
            for slo in svc.slos:
                table = _table(templates, slo, str(svc.origin.file))
                slo_values = {**values, **_slo_vars(svc, slo)}
                tiers = [{"tier": Var.fragment(t.name), "tier_burn_rate": Var.fragment(repr(t.burn_rate)),
                          "tier_severity": Var.fragment(t.severity),
                          "tier_color": Var.fragment(str(colors.get(t.severity, "red")))}
                         for t in enabled_tiers(slo, table)]
                custom = {w for t in slo.alerting.custom_tiers for w in (t.long_window_s, t.short_window_s)}
                windows = [cv.window_name(w) for w in sorted({*table.windows_s, *custom})]
                ctx = PanelContext(lib, Filler(PANELS), slo_values, windows, tiers, exemplars=exemplars)
                rows.append((clean_text(filler.fill(str(row.get("title", "")), slo_values, "text", where),
                                         MAX_TITLE),
                             [build_panel(lib.panels[n], ctx, str(n)) for n in row["panels"]]))
            continue
        ctx = PanelContext(lib, Filler(PANELS), values, exemplars=exemplars)
        rows.append((clean_text(filler.fill(str(row.get("title", "")), values, "text", where), MAX_TITLE),
                     [build_panel(lib.panels[n], ctx, str(n)) for n in row["panels"]]))
    links: list[dict[str, Any]] = []
    for name, url, icon in (("Runbook", svc.links.runbook, "doc"), ("Source", svc.links.source, "external link"),
                            ("Catalog", _catalog_url(svc, options), "info"),
                            ("Catalog file", svc.links.catalog, "external link")):
        if safe_url(url):
            links.append(_link(name, safe_url(url), icon))
    alerts_url = safe_url(f"{options.prometheus_url.rstrip('/')}/alerts?search="
                           f"{url_quote(cv.rule_group_name(svc, '').rstrip('-'))}") if options.prometheus_url else ""
    if alerts_url:
        links.append(_link("Alerting rules", alerts_url, "bolt", "obsctl's SLO alerts for this service"))
    links.extend(_telemetry_links(svc, options))
    links.append(_link("Team SLO overview", f"/d/{cv.team_overview_uid(svc.team)}", "dashboard"))
    links.append(_tag_link("Team dashboards", [cv.MANAGED_TAG, f"team:{svc.team.name}"]))
    variables = [_datasource_var(options), _environment_var(
        options, f"label_values({shape.count_metric}{{{base}}}, {env_label})")]
    desc = filler.fill(str(spec.get("description", "")), values, "text", "service.description")
    return _dashboard(lib, cv.service_dashboard_uid(svc),
                      clean_text(filler.fill(str(spec.get("title", "")), values, "text", "service.title"),
                                  MAX_TITLE) or svc.name,
                      clean_text(desc, MAX_TEXT), cv.dashboard_tags(svc),
                      panels=layout_rows(rows, int(lib.settings.get("panel_height", 8))), variables=variables,
                      links=links)


def _reads_otel_metrics(svc: Service) -> bool:
    """Whether the service's SLIs read the OpenTelemetry default metrics (the RED panels would show data)."""
    return not svc.slos or any(isinstance(s.sli, AvailabilitySLI | LatencySLI) for s in svc.slos)


def _explore(datasource_uid: str, query_type: str, query: str) -> str:
    """A relative Grafana Explore URL running one query against one datasource (last hour)."""
    pane = {"obsctl": {"datasource": datasource_uid, "range": {"from": "now-1h", "to": "now"},
                       "queries": [{"refId": "A", "datasource": {"uid": datasource_uid},
                                    **({"queryType": query_type} if query_type else {}), "query": query,
                                    **({} if query_type else {"expr": query})}]}}
    return "/explore?schemaVersion=1&panes=" + url_quote(json.dumps(pane, sort_keys=True, separators=(",", ":")))


def _quoted(text: str) -> str:
    """A double-quoted TraceQL/LogQL string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _telemetry_links(svc: Service, options: RenderOptions) -> list[dict[str, Any]]:
    """Links from the dashboard to the service's traces and logs, only for the datasources configured."""
    out: list[dict[str, Any]] = []
    name = _quoted(svc.name)
    if options.traces_datasource_uid:
        uid = options.traces_datasource_uid
        out.append(_link("Traces", _explore(uid, "traceql", f"{{resource.service.name={name}}}"), "external link",
                         "the service's traces"))
        out.append(_link("Error traces", _explore(uid, "traceql",
                                                  f"{{resource.service.name={name} && status=error}}"),
                         "external link", "the service's traces with an error span"))
    if options.logs_datasource_uid:
        out.append(_link("Logs", _explore(options.logs_datasource_uid, "", f"{{service_name={name}}}"),
                         "external link", "the service's logs"))
    return out


def _slo_vars(svc: Service, slo: SLO) -> dict[str, Var]:
    selector = ",".join(f'{k}="{promql.grafana_string_body(v)}"' for k, v in cv.alert_selector(svc, slo).items())
    return {
        "slo_name": Var.label(slo.name),
        "slo_description": Var.label(clean_text(slo.description, MAX_TEXT)),
        "slo_selector": Var.fragment(selector),
        "objective": Var.fragment(repr(slo.objective)),
        "objective_percent": Var.fragment(slo.objective_percent),
        "error_budget": Var.fragment(repr(round(slo.error_budget, 12))),
        "period": Var.fragment(_period(slo.period_days)),
        "period_days": Var.fragment(str(slo.period_days)),
        "budgeting": Var.fragment(slo.budgeting.value),
        "sli_kind": Var.fragment(slo.sli.kind),
        # A grouped SLO draws one line per group: its legend names the group (label names are validated).
        "group_legend": Var.fragment("".join(f" {{{{{g}}}}}" for g in group_labels(slo))),
        "timeslices": Var.fragment("true" if slo.budgeting is BudgetingMethod.TIMESLICES else "false"),
        # What the period's budget is counted on: bad slices for timeslices, bad events otherwise.
        "series_period_bad_ratio": Var.fragment(cv.SERIES_PERIOD_BAD_SLICES if slo.budgeting is
                                                BudgetingMethod.TIMESLICES else cv.SERIES_PERIOD_ERROR_RATIO),
    }


def _overview(lib: Library, kind: str, uid: str, tags: list[str], *, values: dict[str, Var],
              options: RenderOptions, links: list[dict[str, Any]]) -> dict[str, Any]:
    spec = lib.layouts[kind]
    filler = Filler(LAYOUT)
    ctx = PanelContext(lib, Filler(PANELS), values)
    rows = [(clean_text(filler.fill(str(row.get("title", "")), values, "text", f"{kind}.rows[{i}]"), MAX_TITLE),
             [build_panel(lib.panels[n], ctx, str(n)) for n in row["panels"]])
            for i, row in enumerate(spec["rows"])]
    title = clean_text(filler.fill(str(spec.get("title", "")), values, "text", f"{kind}.title"), MAX_TITLE)
    desc = clean_text(filler.fill(str(spec.get("description", "")), values, "text", f"{kind}.description"),
                       MAX_TEXT)
    return _dashboard(lib, uid, title or uid, desc, tags,
                      panels=layout_rows(rows, int(lib.settings.get("panel_height", 8))),
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


def _artifacts_for(dashboard: dict[str, Any], folder_uid: str, owner: str, options: RenderOptions) -> list[Artifact]:
    """The checked dashboard for the Grafana API and files, and as a GrafanaDashboard (those in the outputs)."""
    errs = self_check(dashboard)
    if errs:
        raise SpecError([Problem(owner, 0, owner, f"dashboard {dashboard.get('uid')}", e) for e in errs])
    uid = str(dashboard["uid"])
    body = cv.grafana_json(dashboard)
    out: list[Artifact] = []
    if Kind.GRAFANA_DASHBOARD in options.outputs:
        out.append(Artifact(Kind.GRAFANA_DASHBOARD, uid, cv.dashboard_path(folder_uid, uid), body, owner))
    if Kind.GRAFANA_DASHBOARD_CRD in options.outputs:
        out.append(grafana_crds.dashboard(body, uid, folder_uid, owner, options))
    return out


def _folder(uid: str, title: str, parent: str, owner: str, options: RenderOptions) -> list[Artifact]:
    body: dict[str, Any] = {"uid": uid, "title": title, "description": cv.folder_description(title)}
    if parent:
        body["parentUid"] = parent
    out = [Artifact(Kind.GRAFANA_FOLDER, uid, cv.folder_path(uid), cv.grafana_json(body), owner)]
    if Kind.GRAFANA_FOLDER_CRD in options.outputs:
        out.append(grafana_crds.folder(uid, title, parent, owner, options))
    return out


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
    """The dashboard library (loaded and checked with the platform data)."""
    return ctx.templates.dashboards


def render_service(svc: Service, ctx: RenderContext) -> list[Artifact]:
    """The dashboard of one service (none when dashboards are not in the outputs)."""
    if not ctx.options.wants(Kind.GRAFANA_DASHBOARD, Kind.GRAFANA_DASHBOARD_CRD):
        return []
    board = _service_dashboard(svc, ctx.team, ctx.templates, ctx.options, _library(ctx))
    return _artifacts_for(board, _team_folder(svc.team), str(svc.ref), ctx.options)


def render_shared(teams: tuple[EntityRef, ...], ctx: RenderContext) -> list[Artifact]:
    """The folders (root, one per team in `teams`), team and org overviews, the file provider (those in the outputs)."""
    options = ctx.options
    if not options.wants(*GRAFANA_KINDS):
        return []
    dashboards = options.wants(Kind.GRAFANA_DASHBOARD, Kind.GRAFANA_DASHBOARD_CRD)
    lib = _library(ctx)
    out: list[Artifact] = _folder(cv.ROOT_FOLDER_UID, cv.ROOT_FOLDER_TITLE, "", cv.OWNER, options)
    folders: list[tuple[str, str]] = [(cv.ROOT_FOLDER_UID, cv.ROOT_FOLDER_TITLE)]
    problems: list[Problem] = []

    def guard(build: Callable[[], dict[str, Any]], folder_uid: str, owner: str) -> None:
        if not dashboards:
            return
        try:
            out.extend(_artifacts_for(build(), folder_uid, owner, options))
        except SpecError as exc:
            problems.extend(exc.problems)

    for ref in teams:
        uid = _team_folder(ref)
        title = _team_title(ctx.team, ref)
        out.extend(_folder(uid, title, cv.ROOT_FOLDER_UID, str(ref), options))
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


GRAFANA_KINDS = (Kind.GRAFANA_FOLDER, Kind.GRAFANA_DASHBOARD, Kind.GRAFANA_PROVIDER, Kind.GRAFANA_DASHBOARD_CRD,
                 Kind.GRAFANA_FOLDER_CRD)


def render(catalog: Catalog, templates: Templates, options: RenderOptions) -> list[Artifact]:
    """Every Grafana artifact of the catalog in `options.outputs`: folders, dashboards, the file provider,
    Grafana Operator resources."""
    ctx = RenderContext.of(catalog, templates, options)
    if not options.wants(*GRAFANA_KINDS):
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
