"""Grafana dashboards (the build step): one per service, one SLO overview per team and one for the org,
their folders, and a file-provisioning provider. Layout and panels are data in `dashboards/` (see its
README), parsed by `dashboard_library`; every dashboard passes `dashboard_check` before it becomes an
artifact.

Placeholders in that data are `@{name}`; an unknown one fails the render. Catalog values are escaped
for where they land: PromQL label values inside `expr`, JSON strings everywhere else (by the encoder).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from obsctl.errors import Problem, SpecError
from obsctl.model import conventions as cv
from obsctl.model.artifact import Artifact, Kind
from obsctl.model.entities import SLO, AvailabilitySLI, BudgetingMethod, Catalog, EntityRef, LatencySLI, Service, Team
from obsctl.model.platform import DASHBOARD_LAYOUT as LAYOUT
from obsctl.model.platform import DASHBOARD_PANELS as PANELS
from obsctl.model.platform import DASHBOARD_RUNTIMES as RUNTIMES
from obsctl.model.platform import SliShape, Templates
from obsctl.model.windows import WindowTable
from obsctl.render import grafana_crds, symbolic
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


TeamLookup = Callable[[EntityRef], Team | None]


def _team_title(team_of: TeamLookup, ref: EntityRef) -> str:
    """The Group's title, else its `team` label: the name in the default namespace, `<namespace>/<name>` elsewhere,
    so the folders of same-named Groups of two namespaces differ (Grafana <= 11.2 refuses sibling folders of one
    title)."""
    team = team_of(ref)
    label = cv.team_label(ref)
    return clean_text(team.title if team and team.title else label, MAX_TITLE) or label


def _team_folder_title(team_of: TeamLookup, ref: EntityRef) -> str:
    """The title of a team's folder: its title, with the namespace added outside the default namespace when the Group
    has a title of its own, so same-titled Groups of two namespaces get two sibling folders Grafana <= 11.2 accepts."""
    title = _team_title(team_of, ref)
    team = team_of(ref)
    if ref.namespace == cv.DEFAULT_NAMESPACE or team is None or not team.title:
        return title
    return clean_text(f"{title} ({ref.namespace})", MAX_TITLE) or title


def _team_folder(ref: EntityRef) -> str:
    return cv.team_folder_uid(ref)


def _catalog_url(svc: Service, options: RenderOptions) -> str:
    """The service's Backstage entity page (backstage.public_url); none without that setting."""
    return safe_url(cv.backstage_entity_url(options.catalog_url, svc)) if options.catalog_url else ""


# ----------------------------------------------------------------------------- a service's dashboard
#
# A service dashboard is built from two things: its `_Shape` (everything but the service's own strings:
# protocol, runtime, tier, the SLOs' objectives, windows and tiers, which links it has) and its `_Strings`
# (names, titles, URLs, uid, tags). `_build` only concatenates the strings into the dashboard's strings,
# so a shape is built once with stand-ins and each service's JSON is that text with its strings
# substituted (obsctl.render.symbolic; the conditions are checked per shape and per service, and anything
# else is built the ordinary way). tests/unit/test_dashboard_shapes.py compares both on hostile catalogs.

# The label values every service dashboard can show, in `_Strings.labels` order.
_LABELS = ("service", "namespace", "service_title", "service_description", "team", "team_title", "system")


class _Strings(NamedTuple):
    """Every string a service dashboard takes from its service and team (labels in `_LABELS` order)."""

    labels: tuple[Var, ...]
    slo_labels: tuple[tuple[Var, Var], ...]  # per SLO: its name and description
    uid: str
    tags: tuple[str, ...]
    links: tuple[str, ...]  # the URL of each link in `_Shape.links`
    team_tag: str

    def flat(self) -> list[str]:
        """Every string, in slot order (see `unflat`)."""
        out: list[str] = []
        for var in self.labels:
            out += (var.text, var.expr)
        for name, description in self.slo_labels:
            out += (name.text, name.expr, description.text, description.expr)
        return [*out, self.uid, *self.tags, *self.links, self.team_tag]

    def unflat(self, values: Sequence[str]) -> _Strings:
        """Strings of the same layout holding `values` (in slot order)."""
        it = iter(values)
        labels = tuple(Var(next(it), next(it)) for _ in self.labels)
        slos = tuple((Var(next(it), next(it)), Var(next(it), next(it))) for _ in self.slo_labels)
        uid = next(it)
        tags = tuple(next(it) for _ in self.tags)
        links = tuple(next(it) for _ in self.links)
        return _Strings(labels, slos, uid, tags, links, next(it))

    def query_slots(self) -> frozenset[int]:
        """The slots whose values are escaped for a PromQL string (the labels' `expr` forms)."""
        n = len(self.labels)
        return frozenset([*range(1, 2 * n, 2), *(2 * n + 4 * i + j for i in range(len(self.slo_labels))
                                                   for j in (1, 3))])


