"""What a spec says reaches the rules unchanged: labels, severities, annotations, grouping, custom tiers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import promql_parser

from obsctl.model import conventions as cv
from obsctl.model.entities import SLO, AlertPolicy, EventsSLI, LatencySLI
from obsctl.model.windows import AlertTier
from obsctl.render.options import RenderOptions
from obsctl.render.rules import service_groups
from tests.support.slo_promtool import availability_service, repo_templates

TEMPLATES = repo_templates()


def _rules(slo: SLO) -> list[dict[str, Any]]:
    svc = availability_service(0.999, 30)
    svc = replace(svc, slos=(slo,))
    return [r for g in service_groups(svc, TEMPLATES, RenderOptions()) for r in g["rules"]]


def _alerts(slo: SLO, name: str = cv.ALERT_BURN) -> list[dict[str, Any]]:
    return [r for r in _rules(slo) if r.get("alert") == name]


BASE = availability_service(0.999, 30).slos[0]


def test_spec_severity_and_tier_labels_stay_obsctl_goes_under_its_own_names() -> None:
    policy = AlertPolicy(labels=(("tier", "2"), ("category", "availability")),
                         page_labels=(("severity", "critical"),), ticket_labels=(("severity", "warning"),),
                         no_data=False)
    alerts = _alerts(replace(BASE, alerting=policy))
    page = [a["labels"] for a in alerts if a["labels"][cv.LABEL_SEVERITY_CLASS] == "page"]
    ticket = [a["labels"] for a in alerts if a["labels"][cv.LABEL_SEVERITY_CLASS] == "ticket"]
    assert len(page) == 2 and len(ticket) == 2
    for labels in page:
        assert labels["severity"] == "critical" and labels["tier"] == "2" and labels["category"] == "availability"
        assert labels["obsctl_tier"] in ("page-fast", "page-slow")
    for labels in ticket:
        assert labels["severity"] == "warning" and labels["tier"] == "2"
        assert labels["obsctl_tier"] in ("ticket-fast", "ticket-slow")


def test_without_spec_labels_obsctl_names_are_plain() -> None:
    labels = next(a["labels"] for a in _alerts(replace(BASE, alerting=AlertPolicy(no_data=False)))
                  if a["labels"].get("tier") == "page-fast")
    assert labels["severity"] == "page" and labels[cv.LABEL_SEVERITY_CLASS] == "page"
    assert labels["tier"] == "page-fast" and "obsctl_tier" not in labels


def test_slo_labels_on_every_series_and_alert_and_annotations_per_severity() -> None:
    policy = AlertPolicy(annotations=(("runbook", "https://r"),), page_annotations=(("summary", "wake up"),),
                         ticket_annotations=(("summary", "look later"),))
    slo = replace(BASE, labels=(("owner", "payments"), ("slo", "shadowed")), alerting=policy)
    rules = _rules(slo)
    for rule in rules:
        assert rule["labels"]["owner"] == "payments", rule.get("record") or rule.get("alert")
    records = [r for r in rules if "record" in r]
    assert all(r["labels"]["slo"] == "availability" for r in records)  # the SLO identity is never replaced
    burn = [r for r in rules if r.get("alert") == cv.ALERT_BURN]
    assert {r["annotations"]["summary"] for r in burn if r["labels"]["severity"] == "page"} == {"wake up"}
    assert {r["annotations"]["summary"] for r in burn if r["labels"]["severity"] == "ticket"} == {"look later"}
    assert all(r["annotations"]["runbook"] == "https://r" for r in burn)
    assert all(r["labels"]["slo"] == "shadowed" and r["labels"]["obsctl_slo"] == "availability" for r in burn)


def test_grouped_sli_keeps_its_grouping_in_every_recording() -> None:
    sli = EventsSLI(total_query='sum by (cluster, route) (rate(req_total[{{window}}]))',
                    error_query='sum by (cluster, route) (rate(req_total{code=~"5.."}[{{window}}]))')
    slo = replace(BASE, sli=sli, group_by=("cluster", "route"))
    for rule in _rules(slo):
        if "record" in rule and "{{" not in rule["expr"] and rule["record"].startswith("obsctl:slo_errors:rate5m"):
            assert "sum by (cluster, route)" in rule["expr"]
            assert "sum(" not in rule["expr"]
        promql_parser.parse(rule["expr"])


def test_grouping_by_an_identity_label_is_renamed_exported() -> None:
    sli = LatencySLI(0.3)
    slo = replace(BASE, sli=sli, group_by=("service",))
    record = next(r for r in _rules(slo) if r.get("record") == "obsctl:slo_requests:rate5m")
    assert 'label_replace(' in record["expr"] and "sum by (exported_service)" in record["expr"]


def test_native_histogram_latency_reads_histogram_fraction() -> None:
    slo = replace(BASE, sli=LatencySLI(0.25, native=True))
    errors = next(r for r in _rules(slo) if r.get("record") == "obsctl:slo_errors:rate5m")
    assert "histogram_fraction(0, 0.25, sum(rate(http_server_request_duration_seconds{" in errors["expr"]
    assert "_bucket" not in errors["expr"]


def test_min_events_guard_matches_per_group() -> None:
    slo = replace(BASE, group_by=("cluster",), alerting=AlertPolicy(min_events=10, no_data=False))
    assert all("and on(cluster)" in a["expr"] for a in _alerts(slo))


def test_custom_tier_renders_its_windows_and_alert() -> None:
    tier = AlertTier("custom-2h", "page", 7200.0, 600.0, 5.0, 30 * 86400.0)
    slo = replace(BASE, alerting=AlertPolicy(tiers=(), custom_tiers=(tier,), no_data=False))
    rules = _rules(slo)
    alerts = [r for r in rules if "alert" in r]
    assert [a["labels"]["tier"] for a in alerts] == ["custom-2h"]
    records = {r["record"] for r in rules if "record" in r}
    assert {"obsctl:slo_burn_rate:rate2h", "obsctl:slo_burn_rate:rate10m"} <= records


NATIVE = """\
apiVersion: obsctl.dev/v1
kind: Service
metadata: {name: edge}
spec:
  owner: team-edge
  slos:
    - name: availability
      objective: 99.9
      groupBy: [cluster]
      labels: {domain: edge}
      sli: {availability: {}}
    - name: latency
      objective: 99
      sli: {latency: {threshold: 300ms, native: true}}
    - name: bad
      objective: 99
      groupBy: [obsctl_x, cluster, cluster]
      sli: {availability: {}}
