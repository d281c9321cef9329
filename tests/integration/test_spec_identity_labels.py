"""A spec label that takes one of obsctl's identity labels (`service`, `catalog_namespace`, `slo`, `team`,
`environment`) with another value: what it did to paging, in a real amtool and Alertmanager, and how the loader
refuses it now. And a label named like a grouping label of the SLI: the alerts of its groups collided, and
promtool shows Prometheus then evaluates none of them.

Before, the loader only warned: the SLO rendered with the spec's `service` on its alerts (obsctl's under
`obsctl_service`). The first test renders that model as the loader used to build it and shows the harm with the
real tools; the second loads the same file with today's loader: an error naming the file, line, service and
field, that SLO left out, and the other services rendered byte for byte as without the file.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsctl.app import load_path, load_templates, render_options
from obsctl.config import Settings, load_settings
from obsctl.model import conventions as cv
from obsctl.model.artifact import Kind
from obsctl.model.entities import Catalog, Service
from obsctl.model.status import owner_key
from obsctl.reconcile.converge import carry_forward
from obsctl.render import render_all, routes
from obsctl.render.rules import service_groups
from obsctl.spec.load import LoadResult
from tests.support.binaries import require_binary
from tests.support.prom import Alertmanager, amtool_check_config, amtool_routes_test, promtool_check_rules
from tests.support.slo_promtool import Suite, counter_values, firing_from_probe, rule_groups, run_promtool_test

pytestmark = pytest.mark.integration

COMPONENTS = [
    {"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "spec": {"type": "team"},
     "metadata": {"name": "team-db", "annotations": {"pagerduty.com/service-id": "PDB"}}},
    {"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "spec": {"type": "team"},
     "metadata": {"name": "team-pay", "annotations": {"pagerduty.com/service-id": "PPAY"}}},
    {"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
     "metadata": {"name": "payments-db", "annotations": {"obsctl.dev/availability": "99.9"}},
     "spec": {"type": "service", "lifecycle": "production", "owner": "team-db"}},
    # checkout pages its own PagerDuty service; its SLO comes from the Sloth spec below
    {"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
     "metadata": {"name": "checkout", "annotations": {"pagerduty.com/service-id": "PCHECKOUT"}},
     "spec": {"type": "service", "lifecycle": "production", "owner": "team-pay",
              "dependsOn": ["component:payments-db"]}},
    {"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
     "metadata": {"name": "orders", "annotations": {"obsctl.dev/availability": "99.9"}},
     "spec": {"type": "service", "lifecycle": "production", "owner": "team-pay",
              "dependsOn": ["component:payments-db"]}},
]
SLOTH = """\
version: prometheus/v1
service: checkout
labels:
  tier: "1"
  service: checkout
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{job="checkout",code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{job="checkout"}[{{.window}}]))
    alerting:
      name: CheckoutErrors
      page_alert: {labels: {severity: critical}}
      ticket_alert: {labels: {severity: warning}}
"""
HOSTILE = SLOTH.replace("  service: checkout\n", "  service: payments-db\n")


def _setup(tmp_path: Path, sloth: str) -> tuple[Path, Settings]:
    cat = tmp_path / "cat"
    (cat / "slos").mkdir(parents=True, exist_ok=True)
    (cat / "catalog.yaml").write_text(yaml.safe_dump_all(COMPONENTS))
    (cat / "slos" / "checkout.yml").write_text(sloth)
    settings = load_settings(None, alerting={
        "catalog": {"pagerduty": {"severities": ["page"], "settings": {
            "routing_key_file": f"{tmp_path}/keys/{{service_id}}", "url": "http://127.0.0.1:9/pagerduty"}}},
        "default": {"ticket": [{"name": "t", "type": "webhook", "settings": {"url": "http://127.0.0.1:9/t"}}]}})
    return cat, settings


def _service(catalog: Catalog, name: str) -> Service:
    return next(s for s in catalog.services if s.ref.name == name)


def _page(svc: Service, settings: Settings) -> dict[str, str]:
    """The labels Prometheus sends for the service's fastest page alert (the rule's labels win over the series')."""
    rules = [r for g in service_groups(svc, load_templates(settings), render_options(settings)) for r in g["rules"]]
    alert = next(r for r in rules if r.get("alert") and r["labels"].get(cv.LABEL_SEVERITY_CLASS) == "page"
                 and "page-fast" in (r["labels"].get("tier"), r["labels"].get("obsctl_tier")))
    return {**alert["labels"], "alertname": alert["alert"]}