@dataclass(frozen=True)
class _SloShape:
    """One SLO's part of a dashboard shape: its values besides name and description, tiers and windows."""

    values: tuple[tuple[str, Var], ...]
    tiers: tuple[tuple[tuple[str, Var], ...], ...]
    windows: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.values, self.tiers, self.windows)))

    def __hash__(self) -> int:  # the same shapes recur (memoised): hashed once, not at every dashboard's lookup
        return self._hash  # type: ignore[attr-defined,no-any-return]


@dataclass(frozen=True)
class _Shape:
    """Everything a service dashboard depends on besides `_Strings`."""

    protocol: str
    runtime: str
    tier: int
    reads_otel: bool
    slos: tuple[_SloShape, ...]
    links: tuple[tuple[str, str, str], ...]  # title, icon, tooltip of each link (their URLs are strings)


def _sli_shape(svc: Service, templates: Templates) -> SliShape:
    shape = templates.sli_shapes.get(svc.protocol.value)
    if shape is None:
        raise SpecError([Problem(str(svc.origin.file), 0, str(svc.ref), "protocol",
                                 f"no SLI shape for protocol {svc.protocol.value} in alert-rules/sli.yaml")])
    return shape


def _slo_shape(svc: Service, slo: SLO, templates: Templates, colors: Mapping[str, Any]) -> _SloShape:
    table = _table(templates, slo, str(svc.origin.file))
    tiers = tuple((("tier", Var.fragment(t.name)), ("tier_burn_rate", Var.fragment(repr(t.burn_rate))),
                   ("tier_severity", Var.fragment(t.severity)),
                   ("tier_color", Var.fragment(str(colors.get(t.severity, "red")))))
                  for t in enabled_tiers(slo, table))
    custom = {w for t in slo.alerting.custom_tiers for w in (t.long_window_s, t.short_window_s)}
    windows = tuple(cv.window_name(w) for w in sorted({*table.windows_s, *custom}))
    return _SloShape(tuple(_slo_vars(slo).items()), tiers, windows)


def _slo_shape_key(slo: SLO) -> tuple[Any, ...]:
    """Everything of an SLO that `_slo_shape` reads (its window table is the period's)."""
    return slo.objective, slo.period_days, slo.budgeting, slo.sli.kind, slo.alerting, slo.group_by


def _shape_of(svc: Service, links: Sequence[tuple[str, str, str, str]], ctx: RenderContext) -> _Shape:
    templates, lib = ctx.templates, _library(ctx)
    _sli_shape(svc, templates)
    slos: list[_SloShape] = []
    if any(row.get("for_each") == "slo" for row in lib.layouts["service"]["rows"]):
        colors = lib.settings.get("severity_colors") or {}
        known: dict[tuple[Any, ...], _SloShape] = ctx.memo.setdefault("dashboards.slo_shapes", {})
        for slo in svc.slos:
            key = _slo_shape_key(slo)
            found = known.get(key)
            if found is None:
                if len(known) >= _COMPILED_MAX:
                    known.clear()
                found = known[key] = _slo_shape(svc, slo, templates, colors)
            slos.append(found)
    return _Shape(svc.protocol.value, svc.runtime.value, svc.tier, _reads_otel_metrics(svc), tuple(slos),
                  tuple((title, icon, tooltip) for title, _url, icon, tooltip in links))


def _links_of(svc: Service, options: RenderOptions) -> list[tuple[str, str, str, str]]:
    """The dashboard's links to elsewhere: title, URL, icon, tooltip."""
    links: list[tuple[str, str, str, str]] = []
    for name, url, icon in (("Runbook", svc.links.runbook, "doc"), ("Source", svc.links.source, "external link"),
                            ("Catalog", _catalog_url(svc, options), "info"),
                            ("Catalog file", svc.links.catalog, "external link")):
        if safe_url(url):
            links.append((name, safe_url(url), icon, ""))
    alerts_url = safe_url(f"{options.prometheus_url.rstrip('/')}/alerts?search="
                           f"{url_quote(cv.rule_group_name(svc, '').rstrip('-'))}") if options.prometheus_url else ""
    if alerts_url:
        links.append(("Alerting rules", alerts_url, "bolt", "obsctl's SLO alerts for this service"))
    links.extend((str(link["title"]), str(link["url"]), str(link["icon"]), str(link["tooltip"]))
                 for link in _telemetry_links(svc, options))
    links.append(("Team SLO overview", f"/d/{cv.team_overview_uid(svc.team)}", "dashboard", ""))
    return links


