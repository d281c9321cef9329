"""One decision for enabled tiers (rules, dashboards, validate, reports, replay agree), low objectives,
lifecycle paging policy and the environment in the SLI selection."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from obsctl.cli import tier_rows
from obsctl.model.artifact import Artifact, Kind
from obsctl.model.entities import Catalog
from obsctl.render import dashboards, rules
from obsctl.render.options import RenderOptions
from obsctl.slo.alerts import enabled_tiers
from obsctl.slo.periods import PeriodSpec
from obsctl.slo.replay import HistorySample, replay
from obsctl.slo.report import SLOData, slo_report
from obsctl.spec.load import LoadResult, SourceFile, load_catalog
from tests.support.slo_promtool import repo_templates

TEMPLATES = repo_templates()
OPTIONS = RenderOptions(outputs=frozenset({Kind.PROMETHEUS_RULES, Kind.GRAFANA_DASHBOARD}))


TEAM = "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: team-a}\nspec: {type: team}\n"


def _load(*docs: str) -> LoadResult:
    files = [SourceFile(f"c{i}.yaml", d.encode()) for i, d in enumerate(docs)] + [SourceFile("t.yaml", TEAM.encode())]
    return load_catalog(files, TEMPLATES)


def _component(name: str, annotations: dict[str, str], lifecycle: str = "production") -> str:
    return yaml.safe_dump({
        "apiVersion": "backstage.io/v1alpha1", "kind": "Component",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"type": "service", "lifecycle": lifecycle, "owner": "team-a"}})


def _native(name: str, slos: list[dict[str, Any]]) -> str:
    return yaml.safe_dump({"apiVersion": "obsctl.dev/v1", "kind": "Service", "metadata": {"name": name},
                           "spec": {"owner": "team-a", "slos": slos}})


def _alerts(catalog: Catalog, service: str) -> list[dict[str, Any]]:
    arts = [a for a in rules.render(catalog, TEMPLATES, OPTIONS) if a.key == f"default/{service}"]
    if not arts:
        return []
    return [r for g in yaml.safe_load(arts[0].body)["groups"] for r in g["rules"] if "alert" in r]


def _alert_tiers(catalog: Catalog, service: str, slo: str) -> set[str]:
    return {r["labels"]["tier"] for r in _alerts(catalog, service) if r["labels"]["slo"] == slo and
            "tier" in r["labels"]}


@pytest.mark.parametrize("tier", sorted(TEMPLATES.tier_defaults))
def test_every_golden_path_tier_renders_without_error(tier: int) -> None:
    result = _load(_component("svc", {"obsctl.dev/tier": str(tier)}))
    assert not result.errors, result.errors
    (svc,) = result.catalog.services
    for slo in svc.slos:
        table = TEMPLATES.windows[slo.period_days]
        assert _alert_tiers(result.catalog, "svc", slo.name) == {t.name for t in enabled_tiers(slo, table)}
        assert _alert_tiers(result.catalog, "svc", slo.name)  # every golden-path SLO still alerts


def test_tier_4_latency_drops_only_the_unreachable_page_tier_with_a_useful_warning() -> None:
    result = _load(_component("svc", {"obsctl.dev/tier": "4"}))
    assert not result.errors
    warnings = [str(p) for p in result.problems]
    assert warnings == [
        "c0.yaml:5: component:default/svc metadata.annotations.obsctl.dev/tier: warning: SLO latency: alert tier "
        "page-fast (page) can never fire at objective 90%: it needs an error ratio above 144% (burn 14.4x the 10% "
        "budget); dropped, the SLO's other tiers still alert. It becomes reachable with an objective above 93.06%, "
        "or with a 30d window table whose page-fast tier has a lower burn rate (a smaller budget share over a "
        "longer long window)"]
    assert _alert_tiers(result.catalog, "svc", "latency") == {"page-slow", "ticket-fast", "ticket-slow"}
    assert _alert_tiers(result.catalog, "svc", "availability") == {"page-fast", "page-slow", "ticket-fast",
                                                                   "ticket-slow"}


def test_the_warning_names_the_annotation_that_set_the_objective() -> None:
    result = _load(_component("svc", {"obsctl.dev/availability": "92"}))
    assert not result.errors
    assert [p.field for p in result.problems] == ["metadata.annotations.obsctl.dev/availability"]


POLICIES: list[dict[str, Any]] = [
    {"tiers": []},
    {"page": False, "ticket": False},
    {"tiers": ["page-slow", "ticket-slow"]},
    {"ticket": False},
    {},
]


def _dashboard_tiers(arts: list[Artifact], service: str) -> set[str]:
    """The tiers whose burn-rate thresholds the service dashboard's burn panel draws."""
    body = next(a.body for a in arts if a.kind is Kind.GRAFANA_DASHBOARD and service in a.key)
    by_burn = {t.burn_rate: t.name for t in TEMPLATES.windows[30].tiers}
    found: set[str] = set()
    for panel in json.loads(body)["panels"]:
        if str(panel.get("title", "")).startswith("Burn rate per window"):
            steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            found |= {by_burn[s["value"]] for s in steps if s.get("value") in by_burn}
    return found


