"""OpenSLO documents render to what their authors meant: the corpus in tests/corpus/openslo (see ORIGIN.md)
with the rendered semantics each field must have."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import promql_parser
import pytest

from obsctl.errors import Severity
from obsctl.model import conventions as cv
from obsctl.model.entities import SLO, BudgetingMethod, EventsSLI, Service
from obsctl.render.options import RenderOptions
from obsctl.render.rules import service_groups
from obsctl.spec.load import LoadResult, SourceFile, load_catalog
from tests.support.slo_promtool import repo_templates

TEMPLATES = repo_templates()
CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "openslo"


def _load(name: str) -> LoadResult:
    path = CORPUS / name
    return load_catalog([SourceFile(str(path), path.read_bytes())], TEMPLATES)


def _slo(result: LoadResult, name: str) -> tuple[Service, SLO]:
    for svc in result.catalog.services:
        for slo in svc.slos:
            if slo.name == name:
                return svc, slo
    raise KeyError(name)


def _alerts(svc: Service, slo: SLO) -> list[dict[str, Any]]:
    rules = [r for g in service_groups(svc, TEMPLATES, RenderOptions()) for r in g["rules"]]
    return [r for r in rules if r.get("alert") == cv.ALERT_BURN and r["labels"].get(cv.LABEL_SLO) == slo.name]


def _warnings(result: LoadResult) -> list[str]:
    return [f"{p.line}:{p.field}: {p.message}" for p in result.problems if p.severity is Severity.WARNING]


def test_counter_ratio_without_window_is_rated_inside_the_aggregation() -> None:
    result = _load("v1-payments.yaml")
    assert result.errors == []
    svc, slo = _slo(result, "payments-availability")
    assert isinstance(slo.sli, EventsSLI)
    assert slo.sli.total_query == 'sum(rate(http_requests_total{service="payments"}[{{window}}]))'
    assert slo.sli.good_query == 'sum(rate(http_requests_total{service="payments",code!~"5.."}[{{window}}]))'
    assert slo.period_days == 28 and slo.objective == pytest.approx(0.995)
    assert svc.team.name == "team-payments"


def test_conditions_map_to_exactly_the_tiers_they_describe() -> None:
    svc, slo = _slo(_load("v1-payments.yaml"), "payments-availability")
    alerts = _alerts(svc, slo)
    by_tier = {a["labels"].get("obsctl_tier", a["labels"].get("tier")): a["labels"] for a in alerts}
    # the page row of the 28d table (13.44x over 1h), the ticket with the same numbers, the custom 10x/3h page
    assert set(by_tier) == {"page-fast", "ticket-13.44x-1h", "page-10x-3h"}
    assert by_tier["page-fast"][cv.LABEL_SEVERITY_CLASS] == "page"
    assert by_tier["page-fast"]["severity"] == "critical"  # as written
    assert by_tier["ticket-13.44x-1h"][cv.LABEL_SEVERITY_CLASS] == "ticket"  # severity: ticket never pages
    assert by_tier["ticket-13.44x-1h"]["severity"] == "ticket"
    assert by_tier["page-10x-3h"][cv.LABEL_SEVERITY_CLASS] == "page"
    custom = next(a for a in alerts if "page-10x-3h" in a["labels"].values())
    assert "obsctl:slo_error_ratio:rate3h" in custom["expr"] and "obsctl:slo_error_ratio:rate15m" in custom["expr"]
    assert "> 10\n" in custom["expr"]
    # the SLO's metadata labels on the alerts; `tier` is the spec's, obsctl's tier goes under obsctl_tier
    assert all(a["labels"]["tier"] == "1" and a["labels"]["domain"] == "money,checkout" for a in alerts)


def test_raw_threshold_calendar_timeslices_and_grouping() -> None:
    result = _load("v1-more.yaml")
    assert result.errors == []
    _, errors = _slo(result, "search-errors")
    assert isinstance(errors.sli, EventsSLI) and errors.sli.error_ratio_query is not None
    assert errors.period_days == 7 and errors.alerting.no_data  # alertWhenNoData
    assert [t.name for t in errors.alerting.custom_tiers] == ["ticket-1x-3d"]  # 1x/3d is no 7d row
    svc, p99 = _slo(result, "search-p99")
    assert p99.budgeting is BudgetingMethod.TIMESLICES and p99.timeslice_seconds == 300
    assert p99.timeslice_target == pytest.approx(0.9) and p99.period_days == 30
    assert isinstance(p99.sli, EventsSLI)
    assert p99.sli.error_ratio_query == ("avg_over_time(((histogram_quantile(0.99, sum by (le) "
                                         "(rate(search_duration_seconds_bucket[5m])))) > bool 0.3)[{{window}}:1m])")
    assert p99.alerting.tiers == ("ticket-slow",)  # 1x over 3d is the 30d table's ticket-slow
    assert [a["labels"]["severity"] for a in _alerts(svc, p99)] == ["warning"]
    _, native = _slo(result, "search-latency-native")  # a native histogram, read as written
    assert isinstance(native.sli, EventsSLI) and native.sli.good_query is not None
    assert native.sli.good_query.startswith("sum(histogram_fraction(0, 0.3, rate(search_duration_seconds[{{window}}]))")
    _, quarter = _slo(result, "search-quarter")
    assert quarter.period_days == 90 and quarter.group_by == ("region",)
    assert quarter.budgeting is BudgetingMethod.TIMESLICES
    warnings = "\n".join(_warnings(result))
    for said in ("calendar window 1M", "calendar window 1Q", "RatioTimeslices is counted as Timeslices",
                 "DataSource is not honoured", "AlertNotificationTarget is not honoured",
                 "notificationTargets: not honoured", "alertWhenResolved: not honoured", "grouped by (region)"):
        assert said in warnings, said
    for rule in [r for g in service_groups(svc, TEMPLATES, RenderOptions()) for r in g["rules"]]:
        promql_parser.parse(rule["expr"])


def test_v1alpha_time_windows_objectives_and_threshold_indicator() -> None:
    result = _load("v1alpha.yaml")
    assert result.errors == []
    _, fast = _slo(result, "ledger-writes-1")
    _, ok = _slo(result, "ledger-writes-0")
    assert ok.period_days == 28 and fast.period_days == 28  # 4 weeks
    assert isinstance(ok.sli, EventsSLI)
    assert ok.sli.good_query == 'sum(rate(ledger_writes_total{result="ok"}[{{window}}]))'
    _, lag = _slo(result, "ledger-lag")
    assert isinstance(lag.sli, EventsSLI)
    assert lag.sli.error_ratio_query == ("avg_over_time(((max(ledger_replication_lag_seconds)) >= bool 30)"
                                         "[{{window}}:1m])")
    assert lag.budgeting is BudgetingMethod.TIMESLICES and lag.timeslice_target == 1
    assert not lag.alerting.page and not lag.alerting.ticket  # no alert policy: no page, no ticket


def test_one_bad_slo_skips_only_itself_and_the_error_points_at_the_sli_query_line() -> None:
    result = _load("partial.yaml")
    assert [s.name for s in result.catalog.services] == ["orders"]
    (svc,) = result.catalog.services
    assert [s.name for s in svc.slos] == ["orders-ok"]
    errors = [(p.line, p.entity, p.field) for p in result.errors]
    assert (12, "sli:default/broken-sli", "spec.ratioMetric.good.metricSource.spec.query") in errors
    # the SLO document's error names the service it adds to (its last good artifacts are held); the shared SLI
    # keeps its own name (several services may use it)
    assert (24, "component:default/orders", "spec.indicatorRef") in errors
