"""Dashboards renderer: every dashboard validates against Grafana's schemas, output is deterministic,
uids fit, tags select, catalog values are escaped, and template mistakes fail loudly."""

from __future__ import annotations

import dataclasses
import json
import random
import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml
from jsonschema import Draft7Validator

from obsctl.errors import SpecError
from obsctl.model import conventions as cv
from obsctl.model.artifact import Artifact, Kind
from obsctl.model.entities import (
    SLO,
    AvailabilitySLI,
    Catalog,
    EntityRef,
    EventsSLI,
    LatencySLI,
    Links,
    Protocol,
    Runtime,
    Service,
    Team,
)
from obsctl.model.escape.promql import grafana_string_body
from obsctl.render import dashboards
from obsctl.render.options import RenderOptions
from obsctl.sources.directory import read_directory, read_template_tree
from obsctl.spec.load import load_catalog
from obsctl.spec.templates import Templates, parse_templates

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "tests" / "data" / "grafana-foundation-sdk"  # vendored, Apache-2.0: tests/data/README.md
UID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


def _schema(name: str, definition: str | None = None) -> Draft7Validator:
    schema = json.loads((REFERENCE / name).read_text())
    if definition:
        schema = {**schema, "$ref": f"#/definitions/{definition}"}
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


@pytest.fixture(scope="module")
def validators() -> dict[str, Draft7Validator]:
    return {
        "dashboard": _schema("dashboard.v11.6.jsonschema.json"),
        "timeseries.options": _schema("timeseries.main-v0.0.18.jsonschema.json", "Options"),
        "timeseries.custom": _schema("timeseries.main-v0.0.18.jsonschema.json", "FieldConfig"),
        "stat.options": _schema("stat.main-v0.0.18.jsonschema.json", "Options"),
        "target": _schema("prometheus.main-v0.0.18.jsonschema.json", "Dataquery"),
    }


@pytest.fixture(scope="module")
def templates() -> Templates:
    return parse_templates(read_template_tree(ROOT))


@pytest.fixture(scope="module")
def sample(templates: Templates) -> Catalog:
    return load_catalog(read_directory(ROOT / "examples" / "catalog"), templates).catalog


def hostile_catalog() -> Catalog:
    """Values a catalog should never be able to smuggle into PromQL, JSON or a link."""
    evil = 'we"ird\\name\n}) or vector(1) # $datasource ${environment}'
    team = EntityRef("group", "ns-\u00e9", 'team "x"')
    slos = (
        SLO("availability", 0.999, AvailabilitySLI(),
            description='quote " backslash \\ newline\n@{service} $datasource'),
        SLO("latency", 0.95, LatencySLI(0.25), period_days=28),
        SLO("events", 0.99, EventsSLI('sum(rate(x{a="b"}[{{window}}]))', error_query="sum(rate(y[{{window}}]))"),
            period_days=7),
    )
    services = [
        Service(EntityRef("component", "default", evil), team, slos, protocol=Protocol.GRPC, runtime=Runtime.NODEJS,
                title='</script><img src=x onerror=alert(1)> "T" @{service_title} ${datasource}\n\tnext',
                description="x" * 10_000,
                links=Links(runbook="javascript:alert(1)", source="https://git.example/a b\"c",
                            catalog="data:text/html,<b>x</b>")),
        Service(EntityRef("component", "a" * 63, "b" * 63), team, slos[:1], runtime=Runtime.GO, title="   "),
        Service(EntityRef("component", "default", "\u00fcml\u00e4ut-\u2603"), EntityRef("group", "default", "t2"),
                slos, runtime=Runtime.JVM),
        Service(EntityRef("component", "default", "plain"), EntityRef("group", "default", "t2"), (),
                runtime=Runtime.PYTHON),
    ]
    return Catalog(tuple(services), (Team(team, title='Team "X" \u2014 <b>'),))


def _dashboards(arts: list[Artifact]) -> list[dict[str, Any]]:
    return [json.loads(a.body) for a in arts if a.kind is Kind.GRAFANA_DASHBOARD]