@pytest.mark.parametrize("policy", POLICIES, ids=[json.dumps(p) for p in POLICIES])
def test_rules_dashboards_validate_report_and_replay_agree(policy: dict[str, Any]) -> None:
    slo = {"name": "availability", "objective": 92, "sli": {"availability": {}}, "alerting": policy}
    result = _load(_native("svc", [slo]))
    assert not result.errors
    catalog = result.catalog
    (svc,) = catalog.services
    model_slo = svc.slos[0]
    table = TEMPLATES.windows[30]
    expected = {t.name for t in enabled_tiers(model_slo, table)}
    assert "page-fast" not in expected  # 92 % cannot reach 14.4x
    assert _alert_tiers(catalog, "svc", "availability") == expected
    assert {r["tier"] for r in tier_rows(catalog, TEMPLATES)} == expected
    assert _dashboard_tiers(dashboards.render(catalog, TEMPLATES, OPTIONS), "svc") == expected
    status = slo_report(svc, model_slo, SLOData(), team=None, table=table,
                        period=PeriodSpec("rolling", "rolling"), now=1e9)
    assert {t.name for t in status.tiers if t.enabled} == expected
    history = [HistorySample(float(i * 300), 0.0, 100.0) for i in range(12)]
    assert {e.tier for e in replay(history, 0.92, table, model_slo.alerting).episodes} <= expected
    if not expected:  # alerting off: no alert of any kind, not even the no-data ticket
        assert _alerts(catalog, "svc") == []


SLOTH = """
version: prometheus/v1
service: inventory
labels: {owner: team-a}
slos:
  - name: requests
    objective: 99.9
    sli: {events: {error_query: 'sum(rate(e[{{.window}}]))', total_query: 'sum(rate(t[{{.window}}]))'}}
    alerting: {name: X, page_alert: {disable: true}, ticket_alert: {disable: true}}
"""

OPENSLO = """
apiVersion: openslo/v1
kind: SLO
metadata: {name: delivery}
spec:
  service: notifications
  budgetingMethod: Occurrences
  objectives: [{target: 0.99}]
  timeWindow: [{duration: 30d, isRolling: true}]
  indicator:
    metadata: {name: ok}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: Prometheus, spec: {query: 'sum(rate(ok[{{window}}]))'}}}
        total: {metricSource: {type: Prometheus, spec: {query: 'sum(rate(all[{{window}}]))'}}}
"""


@pytest.mark.parametrize(("doc", "service"), [(SLOTH, "inventory"), (OPENSLO, "notifications")])
def test_disabled_alerting_emits_no_alert_of_any_kind(doc: str, service: str) -> None:
    result = _load(doc)
    assert not result.errors, result.errors
    assert _alerts(result.catalog, service) == []
    recorded = rules.render(result.catalog, TEMPLATES, OPTIONS)
    assert recorded  # still recorded: reports and dashboards read the series


def _severities(catalog: Catalog, service: str) -> set[str]:
    return {r["labels"]["severity"] for r in _alerts(catalog, service)}


@pytest.mark.parametrize(("lifecycle", "override", "severities", "paging"), [
    ("production", None, {"page", "ticket"}, "page"),
    ("experimental", None, {"ticket"}, "ticket"),
    ("deprecated", None, {"ticket"}, "ticket"),
    ("someday", None, {"page", "ticket"}, "page"),
    ("experimental", "page", {"page", "ticket"}, "page"),
    ("production", "ticket", {"ticket"}, "ticket"),
    ("production", "none", set(), "none"),
])
def test_lifecycle_decides_paging_and_an_entity_overrides_it(lifecycle: str, override: str | None,
                                                             severities: set[str], paging: str) -> None:
    ann = {"obsctl.dev/paging": override} if override else {}
    result = _load(_component("svc", ann, lifecycle))
    assert not result.errors
    assert result.catalog.services[0].paging == paging
    assert _severities(result.catalog, "svc") == severities


def test_a_bad_paging_value_names_the_field() -> None:
    result = _load(_component("svc", {"obsctl.dev/paging": "loud"}))
    assert [str(p) for p in result.errors] == [
        "c0.yaml:5: component:default/svc metadata.annotations.obsctl.dev/paging: error: paging 'loud' must be one "
        "of page, ticket, none"]


def _selectors(catalog: Catalog, service: str) -> list[str]:
    art = next(a for a in rules.render(catalog, TEMPLATES, OPTIONS) if a.key == f"default/{service}")
    return [r["expr"] for g in yaml.safe_load(art.body)["groups"] for r in g["rules"]
            if "http_server_request_duration_seconds" in r["expr"]]


@pytest.mark.parametrize(("annotation", "platform", "expected"), [
    (None, "production", 'deployment_environment_name="production"'),
    (None, "eu-prod", 'deployment_environment_name="eu-prod"'),
    ("staging", "production", 'deployment_environment_name="staging"'),
    ('x"} or vector(1) #', "production", 'deployment_environment_name="x\\"} or vector(1) #"'),
])
def test_default_slis_count_only_the_services_environment(annotation: str | None, platform: str,
                                                          expected: str) -> None:
    ann = {"obsctl.dev/environment": annotation} if annotation else {}
    result = _load(_component("svc", ann))
    options = RenderOptions(environment=platform, outputs=OPTIONS.outputs)
    art = next(a for a in rules.render(result.catalog, TEMPLATES, options) if a.key == "default/svc")
    groups = yaml.safe_load(art.body)["groups"]
    exprs = [r["expr"] for g in groups for r in g["rules"] if "http_server_request_duration_seconds" in r["expr"]]
    assert exprs and all(e.count("http_server_request_duration_seconds") == e.count(expected) for e in exprs)
    envs = {r["labels"]["environment"] for g in groups for r in g["rules"] if "alert" in r}
    assert envs == {rules.template_literal(annotation or platform)}  # printed verbatim by Prometheus