def _strings_of(svc: Service, team_of: TeamLookup, links: Sequence[tuple[str, str, str, str]]) -> _Strings:
    title = clean_text(svc.title or svc.name, MAX_TITLE) or svc.name
    labels = (Var.label(svc.name), Var.label(svc.namespace), Var.label(title),
              Var.label(clean_text(svc.description, MAX_TEXT)), Var.label(svc.team.name),
              Var.label(_team_title(team_of, svc.team)), Var.label(svc.system))
    slos = tuple((Var.label(slo.name), Var.label(clean_text(slo.description, MAX_TEXT))) for slo in svc.slos)
    return _Strings(labels, slos, cv.service_dashboard_uid(svc), tuple(cv.dashboard_tags(svc)),
                    tuple(url for _title, url, _icon, _tooltip in links), f"team:{svc.team.name}")


def _verbatim(text: str) -> str:
    return text


def _matchers(pairs: Sequence[tuple[str, str]]) -> str:
    """`a="x",b="y"` from label names and values already escaped for a PromQL string."""
    return ",".join(f'{k}="{v}"' for k, v in pairs)


def _build(shape: _Shape, s: _Strings, templates: Templates, options: RenderOptions, lib: Library) -> dict[str, Any]:
    """A service dashboard from its shape and strings: the strings are only ever concatenated (see above)."""
    filler = Filler(LAYOUT)
    sli = templates.sli_shapes[shape.protocol]
    labels = dict(zip(_LABELS, s.labels, strict=True))
    name, namespace = labels["service"], labels["namespace"]
    env_label = str(lib.settings.get("environment_label", "deployment_environment_name"))
    # the service's selector without an environment matcher: the dashboard adds its own, on $environment
    base = shape_selector(sli, Service(EntityRef("component", namespace.expr, name.expr), EntityRef("", "", ""), ()),
                          "", _verbatim)
    env_matcher = f'{env_label}=~"${ENVIRONMENT_VAR}"'
    identity = ((cv.LABEL_SERVICE, name.expr), (cv.LABEL_NAMESPACE, namespace.expr))
    values: dict[str, Var] = {
        **_common_vars(options),
        **labels,
        "tier": Var.fragment(str(shape.tier)),
        "protocol": Var.fragment(shape.protocol),
        "runtime": Var.fragment(shape.runtime),
        "environment_label": Var.fragment(env_label),
        "selector": Var.fragment(f"{base},{env_matcher}"),
        "runtime_selector": Var.fragment(f"{base},{env_matcher}"),
        "base_selector": Var.fragment(base),
        "count_metric": Var.fragment(sli.count_metric),
        "bucket_metric": Var.fragment(sli.bucket_metric),
        "error_matcher": Var.fragment(sli.error_matcher),
        "service_alert_selector": Var.fragment(_matchers(identity)),
    }
    spec = lib.layouts["service"]
    exemplars = bool(options.traces_datasource_uid)
    rows: list[tuple[str, list[dict[str, Any]]]] = []
    for ri, row in enumerate(spec["rows"]):
        where = f"service.rows[{ri}]"
        if row.get("otel_sli") and not shape.reads_otel:
            continue
        if row.get("runtime"):
            runtime_panels = lib.runtimes.get(shape.runtime) or []
            if not runtime_panels:
                continue
            ctx = PanelContext(lib, Filler(RUNTIMES), values, exemplars=exemplars)
            rows.append((filler.fill(str(row.get("title", "")), values, "text", where),
                         [build_panel(p, ctx, f"{shape.runtime}[{i}]") for i, p in enumerate(runtime_panels)]))
            continue
        if row.get("for_each") == "slo":
            for slo, (slo_name, slo_description) in zip(shape.slos, s.slo_labels, strict=True):
                slo_values = {**values, **dict(slo.values), "slo_name": slo_name, "slo_description": slo_description,
                              "slo_selector": Var.fragment(_matchers((*identity, (cv.LABEL_SLO, slo_name.expr))))}
                ctx = PanelContext(lib, Filler(PANELS), slo_values, slo.windows, [dict(t) for t in slo.tiers],
                                   exemplars=exemplars)
                rows.append((clean_text(filler.fill(str(row.get("title", "")), slo_values, "text", where),
                                         MAX_TITLE),
                             [build_panel(lib.panels[n], ctx, str(n)) for n in row["panels"]]))
            continue
        ctx = PanelContext(lib, Filler(PANELS), values, exemplars=exemplars)
        rows.append((clean_text(filler.fill(str(row.get("title", "")), values, "text", where), MAX_TITLE),
                     [build_panel(lib.panels[n], ctx, str(n)) for n in row["panels"]]))
    links = [_link(title, url, icon, tooltip) for (title, icon, tooltip), url in zip(shape.links, s.links, strict=True)]
    links.append(_tag_link("Team dashboards", [cv.MANAGED_TAG, s.team_tag]))
    variables = [_datasource_var(options), _environment_var(
        options, f"label_values({sli.count_metric}{{{base}}}, {env_label})")]
    desc = filler.fill(str(spec.get("description", "")), values, "text", "service.description")
    return _dashboard(lib, s.uid,
                      clean_text(filler.fill(str(spec.get("title", "")), values, "text", "service.title"),
                                  MAX_TITLE) or name.text,
                      clean_text(desc, MAX_TEXT), list(s.tags),
                      panels=layout_rows(rows, int(lib.settings.get("panel_height", 8))), variables=variables,
                      links=links)