def _validate_all(arts: list[Artifact], validators: dict[str, Draft7Validator]) -> int:
    checked = 0
    for dash in _dashboards(arts):
        errors = [f"{dash['uid']}: {e.json_path}: {e.message[:200]}" for e in validators["dashboard"].iter_errors(dash)]
        for panel in dash["panels"]:
            where = f"{dash['uid']} panel {panel['id']} ({panel.get('title')})"
            if panel["type"] in ("timeseries", "stat"):
                errors += [f"{where} options: {e.message}"
                           for e in validators[f"{panel['type']}.options"].iter_errors(panel["options"])]
            if panel["type"] == "timeseries":
                errors += [f"{where} custom: {e.message}" for e in
                           validators["timeseries.custom"].iter_errors(panel["fieldConfig"]["defaults"]["custom"])]
            for target in panel.get("targets", []):
                errors += [f"{where} target: {e.message}" for e in validators["target"].iter_errors(target)]
        assert errors == []
        checked += 1
    return checked


def test_every_sample_dashboard_validates_against_grafanas_schemas(
        sample: Catalog, templates: Templates, validators: dict[str, Draft7Validator]) -> None:
    arts = dashboards.render(sample, templates, RenderOptions())
    # 5 services + 2 team overviews + the org overview.
    assert _validate_all(arts, validators) == len(sample.services) + len(sample.teams_in_use()) + 1


def test_every_hostile_dashboard_validates_too(templates: Templates, validators: dict[str, Draft7Validator]) -> None:
    catalog = hostile_catalog()
    arts = dashboards.render(catalog, templates, RenderOptions())
    assert _validate_all(arts, validators) == len(catalog.services) + 2 + 1


def test_rendering_is_deterministic_and_order_independent(sample: Catalog, templates: Templates) -> None:
    first = dashboards.render(sample, templates, RenderOptions())
    shuffled = list(sample.services)
    random.Random(4).shuffle(shuffled)
    second = dashboards.render(dataclasses.replace(sample, services=tuple(shuffled)), templates, RenderOptions())
    assert [(a.id, a.path, a.body) for a in first] == [(a.id, a.path, a.body) for a in second]
    for art in first:
        if art.kind is not Kind.GRAFANA_PROVIDER:
            assert art.body == cv.grafana_json(json.loads(art.body))  # sorted keys, fixed indentation


def test_uids_fit_grafana_and_are_unique(templates: Templates, sample: Catalog) -> None:
    for catalog in (sample, hostile_catalog()):
        arts = dashboards.render(catalog, templates, RenderOptions())
        uids = [a.key for a in arts if a.kind in (Kind.GRAFANA_DASHBOARD, Kind.GRAFANA_FOLDER)]
        assert len(uids) == len(set(uids))
        assert all(UID_RE.match(u) for u in uids), uids
        for art in arts:
            if art.kind is Kind.GRAFANA_DASHBOARD:
                assert json.loads(art.body)["uid"] == art.key
                folder = art.path.split("/")[-2]
                assert art.path == cv.dashboard_path(folder, art.key)


def test_tags_let_backstage_select_and_mark_ownership(sample: Catalog, templates: Templates) -> None:
    arts = {a.key: json.loads(a.body) for a in dashboards.render(sample, templates, RenderOptions())
            if a.kind is Kind.GRAFANA_DASHBOARD}
    for svc in sample.services:
        dash = arts[cv.service_dashboard_uid(svc)]
        assert dash["tags"] == cv.dashboard_tags(svc)
        assert {cv.MANAGED_TAG, f"service:{svc.name}"} <= set(dash["tags"])
    for team in sample.teams_in_use():
        assert arts[cv.team_overview_uid(team)]["tags"] == cv.team_overview_tags(team)
    assert arts[cv.ORG_OVERVIEW_UID]["tags"] == cv.org_overview_tags()


def test_folders_nest_team_folders_under_the_root_and_the_provider_loads_them(
        sample: Catalog, templates: Templates) -> None:
    arts = dashboards.render(sample, templates, RenderOptions(grafana_dashboards_dir="/srv/g"))
    folders = {a.key: json.loads(a.body) for a in arts if a.kind is Kind.GRAFANA_FOLDER}
    assert folders[cv.ROOT_FOLDER_UID] == {"uid": cv.ROOT_FOLDER_UID, "title": cv.ROOT_FOLDER_TITLE,
                                           "description": cv.folder_description(cv.ROOT_FOLDER_TITLE)}
    teams = {cv.team_folder_uid(t): t for t in sample.teams_in_use()}
    assert set(folders) == {cv.ROOT_FOLDER_UID, *teams}
    assert folders[cv.team_folder_uid(EntityRef("group", "default", "team-payments"))]["title"] == "Payments"
    assert all(f["parentUid"] == cv.ROOT_FOLDER_UID for uid, f in folders.items() if uid != cv.ROOT_FOLDER_UID)
    (provider,) = [a for a in arts if a.kind is Kind.GRAFANA_PROVIDER]
    assert provider.path == cv.GRAFANA_PROVIDER_PATH
    doc = yaml.safe_load(provider.body)
    assert {(p["folderUid"], p["options"]["path"]) for p in doc["providers"]} == \
        {(uid, f"/srv/g/{uid}") for uid in folders}
    for art in arts:  # every dashboard file lies in a directory some provider reads
        if art.kind is Kind.GRAFANA_DASHBOARD:
            assert art.path.split("/")[-2] in folders


