"""Pyrra ServiceLevelObjectives render to what Pyrra means (tests/corpus/pyrra, see ORIGIN.md).

Pyrra cannot be built here (the Go module proxy refuses it), so its documented semantics are stated
below and checked against obsctl's rendering; the burn-rate alert of a grouped ratio SLO is run under
`promtool test rules` (one bad route pages at Pyrra's 14x over 1h and 5m, the good route never does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from obsctl.model import conventions as cv
from obsctl.model.entities import SLO, EventsSLI, Service
from obsctl.render.options import RenderOptions
from obsctl.render.rules import service_groups
from obsctl.slo.math import detection_time
from obsctl.spec.load import LoadResult, SourceFile, load_catalog
from obsctl.spec.pyrra import pyrra_tiers
from tests.support.slo_promtool import counter_values, firing_from_probe, repo_templates, run_promtool_test

TEMPLATES = repo_templates()
CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "pyrra" / "slos.yaml"


def _load() -> LoadResult:
    return load_catalog([SourceFile(str(CORPUS), CORPUS.read_bytes())], TEMPLATES)


def _slo(name: str) -> tuple[Service, SLO]:
    (svc,) = _load().catalog.services
    return svc, next(s for s in svc.slos if s.name == name)


def _rules(svc: Service) -> list[dict[str, Any]]:
    return [r for g in service_groups(svc, TEMPLATES, RenderOptions()) for r in g["rules"]]


def test_pyrra_windows_for_28_days() -> None:
    # Pyrra: critical 1h/5m at 14x and 6h/30m at 7x; warning 1d/2h at 2x and 4d/6h at 1x.
    got = [(t.severity, t.long_window_s, t.short_window_s, t.burn_rate) for t in pyrra_tiers(28)]
    assert got == [("page", 3600, 300, 14), ("page", 21600, 1800, 7), ("ticket", 86400, 7200, 2),
                   ("ticket", 345600, 21600, 1)]
    # other windows scale Pyrra's 28-day windows, rounded to the minute
    assert [t.long_window_s for t in pyrra_tiers(7)] == [900, 5400, 21600, 86400]


def test_ratio_with_grouping_alerts_per_route_with_pyrra_labels() -> None:
    svc, slo = _slo("api-errors")
    assert svc.name == "api" and svc.team.name == "team-api"  # pyrra.dev/service and pyrra.dev/team
    assert slo.objective == pytest.approx(0.995) and slo.period_days == 28 and slo.group_by == ("route",)
    assert isinstance(slo.sli, EventsSLI)
    assert slo.sli.error_query == 'rate(http_requests_total{job="api",code=~"5.."}[{{window}}])'
    rules = _rules(svc)
    record = next(r for r in rules if r.get("record") == "obsctl:slo_errors:rate5m" and r["labels"]["slo"] == slo.name)
    assert "sum by (route) (rate(" in record["expr"]
    burn = [r for r in rules if r.get("alert") == "ErrorBudgetBurn" and r["labels"].get("slo") == slo.name]
    assert sorted((r["labels"]["severity"], r["labels"][cv.LABEL_SEVERITY_CLASS]) for r in burn) == [
        ("critical", "page"), ("critical", "page"), ("warning", "ticket"), ("warning", "ticket")]
    # pyrra.dev/ labels propagate without the prefix; other metadata labels (prometheus, role) do not
    assert all(r["labels"]["team"] == "team-api" and "prometheus" not in r["labels"] for r in burn)
    assert any(r.get("alert") == cv.ALERT_NO_DATA and r["labels"].get("slo") == slo.name for r in rules)  # absent


def test_latency_kinds_and_alerting_switches() -> None:
    svc, latency = _slo("api-latency")
    assert isinstance(latency.sli, EventsSLI)
    assert latency.sli.good_query == 'rate(http_request_duration_seconds_bucket{job="api",le="0.3"}[{{window}}])'
    assert latency.alerting.name == "APILatencyBudgetBurn" and not latency.alerting.no_data
    _, native = _slo("api-latency-native")
    assert isinstance(native.sli, EventsSLI) and native.sli.good_query is not None
    assert native.sli.good_query.startswith("histogram_fraction(0, 0.5, rate(connect_server_requests_duration_seconds")
    assert native.alerting.custom_tiers == ()  # burnrates: false
    assert any("Pyrra keeps its absent alert" in p.message for p in _load().problems)  # said, not silently dropped
    _, gauge = _slo("probe-success")
    assert isinstance(gauge.sli, EventsSLI)
    assert gauge.sli.total_query.startswith("count_over_time(probe_success{")
    assert gauge.sli.good_query is not None and gauge.sli.good_query.startswith("sum_over_time(probe_success{")
    assert gauge.alerting.custom_tiers == () and not gauge.alerting.no_data  # disabled: true
    names = {r.get("alert") for r in _rules(svc) if r.get("labels", {}).get("slo") in ("api-latency-native",
                                                                                      "probe-success")}
    assert names <= {None, cv.ALERT_NO_DATA}


def test_a_bad_pyrra_document_skips_only_its_slo() -> None:
    result = _load()
    (svc,) = result.catalog.services
    assert sorted(s.name for s in svc.slos) == ["api-errors", "api-latency", "api-latency-native", "probe-success"]
    (err,) = result.errors
    assert (err.line, err.field) == (83, "spec.indicator.ratio.errors.metric")


@pytest.mark.integration
def test_grouped_ratio_pages_for_the_bad_route_only(tmp_path: Path) -> None:
    svc, slo = _slo("api-errors")
    svc = Service(ref=svc.ref, team=svc.team, slos=(slo,))
    groups = service_groups(svc, TEMPLATES, RenderOptions())
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    step, rate, bad_ratio = 60.0, 10.0, 0.2
    baseline, outage = 3600.0, 3600.0
    series = []
    for route, ratio in (("/ok", 0.0), ("/bad", bad_ratio)):
        for code, share in (("200", 1 - ratio), ("500", ratio)):
            incs = [(round(baseline / step), (1.0 if code == "200" else 0.0) * rate * step),
                    (round(outage / step), share * rate * step)]
            series.append({"series": f'http_requests_total{{job="api",route="{route}",code="{code}"}}',
                           "values": counter_values(incs)})
    times = [baseline + k * step for k in range(1, round(outage / step) + 1)]
    rules = tmp_path / "r.yml"
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False, width=1 << 20))
    test = tmp_path / "t.yml"
    test.write_text(yaml.safe_dump({
        "rule_files": [rules.name], "evaluation_interval": "1m", "group_eval_order": [g["name"] for g in groups],
        "tests": [{"interval": "1m", "input_series": series,
                   "alert_rule_test": [{"eval_time": f"{int(t)}s", "alertname": "ErrorBudgetBurn", "exp_alerts": []}
                                       for t in times]}]}, sort_keys=False, width=1 << 20))
    result = run_promtool_test(test)
    firing = firing_from_probe(result.stdout + result.stderr)
    pages = sorted(t for t, alerts in firing.items()
                   if any(a.get("obsctl_tier", a.get("tier")) == "page-1h" for a in alerts))
    assert pages, "the bad route never paged"
    assert all(a["route"] == "/bad" for alerts in firing.values() for a in alerts)
    tier = pyrra_tiers(28)[0]
    expected = detection_time(tier, slo.objective, bad_ratio)
    assert expected is not None
    assert abs((pages[0] - baseline) - expected) <= step, (pages[0] - baseline, expected)
    assert all(a["severity"] == "critical" for t in pages for a in firing[t]
               if a.get("obsctl_tier", a.get("tier")) == "page-1h")