@dataclass(frozen=True)
class _Compiled:
    """A dashboard shape's JSON cut at its strings, and what a service's strings must meet to fill it."""

    template: symbolic.Template
    recording: symbolic.Recording
    uid_slot: int
    query_slots: frozenset[int]  # slots inside a PromQL equality matcher's value

    def accepts(self, values: Sequence[str]) -> bool:
        """Whether the service's strings give, substituted, exactly the dashboard `_build` gives for them."""
        if not _UID_OK.match(values[self.uid_slot]):
            return False  # built the ordinary way: its check names the problem
        if any(_QUERY_UNSAFE.search(values[i]) for i in self.query_slots):
            return False
        return symbolic.within(self.recording, values)


_UID_OK = re.compile(r"^[A-Za-z0-9_-]{1,40}$")  # the uid dashboard_check requires
# Characters Grafana's variable syntax or the check's stand-ins could pair across a query value's quotes.
_QUERY_UNSAFE = re.compile(r"[$\[\]{}\\]")


def _equality_value(expr: str, start: int) -> bool:
    """Whether the string literal opening at `start` is the value of an equality matcher (`=` or `!=`)."""
    head = expr[:start].rstrip()
    return head.endswith("=") and not head.endswith(("==", "<=", ">="))


def _query_slots(expr: str, allowed: frozenset[int]) -> set[int] | None:
    """The stand-ins in a query, or None unless each sits in the double-quoted value of an equality
    matcher that holds none of `$ [ ] { } \\` and is a slot escaped for a PromQL string.

    There any escaped string in its place (no `$ [ ] { } \\` either, checked per service) parses alike: the
    value of an equality matcher is never interpreted, the quotes still pair, and no Grafana variable
    pattern of the check (`${..}`, `$name`, `[[..]]`) can start or end inside it.
    """
    found: set[int] = set()
    i = 0
    while i < len(expr):
        quote = expr[i]
        if quote not in "\"'`":
            i += 1
            continue
        j = i + 1
        while j < len(expr) and expr[j] != quote:
            j += 2 if expr[j] == "\\" and quote != "`" else 1
        literal = expr[i + 1:j]
        slots = symbolic.slots_in(literal)
        if slots:
            if quote != '"' or not _equality_value(expr, i) or _QUERY_UNSAFE.search(literal):
                return None
            if not set(slots) <= allowed:
                return None
            found.update(slots)
        i = j + 1
    return found if len(found) == len(set(symbolic.slots_in(expr))) else None


def _compile(shape: _Shape, strings: _Strings, ctx: RenderContext) -> _Compiled | None:
    """The shape built once with stand-ins, or None when its strings cannot simply be substituted."""
    templates, options, lib = ctx.templates, ctx.options, _library(ctx)
    values = strings.flat()
    return _compile_board(lambda stand_ins: _build(shape, strings.unflat(stand_ins), templates, options, lib),
                          values, strings.query_slots(), len(values) - len(strings.links) - len(strings.tags) - 2)