def _exprs(dash: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def _label_values(expr: str, label: str) -> set[str]:
    """Every value a parsed PromQL expression matches `label` against."""
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.update(m.value for m in node.matchers.matchers if m.name == label)
        for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, str | int | float):
                visit(child)
        for arg in getattr(node, "args", None) or []:
            visit(arg)

    visit(promql_parser.parse(expr.replace("$__rate_interval", "5m").replace("$environment", "x")))
    return found


def test_catalog_values_are_escaped_for_promql_json_and_links(templates: Templates) -> None:
    catalog = hostile_catalog()
    arts = dashboards.render(catalog, templates, RenderOptions(catalog_url="https://backstage.example"))
    evil = catalog.services[0]
    dash = json.loads(next(a.body for a in arts if a.key == cv.service_dashboard_uid(evil)))
    slo_exprs = [e for e in _exprs(dash) if e.startswith(("obsctl:", "1 - obsctl:"))]
    assert slo_exprs
    for expr in slo_exprs:  # parsed back, the label value is exactly the catalog's name
        assert _label_values(expr, "service") == {evil.name}
        assert _label_values(expr, "catalog_namespace") == {"default"}
    assert all(_label_values(e, "service_name") == {evil.name} for e in _exprs(dash) if "service_name" in e)
    # Grafana interpolates $variables inside queries: only obsctl's own may remain.
    assert all("$" not in re.sub(r"\$(__rate_interval|environment)\b", "", e) for e in _exprs(dash))
    # Placeholders are filled once: catalog text that looks like one stays literal text.
    assert dash["title"].startswith('</script><img src=x onerror=alert(1)> "T" @{service_title} ${datasource} next')
    assert len(dash["description"]) <= 2000
    urls = {link["title"]: link.get("url", "") for link in dash["links"]}
    assert "Runbook" not in urls and "Source" not in urls  # javascript: and a URL with a quote are dropped
    # The Catalog link is the entity page (backstage.public_url), the name percent-encoded; the catalog's own
    # data: view-url ("Catalog file") is dropped.
    assert urls["Catalog"] == "https://backstage.example/catalog/default/component/" + \
        "we%22ird%5Cname%0A%7D%29%20or%20vector%281%29%20%23%20%24datasource%20%24%7Benvironment%7D"
    assert "Catalog file" not in urls
    umlaut = json.loads(next(a.body for a in arts if a.key == cv.service_dashboard_uid(catalog.services[2])))
    assert {link["title"]: link.get("url") for link in umlaut["links"]}["Catalog"] == \
        "https://backstage.example/catalog/default/component/%C3%BCml%C3%A4ut-%E2%98%83"
    team_overview = json.loads(next(a.body for a in arts if a.key == cv.team_overview_uid(evil.team)))
    # the team's alert label: its namespace (not the default one) and name, exactly as the rules write it
    assert all(_label_values(e, "team") == {'ns-\u00e9/team "x"'} for e in _exprs(team_overview))
    assert team_overview["title"] == 'Team "X" \u2014 <b>: SLO overview'
    blank = json.loads(next(a.body for a in arts if a.key == cv.service_dashboard_uid(catalog.services[1])))
    assert blank["title"] == "b" * 63  # a blank title falls back to the name