def _config(catalog: Catalog, settings: Settings, path: Path) -> tuple[str, dict[str, Any]]:
    [art] = routes.render(catalog, load_templates(settings), render_options(settings))
    path.write_bytes(art.body)
    check = amtool_check_config(path)
    assert check.returncode == 0, check.stdout + check.stderr
    return art.body.decode(), yaml.safe_load(art.body)


def _route(path: Path, labels: dict[str, str]) -> str:
    found = amtool_routes_test(path, labels)
    assert found.returncode == 0, found.stdout + found.stderr
    return found.stdout.strip()


def test_before_a_spec_service_label_paged_the_wrong_receiver_and_muted_another_service(tmp_path: Path) -> None:
    """checkout's spec says `service: payments-db`: its page misses checkout's own PagerDuty service, and in a
    real Alertmanager it mutes orders' page as if payments-db were down (orders depends on payments-db)."""
    require_binary("amtool")
    require_binary("prometheus-alertmanager")
    cat, settings = _setup(tmp_path, SLOTH)
    clean = load_path(cat, settings, load_templates(settings))
    assert not clean.errors, clean.errors
    checkout = _service(clean.catalog, "checkout")
    [slo] = checkout.slos
    # what the loader built before, with a warning: the spec's labels as written
    hostile_checkout = replace(checkout, slos=(replace(slo, labels=tuple(sorted(
        {**dict(slo.labels), "service": "payments-db"}.items()))),))
    before = replace(clean.catalog, services=tuple(hostile_checkout if s is checkout else s
                                                   for s in clean.catalog.services))
    text, _doc = _config(before, settings, tmp_path / "alertmanager.yml")
    own_page, hostile_page = _page(checkout, settings), _page(hostile_checkout, settings)
    assert hostile_page["service"] == "payments-db" and hostile_page["obsctl_service"] == "checkout"
    assert _route(tmp_path / "alertmanager.yml", own_page) == "obsctl-team-pay-page-default-checkout"
    assert _route(tmp_path / "alertmanager.yml", hostile_page) == "obsctl-team-pay-page"  # the team's, not checkout's
    orders_page = _page(_service(clean.catalog, "orders"), settings)
    assert orders_page[cv.LABEL_DEPENDS_ON] == "|default/payments-db|"
    with Alertmanager(tmp_path / "am", text) as am:
        am.post_alerts([{"labels": own_page}, {"labels": orders_page}])

        def both() -> dict[str, dict[str, Any]] | None:
            found = {a["labels"]["service"]: a for a in am.alerts()}
            return found if {"checkout", "orders"} <= set(found) else None

        found = am.wait_for(both, timeout=20)
        assert found["orders"]["status"]["state"] == "active"  # checkout's own page mutes nobody
        am.post_alerts([{"labels": hostile_page}])

        def muted() -> dict[str, Any] | None:
            orders = next(a for a in am.alerts() if a["labels"]["service"] == "orders")
            return orders if orders["status"]["inhibitedBy"] else None

        orders = am.wait_for(muted, timeout=20)
    assert orders["status"]["state"] == "suppressed"


def test_now_the_file_gets_an_error_and_the_other_services_render_unchanged(tmp_path: Path) -> None:
    require_binary("amtool")
    cat, settings = _setup(tmp_path, SLOTH)
    templates, options = load_templates(settings), render_options(settings)
    clean = load_path(cat, settings, templates)
    assert not clean.errors, clean.errors
    (cat / "slos" / "checkout.yml").write_text(HOSTILE)
    result: LoadResult = load_path(cat, settings, templates)
    [error] = result.errors
    assert (error.file, error.line, error.entity, error.field) == (
        str(cat / "slos" / "checkout.yml"), 5, "component:default/checkout", "labels.service")
    assert "label service='payments-db' would replace obsctl's service='checkout'" in error.message
    assert _service(result.catalog, "checkout").slos == ()  # that SLO alone is left out
    # checkout keeps its last good artifacts as they are, nothing is skipped, and the read is complete (prune safe)
    assert carry_forward(result) == (frozenset(), frozenset({"default/checkout"}), True)
    others = {"default/payments-db", "default/orders"}

    def rules(r: LoadResult) -> dict[str, bytes]:
        return {aid: a.body for aid, a in render_all(r.catalog, templates, options, ["rules"]).items()
                if a.kind is Kind.PROMETHEUS_RULES and owner_key(a.owner) in others}

    assert rules(result) == rules(clean) and len(rules(clean)) == 2
    _config(clean.catalog, settings, tmp_path / "clean.yml")
    _config(result.catalog, settings, tmp_path / "now.yml")
    for name in ("payments-db", "orders"):
        page = _page(_service(result.catalog, name), settings)
        assert _route(tmp_path / "now.yml", page) == _route(tmp_path / "clean.yml", page)