def _compile_board(build: Callable[[list[str]], dict[str, Any]], values: Sequence[str], allowed: frozenset[int],
                   uid_slot: int) -> _Compiled | None:
    """A dashboard built once by `build` from stand-ins for `values` (its strings, the uid at `uid_slot`, those
    escaped for a PromQL string at `allowed`), or None when the strings cannot simply be substituted."""
    stand_ins = symbolic.stand_ins(values)
    if not stand_ins[uid_slot]:
        return None
    try:
        with symbolic.record() as rec:
            board = build(stand_ins)
    except (symbolic.Unsubstitutable, SpecError):
        return None
    if self_check(board):
        return None
    query_slots: set[int] = set()
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            slots = _query_slots(str(target.get("expr", "")), allowed)
            if slots is None:
                return None
            query_slots |= slots
    return _Compiled(symbolic.Template.of(cv.grafana_json(board)), rec, uid_slot, frozenset(query_slots))


def _substituted(key: Any, values: Sequence[str], ctx: RenderContext,
                 compile_: Callable[[], _Compiled | None]) -> bytes | None:
    """The JSON of a dashboard whose strings are `values`, from its shape's compiled text (None: build it)."""
    cache: dict[Any, Any] = ctx.memo.setdefault("dashboards.shapes", {})
    compiled = cache.get(key, _NOT_COMPILED)
    if compiled is _NOT_COMPILED:
        if len(cache) >= _COMPILED_MAX:
            cache.clear()
        compiled = cache[key] = compile_()
    if isinstance(compiled, _Compiled) and compiled.accepts(values):
        return compiled.template.fill([symbolic.json_inner(v) for v in values])
    return None


_COMPILED_MAX = 4096  # dashboard shapes kept per render context
_NOT_COMPILED = object()


def _service_dashboard(svc: Service, ctx: RenderContext) -> tuple[str, bytes]:
    """A service's dashboard uid and JSON: substituted into its shape's JSON where that is exact, else built."""
    lib, templates, options = _library(ctx), ctx.templates, ctx.options
    links = _links_of(svc, options)
    shape = _shape_of(svc, links, ctx)
    strings = _strings_of(svc, ctx.team, links)
    values = strings.flat()
    body = _substituted((shape, tuple(not v for v in values)), values, ctx, lambda: _compile(shape, strings, ctx))
    if body is not None:
        return strings.uid, body
    board = _build(shape, strings, templates, options, lib)
    errs = self_check(board)
    if errs:
        owner = str(svc.ref)
        raise SpecError([Problem(owner, 0, owner, f"dashboard {board.get('uid')}", e) for e in errs])
    return strings.uid, cv.grafana_json(board)


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