def test_service_dashboard_has_red_slo_and_runtime_panels(sample: Catalog, templates: Templates) -> None:
    arts = {a.key: json.loads(a.body) for a in dashboards.render(sample, templates, RenderOptions())
            if a.kind is Kind.GRAFANA_DASHBOARD}
    checkout = next(s for s in sample.services if s.name == "checkout")
    dash = arts[cv.service_dashboard_uid(checkout)]
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert rows == ["Alerts", "Requests (http)", "SLO availability: 99.9% over 30d", "SLO latency: 99% over 30d",
                    "Runtime (python)"]
    exprs = "\n".join(_exprs(dash))
    for q in ("0.5", "0.9", "0.99"):
        assert f"histogram_quantile({q}, sum by (le) (rate(http_server_request_duration_seconds_bucket" in exprs
    assert 'http_response_status_code=~"5.."' in exprs and "cpython_gc_collections_total" in exprs
    assert f'{cv.SERIES_BUDGET_REMAINING}{{service="checkout",catalog_namespace="default",slo="availability"}}' in exprs
    burn = next(p for p in dash["panels"] if p.get("title", "").startswith("Burn rate"))
    table = templates.windows[30]
    assert [t["legendFormat"] for t in burn["targets"]] == [cv.window_name(w) for w in table.windows_s]
    assert [t["expr"].split("{")[0] for t in burn["targets"]] == \
        [cv.series(cv.SERIES_BURN_RATE, cv.window_name(w)) for w in table.windows_s]
    steps = burn["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps[1:]] == sorted(t.burn_rate for t in table.tiers)  # 1, 3, 6, 14.4
    assert burn["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] == {"mode": "dashed"}
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource", "environment"}
    titles = {link["title"] for link in dash["links"]}
    assert {"Runbook", "Source", "Team SLO overview"} <= titles
    assert "Alerting rules" not in titles and "Catalog" not in titles  # no public URLs set: no placeholder links
    ledger = arts[cv.service_dashboard_uid(next(s for s in sample.services if s.name == "ledger"))]
    assert "jvm_memory_used_bytes" in "\n".join(_exprs(ledger))
    freshness = next(p for p in ledger["panels"] if p.get("title", "").startswith("Burn rate")
                     and "freshness" in "".join(t["expr"] for t in p["targets"]))
    # freshness alerts on ticket tiers only: only their thresholds are drawn.
    assert [s["value"] for s in freshness["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]] == [1.0, 3.0]


def test_org_overview_lists_every_slo_worst_budget_first(sample: Catalog, templates: Templates) -> None:
    arts = {a.key: json.loads(a.body) for a in dashboards.render(sample, templates, RenderOptions())
            if a.kind is Kind.GRAFANA_DASHBOARD}
    org = arts[cv.ORG_OVERVIEW_UID]
    table = next(p for p in org["panels"] if p["type"] == "table")
    assert table["targets"][0]["expr"] == \
        f"sort({cv.SERIES_BUDGET_REMAINING} * on(service, catalog_namespace, slo) group_left(team) {cv.SERIES_INFO})"
    assert {"id": "sortBy", "options": {"sort": [{"field": "Budget remaining", "desc": False}]}} in \
        table["transformations"]
    assert table["options"]["sortBy"] == [{"displayName": "Budget remaining", "desc": False}]


def _with_file(templates: Templates, path: str, edit: Any) -> Templates:
    files = read_template_tree(ROOT)
    files[path] = edit(files[path].decode()).encode()
    return parse_templates(files)


def test_an_undefined_placeholder_fails_loudly(sample: Catalog, templates: Templates) -> None:
    broken = _with_file(templates, dashboards.PANELS, lambda s: s.replace("title: Request rate",
                                                                          "title: Request rate @{nope}"))
    with pytest.raises(SpecError) as err:
        dashboards.render(sample, broken, RenderOptions())
    assert "undefined placeholder @{nope}" in str(err.value) and "red_request_rate" in str(err.value)


def test_template_mistakes_are_reported_with_their_place(sample: Catalog, templates: Templates) -> None:
    with pytest.raises(SpecError) as err:  # the library is checked when the templates load, before any render
        _with_file(templates, dashboards.LAYOUT, lambda s: s.replace("red_latency]", "red_latncy]"))
    assert "unknown panel 'red_latncy'" in str(err.value) and "dashboards/layout.yaml" in str(err.value)
    bad_promql = _with_file(templates, dashboards.PANELS, lambda s: s.replace(
        "expr: sum(rate(@{count_metric}{@{selector}}[$__rate_interval]))",
        "expr: sum(rate(@{count_metric}{@{selector}}[$__rate_interval])"))
    with pytest.raises(SpecError) as err:
        dashboards.render(sample, bad_promql, RenderOptions())
    assert "PromQL does not parse" in str(err.value)
    malformed = _with_file(templates, dashboards.PANELS, lambda s: s.replace("title: Request rate",
                                                                             "title: Request rate @{bad-name}"))
    with pytest.raises(SpecError, match="malformed placeholder"):
        dashboards.render(sample, malformed, RenderOptions())


def test_promql_string_escaping() -> None:
    assert grafana_string_body('a"b\\c\nd$') == 'a\\"b\\\\c\\nd\\x24'
    parsed = promql_parser.parse(f'up{{x="{grafana_string_body(chr(34) + chr(92) + chr(10))}"}}')
    assert isinstance(parsed, promql_parser.VectorSelector)
    assert [m.value for m in parsed.matchers.matchers if m.name == "x"] == ['"\\\n']


def _selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric name, equality matchers) of every vector selector in a parsed expression."""
    found: list[tuple[str, dict[str, str]]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append((node.name or "", {m.name: m.value for m in node.matchers.matchers}))
        for attr in ("expr", "lhs", "rhs", "vector_selector", "param"):
            child = getattr(node, attr, None)
            if child is not None and not isinstance(child, str | int | float):
                visit(child)
        for arg in getattr(node, "args", None) or []:
            visit(arg)

    visit(promql_parser.parse(expr.replace("$__rate_interval", "5m").replace("$environment", "x")))
    return found


def test_slo_panels_read_exactly_what_the_rule_renderer_records(sample: Catalog, templates: Templates) -> None:
    from obsctl.render import rules

    recorded: dict[str, list[dict[str, str]]] = {}
    for art in rules.render(sample, templates, RenderOptions()):
        if art.kind is Kind.PROMETHEUS_RULES:
            for group in yaml.safe_load(art.body)["groups"]:
                for rule in group["rules"]:
                    if "record" in rule:
                        recorded.setdefault(rule["record"], []).append(rule.get("labels") or {})
    checked = 0
    for dash in _dashboards(dashboards.render(sample, templates, RenderOptions())):
        for expr in _exprs(dash):
            for name, matchers in _selectors(expr):
                if not name.startswith("obsctl") and name != cv.SERIES_INFO:
                    continue
                assert name in recorded, f"{dash['uid']}: {name} is not recorded by any rule"
                # Some recorded series carries every label the panel matches on, with that value.
                assert any(all(labels.get(k) == v for k, v in matchers.items()) for labels in recorded[name]), \
                    f"{dash['uid']}: no {name} series has {matchers}"
                checked += 1
    assert checked > 100
    ledger = next(d for d in _dashboards(dashboards.render(sample, templates, RenderOptions()))
                  if d["uid"] == "obsctl-svc-default-ledger")
    assert any(e.startswith(f"1 - {cv.SERIES_PERIOD_BAD_SLICES}") and 'slo="freshness"' in e for e in _exprs(ledger))


TELEMETRY = RenderOptions(traces_datasource_uid="tempo-uid", logs_datasource_uid="loki-uid")


def test_dashboards_with_trace_and_log_datasources_validate(
        sample: Catalog, templates: Templates, validators: dict[str, Draft7Validator]) -> None:
    assert _validate_all(dashboards.render(sample, templates, TELEMETRY), validators) == \
        len(sample.services) + len(sample.teams_in_use()) + 1
    assert _validate_all(dashboards.render(hostile_catalog(), templates, TELEMETRY), validators) == 4 + 2 + 1


def test_custom_sli_services_get_panels_from_their_own_queries(sample: Catalog, templates: Templates) -> None:
    """Sloth/OpenSLO/custom SLIs: no OpenTelemetry RED row (it would stay empty); the SLO rows show the
    recorded errors, totals and error ratio per window, which are the spec's own queries."""
    arts = {a.key: json.loads(a.body) for a in dashboards.render(sample, templates, RenderOptions())
            if a.kind is Kind.GRAFANA_DASHBOARD}
    inventory = next(s for s in sample.services if s.name == "inventory")  # a Sloth spec
    assert {type(s.sli).__name__ for s in inventory.slos} == {"EventsSLI"}
    dash = arts[cv.service_dashboard_uid(inventory)]
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert not any(r.startswith("Requests") for r in rows)
    exprs = _exprs(dash)
    assert not any("http_server_request_duration" in e for e in exprs)
    slo = inventory.slos[0]
    sel = f'{{service="inventory",catalog_namespace="default",slo="{slo.name}"}}'
    assert f"{cv.series(cv.SERIES_ERRORS, '5m')}{sel}" in exprs and f"{cv.series(cv.SERIES_TOTAL, '5m')}{sel}" in exprs
    table = templates.windows[slo.period_days]
    ratio = next(p for p in dash["panels"] if p.get("title", "").startswith(f"Error ratio of {slo.name}"))
    assert [t["expr"] for t in ratio["targets"]] == [f"{cv.series(cv.SERIES_ERROR_RATIO, cv.window_name(w))}{sel}"
                                                     for w in table.windows_s]
    # A service on the OpenTelemetry defaults keeps its RED row.
    checkout = arts[cv.service_dashboard_uid(next(s for s in sample.services if s.name == "checkout"))]
    assert "Requests (http)" in [p["title"] for p in checkout["panels"] if p["type"] == "row"]


def test_firing_alerts_panel_lists_the_services_alerts(sample: Catalog, templates: Templates) -> None:
    checkout = next(s for s in sample.services if s.name == "checkout")
    dash = json.loads(next(a.body for a in dashboards.render(sample, templates, RenderOptions())
                           if a.key == cv.service_dashboard_uid(checkout)))
    panel = next(p for p in dash["panels"] if p.get("title") == "Firing alerts")
    assert panel["type"] == "table" and panel["gridPos"]["y"] == 1  # first, under the Alerts row
    assert [t["expr"] for t in panel["targets"]] == [
        'ALERTS{alertstate="firing",service="checkout",catalog_namespace="default"}']
    assert panel["targets"][0]["instant"] is True


def test_trace_and_log_links_and_exemplars_only_with_their_datasources(
        sample: Catalog, templates: Templates) -> None:
    from urllib.parse import parse_qs, urlsplit

    checkout = next(s for s in sample.services if s.name == "checkout")

    def dash(options: RenderOptions) -> dict[str, Any]:
        return json.loads(next(a.body for a in dashboards.render(sample, templates, options)
                               if a.key == cv.service_dashboard_uid(checkout)))

    def exemplar_targets(d: dict[str, Any]) -> list[str]:
        return [t["legendFormat"] for p in d["panels"] for t in p.get("targets", []) if t.get("exemplar")]

    plain = dash(RenderOptions())
    assert not {"Traces", "Error traces", "Logs"} & {link["title"] for link in plain["links"]}
    assert exemplar_targets(plain) == []
    rich = dash(TELEMETRY)
    links = {link["title"]: link["url"] for link in rich["links"] if "url" in link}
    assert exemplar_targets(rich) == ["p99"]

    def pane(url: str) -> dict[str, Any]:
        parts = urlsplit(url)
        assert parts.path == "/explore" and not parts.netloc  # relative: no Grafana URL needed
        query: dict[str, Any] = json.loads(parse_qs(parts.query)["panes"][0])["obsctl"]
        return query

    traces = pane(links["Traces"])
    assert traces["datasource"] == "tempo-uid"
    assert traces["queries"][0]["query"] == '{resource.service.name="checkout"}'
    assert pane(links["Error traces"])["queries"][0]["query"] == '{resource.service.name="checkout" && status=error}'
    logs = pane(links["Logs"])
    assert logs["datasource"] == "loki-uid" and logs["queries"][0]["expr"] == '{service_name="checkout"}'
    # A hostile name stays inside its string literal.
    evil = hostile_catalog().services[0]
    hostile = json.loads(next(a.body for a in dashboards.render(hostile_catalog(), templates, TELEMETRY)
                              if a.key == cv.service_dashboard_uid(evil)))
    query = pane(next(link["url"] for link in hostile["links"] if link["title"] == "Traces"))["queries"][0]["query"]
    assert query == '{resource.service.name="' + evil.name.replace("\\", "\\\\").replace('"', '\\"') + '"}'


def test_the_org_parts_problems_do_not_hide_the_teams(sample: Catalog, templates: Templates,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing org overview and failing team overviews are reported together, each team's once."""
    from obsctl.errors import Problem
    from obsctl.render.context import RenderContext

    def org_fails(*_args: object) -> object:
        raise SpecError([Problem("org", 0, "obsctl", "dashboard org", "org overview broken")])

    def team_fails(ref: EntityRef, _ctx: object) -> object:
        raise SpecError([Problem(str(ref), 0, str(ref), "dashboard team", "team overview broken")])

    monkeypatch.setattr(dashboards, "_org_overview", org_fails)
    monkeypatch.setattr(dashboards, "_team_dashboard", team_fails)
    teams = sample.teams_in_use()
    with pytest.raises(SpecError) as exc:
        dashboards.render_shared(teams, RenderContext.of(sample, templates, RenderOptions()))
    assert sorted(p.entity for p in exc.value.problems) == sorted(["obsctl", *map(str, teams)])