PYRRA = """\
apiVersion: pyrra.dev/v1alpha1
kind: ServiceLevelObjective
metadata:
  name: api-errors
  labels:
    pyrra.dev/team: team-api
    pyrra.dev/service: api
spec:
  target: "99.5"
  window: 28d
  indicator:
    ratio:
      errors: {metric: 'http_requests_total{job="api",code=~"5.."}'}
      total: {metric: 'http_requests_total{job="api"}'}
      grouping: [route]
"""


def _firing(tmp_path: Path, svc: Service, name: str) -> tuple[str, dict[float, list[dict[str, str]]]]:
    """promtool's report for both routes failing every request from the start, probed at 10 minutes."""
    suite = Suite(rule_groups(svc, load_templates(load_settings(None))))
    series = [{"series": f'http_requests_total{{job="api",route="{route}",code="500"}}',
               "values": counter_values([(30, 600.0)])} for route in ("a", "b")]
    suite.tests.append({"interval": "1m", "input_series": series,
                        "alert_rule_test": [{"eval_time": "10m", "alertname": "ErrorBudgetBurn", "exp_alerts": []}]})
    out = run_promtool_test(suite.write(tmp_path / name, name))
    return out.stdout + out.stderr, firing_from_probe(out.stdout + out.stderr)


def test_a_label_named_like_a_grouping_label_made_the_groups_alerts_collide_and_is_refused(tmp_path: Path) -> None:
    """Pyrra propagates `pyrra.dev/route: checkout-page` as `route`; the SLI groups by route. Before, the label
    reached the alerts of every route: promtool shows Prometheus refusing the alert rule, so neither route's page
    fires. Now the loader refuses the label at its field and the SLO is left out."""
    require_binary("promtool")
    settings = load_settings(None)
    clean = load_path(_write(tmp_path / "clean", PYRRA), settings, load_templates(settings), routing=False)
    assert not clean.errors, clean.errors
    [svc] = clean.catalog.services
    [slo] = svc.slos
    report, firing = _firing(tmp_path, svc, "clean")
    assert {a["route"] for a in firing[600.0] if a.get("obsctl_severity") == "page"} == {"a", "b"}, report
    # what the loader built before: the propagated label on the SLO, as written
    before = replace(svc, slos=(replace(slo, labels=tuple(sorted({**dict(slo.labels), "route": "checkout-page"}
                                                                  .items()))),))
    report, firing = _firing(tmp_path, before, "before")
    assert "vector contains metrics with the same labelset after applying alert labels" in report
    assert not [a for alerts in firing.values() for a in alerts if a.get("obsctl_severity") == "page"], report
    hostile = PYRRA.replace("    pyrra.dev/service: api\n",
                            "    pyrra.dev/service: api\n    pyrra.dev/route: checkout-page\n")
    result = load_path(_write(tmp_path / "now", hostile), settings, load_templates(settings), routing=False)
    [error] = result.errors
    assert (error.line, error.entity, error.field) == (8, "component:default/api", "metadata.labels.pyrra.dev/route")
    assert "is also a grouping label" in error.message
    assert [s.slos for s in result.catalog.services] == [()]


def _write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "slo.yaml").write_text(text)
    return directory


def test_a_prometheus_reserved_label_name_broke_the_whole_rule_file_and_is_refused(tmp_path: Path) -> None:
    """A Sloth label `__name__` reached every rule of the service: promtool (and so the rule-file sink, which
    validates before it replaces a file) refuses the whole file. Now it is an error on that label's field."""
    require_binary("promtool")
    settings = load_settings(None)
    templates = load_templates(settings)
    clean = load_path(_write(tmp_path / "clean", HOSTILE.replace("  service: payments-db\n", "")), settings,
                      templates, routing=False)
    assert not clean.errors, clean.errors
    [svc] = clean.catalog.services
    [slo] = svc.slos
    before = replace(svc, slos=(replace(slo, labels=(("__name__", "hijack"), *slo.labels)),))
    path = tmp_path / "checkout.rules.yml"
    path.write_text(yaml.safe_dump({"groups": service_groups(before, templates, render_options(settings))}))
    check = promtool_check_rules(path)
    assert check.returncode != 0 and "invalid label name: __name__" in check.stdout + check.stderr
    result = load_path(_write(tmp_path / "now", HOSTILE.replace("  service: payments-db\n", "  __name__: hijack\n")),
                       settings, templates, routing=False)
    assert [(p.line, p.field) for p in result.errors] == [(5, "labels.__name__")]