def _slo_vars(slo: SLO) -> dict[str, Var]:
    """An SLO's values besides its name and description (those are per-service strings)."""
    return {
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


def _team_strings(ref: EntityRef, team_of: TeamLookup) -> list[str]:
    """Every string a team's overview takes from the team: name, namespace and title (text and PromQL forms),
    its `team` label (PromQL form), uid, tags, and the team tag its link selects."""
    name, namespace, title = Var.label(ref.name), Var.label(ref.namespace), Var.label(_team_title(team_of, ref))
    return [name.text, name.expr, namespace.text, namespace.expr, title.text, title.expr,
            Var.label(cv.team_label(ref)).expr, cv.team_overview_uid(ref),
            *cv.team_overview_tags(ref), f"team:{ref.name}"]


_TEAM_QUERY_SLOTS = frozenset({1, 3, 5, 6})
_TEAM_LABEL_SLOT = 6  # the team's `team` label (cv.team_label), which its SLOs' info series carry
_TEAM_UID_SLOT = 7


def _team_board(s: Sequence[str], options: RenderOptions, lib: Library) -> dict[str, Any]:
    """A team's SLO overview from its strings (`_team_strings`): they are only ever concatenated."""
    values = {**_common_vars(options), "team": Var(s[0], s[1]), "team_namespace": Var(s[2], s[3]),
              "team_title": Var(s[4], s[5])}
    values["overview_join"] = Var.fragment(_info_join(f'{{{cv.LABEL_TEAM}="{s[_TEAM_LABEL_SLOT]}"}}'))
    links = [_tag_link("Service dashboards", [cv.MANAGED_TAG, s[-1]]),
             _link("SLO overview", f"/d/{cv.ORG_OVERVIEW_UID}", "dashboard")]
    return _overview(lib, "team", s[_TEAM_UID_SLOT], list(s[_TEAM_UID_SLOT + 1:-1]), values=values, options=options,
                     links=links)


def _team_dashboard(ref: EntityRef, ctx: RenderContext) -> tuple[str, bytes]:
    """A team overview's uid and JSON: substituted into the shape's JSON where that is exact, else built."""
    values = _team_strings(ref, ctx.team)
    options, lib = ctx.options, _library(ctx)
    body = _substituted(("team", len(values), tuple(not v for v in values)), values, ctx, lambda: _compile_board(
        lambda stand_ins: _team_board(stand_ins, options, lib), values, _TEAM_QUERY_SLOTS, _TEAM_UID_SLOT))
    if body is not None:
        return values[_TEAM_UID_SLOT], body
    board = _team_board(values, options, lib)
    errs = self_check(board)
    if errs:
        owner = str(ref)
        raise SpecError([Problem(owner, 0, owner, f"dashboard {board.get('uid')}", e) for e in errs])
    return values[_TEAM_UID_SLOT], cv.grafana_json(board)


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
    return _artifacts_of(str(dashboard["uid"]), cv.grafana_json(dashboard), folder_uid, owner, options)


def _artifacts_of(uid: str, body: bytes, folder_uid: str, owner: str, options: RenderOptions) -> list[Artifact]:
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
    uid, body = _service_dashboard(svc, ctx)
    return _artifacts_of(uid, body, _team_folder(svc.team), str(svc.ref), ctx.options)


def render_shared(teams: tuple[EntityRef, ...], ctx: RenderContext) -> list[Artifact]:
    """The folders (root, one per team in `teams`), team and org overviews, the file provider (those in the outputs).

    A SpecError holds the problems of both parts (the org's never hides the teams')."""
    out: list[Artifact] = []
    problems: list[Problem] = []
    for part in (render_org_shared, render_team_shared):
        try:
            out.extend(part(teams, ctx))
        except SpecError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    return out


# The shared part of the dashboards is two: each team's folder and overview (built team by team) and the org's
# root folder, overview and file provider (which lists every team's folder).
SHARED_PARTS = (("team", "render_team_shared"), ("teams", "render_org_shared"))


def render_team_shared(teams: tuple[EntityRef, ...], ctx: RenderContext) -> list[Artifact]:
    """The folder and overview of each team in `teams` (those in the outputs)."""
    options = ctx.options
    if not options.wants(*GRAFANA_KINDS):
        return []
    dashboards = options.wants(Kind.GRAFANA_DASHBOARD, Kind.GRAFANA_DASHBOARD_CRD)
    out: list[Artifact] = []
    problems: list[Problem] = []
    for ref in teams:
        uid = _team_folder(ref)
        if Kind.GRAFANA_FOLDER in options.outputs or Kind.GRAFANA_FOLDER_CRD in options.outputs:
            folder = _folder(uid, _team_folder_title(ctx.team, ref), cv.ROOT_FOLDER_UID, str(ref), options)
            out.extend(a for a in folder if a.kind is not Kind.GRAFANA_FOLDER or Kind.GRAFANA_FOLDER in options.outputs)
        if dashboards:
            try:
                out.extend(_artifacts_of(*_team_dashboard(ref, ctx), uid, str(ref), options))
            except SpecError as exc:
                problems.extend(exc.problems)
    if problems:
        raise SpecError(problems)
    return out


def render_org_shared(teams: tuple[EntityRef, ...], ctx: RenderContext) -> list[Artifact]:
    """The root folder, the org overview and the file provider listing the folders of `teams` (those in the
    outputs)."""
    options = ctx.options
    if not options.wants(*GRAFANA_KINDS):
        return []
    out: list[Artifact] = _folder(cv.ROOT_FOLDER_UID, cv.ROOT_FOLDER_TITLE, "", cv.OWNER, options)
    if options.wants(Kind.GRAFANA_DASHBOARD, Kind.GRAFANA_DASHBOARD_CRD):
        out.extend(_artifacts_for(_org_overview(options, _library(ctx)), cv.ROOT_FOLDER_UID, cv.OWNER, options))
    if Kind.GRAFANA_PROVIDER in options.outputs:
        folders = [(cv.ROOT_FOLDER_UID, cv.ROOT_FOLDER_TITLE)]
        folders += [(_team_folder(ref), _team_folder_title(ctx.team, ref)) for ref in teams]
        out.append(_provider(folders, options))
    if Kind.GRAFANA_FOLDER not in options.outputs:  # built anyway (a few bytes)
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