"""


def test_native_document_group_by_and_native_latency() -> None:
    from obsctl.spec.load import SourceFile, load_catalog

    result = load_catalog([SourceFile("edge.yaml", NATIVE.encode())], TEMPLATES)
    assert [(p.line, p.field) for p in result.errors] == [(17, "spec.slos[2].groupBy[0]"),
                                                           (17, "spec.slos[2].groupBy[2]")]
    assert result.catalog.services == ()  # an obsctl document with a bad SLO is skipped whole (as before)
    fixed = NATIVE[:NATIVE.index("    - name: bad")]
    result = load_catalog([SourceFile("edge.yaml", fixed.encode())], TEMPLATES)
    (svc,) = result.catalog.services
    avail, latency = svc.slos
    assert avail.group_by == ("cluster",) and isinstance(latency.sli, LatencySLI) and latency.sli.native
    assert any("grouped by (cluster)" in p.message for p in result.problems)
    rules = [r for g in service_groups(svc, TEMPLATES, RenderOptions()) for r in g["rules"]]
    errors5 = [r for r in rules if r.get("record") == "obsctl:slo_errors:rate5m"]
    by_class5 = [r["expr"] for r in rules if r.get("record") == "obsctl:slo_requests_by_class:rate5m"]
    # the availability SLO reads its raw counters once, by group and error class, and sums that up by group
    assert by_class5 == [by_class5[0]] and by_class5[0].startswith("sum by (cluster, obsctl_error) (label_replace(")
    assert errors5[0]["expr"].startswith('(sum by (cluster) (obsctl:slo_requests_by_class:rate5m{service="edge",')
    assert 'obsctl_error="true"})) or on(cluster) (0 * (' in errors5[0]["expr"]
    assert "histogram_fraction(0, 0.3," in errors5[1]["expr"]
