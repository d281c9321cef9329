"""Generated rules under the real promtool: every sample rule file checks, the period ratio is exact on spiky
traffic, and hostile catalog values come out of Prometheus' templating verbatim."""

from __future__ import annotations

import random
import re
from dataclasses import replace
from pathlib import Path

import pytest

from obsctl.model import conventions as cv
from obsctl.model.artifact import Kind
from obsctl.model.entities import AlertPolicy, Catalog, EventsSLI, LatencySLI, Links
from obsctl.render import rules
from obsctl.render.options import RenderOptions
from obsctl.sources.directory import read_directory, read_template_tree
from obsctl.spec.load import load_catalog
from obsctl.spec.templates import Templates, parse_templates
from tests.support.prom import promtool_check_rules
from tests.support.slo_promtool import (
    RATE,
    REPO_ROOT,
    Check,
    Scenario,
    Suite,
    alert_labels,
    availability_service,
    repo_templates,
    rule_groups,
    run_promtool_test,
    values_from_probe,
)

pytestmark = pytest.mark.integration
TEMPLATES = repo_templates()


def test_every_sample_rule_file_passes_promtool_check_rules(tmp_path: Path) -> None:
    result = load_catalog(read_directory(REPO_ROOT / "examples" / "catalog", ["**/*.yaml", "**/*.yml"]), TEMPLATES)
    arts = [a for a in rules.render(result.catalog, TEMPLATES, RenderOptions()) if a.kind is Kind.PROMETHEUS_RULES]
    assert len(arts) == len(result.catalog.services) == 5
    for art in arts:
        path = tmp_path / Path(art.path).name
        path.write_bytes(art.body)
        check = promtool_check_rules(path)
        assert check.returncode == 0, check.stdout + check.stderr
        assert re.search(r"SUCCESS: \d+ rules found", check.stdout)


def _short_period_templates(days: int) -> Templates:
    """The repository's templates plus a test-only window table with a short period (cheap for promtool)."""
    files = read_template_tree()
    files[f"alert-rules/windows/{days}d.yaml"] = (
        f"period: {days}d\ntiers:\n"
        "  - {name: page-fast, severity: page, long_window: 1h, short_window: 5m, budget_percent: 2}\n").encode()
    return parse_templates(files)


def test_period_ratio_is_traffic_weighted_on_spiky_traffic(tmp_path: Path) -> None:
    """Diurnal traffic with spikes and error bursts: the recorded period ratio equals sum(bad) / sum(all).

    The period is 2 days (a test-only window table) to keep promtool fast; the period ratio has
    the same form for 7d, 28d and 30d, only the range differs.
    """
    rng = random.Random(20261126)
    step, days = 60.0, 2
    templates = _short_period_templates(days)
    segments: list[tuple[float, float]] = []
    weights: list[float] = []  # traffic multiplier per step
    n = int((days * 86400 + 3600) / step)
    for i in range(n):
        hour = (i * step / 3600) % 24
        if 8 <= hour < 20:
            mult, ratio = 50.0, 0.001  # busy day, few errors
        else:
            mult, ratio = 0.5, 0.05  # quiet night, many errors
        if rng.random() < 0.03:
            mult = mult * 10  # a traffic spike
        elif rng.random() < 0.02:
            ratio = 0.3  # a burst of errors
        segments.append((step, ratio))
        weights.append(mult)
    scenario = _WeightedScenario(step, segments, weights)
    svc = availability_service(0.99, days)
    groups = rule_groups(svc, templates)
    sel = "{" + ",".join(f'{k}="{v}"' for k, v in cv.alert_selector(svc, svc.slos[0]).items()) + "}"
    end = n * step
    recorded = f"{cv.SERIES_PERIOD_ERROR_RATIO}{sel}"
    naive = f"avg_over_time(obsctl:slo_error_ratio:rate5m{sel}[{days}d])"
    probe = Suite(groups, evaluation_interval_s=step)
    probe.add_expr(scenario, [(recorded, end), (naive, end)])
    result = run_promtool_test(probe.write(tmp_path, "spiky"))
    got = values_from_probe(result.stdout + result.stderr)
    assert (recorded, end) in got and (naive, end) in got, result.stdout[-2000:] + result.stderr[-2000:]
    window_start = end - days * 86400
    steps = [(r, w, t) for ((_s, r), w, t) in scenario.steps_at() if window_start < t <= end]
    exact = sum(w * r for r, w, _t in steps) / sum(w for _r, w, _t in steps)
    value = got[(recorded, end)]
    average = got[(naive, end)]
    assert value is not None and average is not None
    print(f"\nPERIOD RATIO {days}d spiky traffic: exact {exact:.9f}, recorded {value:.9f}, "
          f"average of 5m ratios {average:.9f}")
    assert value == pytest.approx(exact, rel=0.005)
    assert abs(average - exact) / exact > 0.5  # the bias the recorded ratio avoids


def test_tiles_add_up_to_every_recorded_rate_of_the_window(tmp_path: Path) -> None:
    """The tiled day window and period equal the average of every recorded 5m rate in the window ending
    at the last tile: exactly (abutting tiles, no sample counted twice or missed), though every group is
    evaluated each minute here (promtool ignores group intervals): each tile records once per span."""
    rng = random.Random(20261128)
    step, days = 60.0, 2
    files = read_template_tree()
    files[f"alert-rules/windows/{days}d.yaml"] = (
        f"period: {days}d\ntiers:\n"
        "  - {name: page-fast, severity: page, long_window: 1h, short_window: 5m, budget_percent: 2}\n"
        "  - {name: ticket, severity: ticket, long_window: 1d, short_window: 2h, budget_percent: 50}\n").encode()
    templates = parse_templates(files)
    n = int((days * 86400 + 3600) / step)
    segments = [(step, 0.3 if rng.random() < 0.05 else rng.uniform(0.0, 0.02)) for _ in range(n)]
    weights = [rng.choice((0.2, 1.0, 1.0, 8.0)) for _ in range(n)]
    scenario = _WeightedScenario(step, segments, weights)
    svc = availability_service(0.99, days)
    sel = "{" + ",".join(f'{k}="{v}"' for k, v in cv.alert_selector(svc, svc.slos[0]).items()) + "}"
    end = n * step  # on an hour boundary
    off = end - 180.0  # 3 minutes after the last 5m boundary
    # Tiles are one span apart from the first one, recorded with the first 5m rate (t = 60 s, the second raw
    # sample): the last 5m tile before `end` is at end - 240 s, the period's last 10m one at end - 540 s.
    last5, last10 = end - 240.0, end - 540.0
    rates = {w: f"avg_over_time(obsctl:slo_errors:rate5m{sel}[{w}])" for w in ("23h59m59s999ms", "1d23h59m59s999ms")}
    day = "23h59m59s999ms"
    ratio_every = (f"sum_over_time(obsctl:slo_errors:rate5m{sel}[{day}]) / "
                   f"sum_over_time(obsctl:slo_requests:rate5m{sel}[{day}])")
    requests_every = f"avg_over_time(obsctl:slo_requests:rate5m{sel}[{day}])"
    probes = [(f"obsctl:slo_error_ratio:rate1d{sel}", end), (ratio_every, last5),
              (f"obsctl:slo_error_ratio:rate1d{sel}", off), (ratio_every, last5),
              (f"obsctl:slo_requests:rate1d{sel}", off), (requests_every, last5),
              (f"count_over_time(obsctl:slo_errors:sum5m{sel}[{day}])", end), ("vector(288)", end),
              (f"obsctl:slo_errors:period{sel}", end), (rates["1d23h59m59s999ms"], last10),
              (f"obsctl:slo_errors:period{sel}", off), (rates["1d23h59m59s999ms"], last10)]
    probe = Suite(rule_groups(svc, templates), evaluation_interval_s=step)
    probe.add_expr(scenario, probes)
    result = run_promtool_test(probe.write(tmp_path, "tiles"))
    got = values_from_probe(result.stdout + result.stderr)
    assert all(got.get(p) is not None for p in probes), result.stdout[-2000:] + result.stderr[-2000:]
    for tiled, every in zip(probes[::2], probes[1::2], strict=True):
        print(f"\nTILES {tiled[0].split('{')[0]} at {tiled[1]:.0f}: {got[tiled]!r} vs every rate {got[every]!r}")
        assert got[tiled] == pytest.approx(got[every], rel=1e-12, abs=1e-15)


class _WeightedScenario(Scenario):
    """A scenario whose request rate is multiplied per step (spiky traffic)."""

    def __init__(self, interval_s: float, segments: list[tuple[float, float]], weights: list[float]) -> None:
        super().__init__(interval_s, segments)
        object.__setattr__(self, "weights", weights)

    def steps_at(self) -> list[tuple[tuple[float, float], float, float]]:
        """(segment, weight, end time of the step) per step."""
        weights: list[float] = self.weights  # type: ignore[attr-defined]
        return [(seg, w, (i + 1) * self.interval_s) for i, (seg, w) in enumerate(zip(self.segments, weights,
                                                                                          strict=True))]

    def input_series(self) -> list[dict[str, str]]:
        weights: list[float] = self.weights  # type: ignore[attr-defined]
        ok = [f"{(1 - r) * w * RATE * self.interval_s!r}" for (_s, r), w in zip(self.segments, weights, strict=True)]
        bad = [f"{r * w * RATE * self.interval_s!r}" for (_s, r), w in zip(self.segments, weights, strict=True)]
        return [
            {"series": f'http_server_request_duration_seconds_count{{service_name="{self.service}",'
                       'deployment_environment_name="production",http_response_status_code="200"}',
             "values": _cumulative(ok)},
            {"series": f'http_server_request_duration_seconds_count{{service_name="{self.service}",'
                       'deployment_environment_name="production",http_response_status_code="500"}',
             "values": _cumulative(bad)},
        ]


def _cumulative(increments: list[str]) -> str:
    value = 0.0
    out = ["0"]
    for inc in increments:
        value += float(inc)
        out.append(repr(value))
    return " ".join(out)


HOSTILE = '{{ .Value }} "} or vector(1) {{ $labels }}\n}}{{'


def test_hostile_values_print_verbatim_through_prometheus_templating(tmp_path: Path) -> None:
    """Service, SLO, runbook and policy annotations full of template syntax reach the alert unchanged."""
    base = availability_service(0.999, 30, ["page-fast"])
    slo = replace(base.slos[0], name="avail" + HOSTILE,
                  alerting=AlertPolicy(tiers=("page-fast",), no_data=False, labels=(("extra", HOSTILE),),
                                       annotations=(("note", HOSTILE),)))
    svc = replace(base, slos=(slo,), links=Links(runbook="https://rb/" + HOSTILE))
    groups = rule_groups(svc, TEMPLATES, keep_annotations=True)
    scenario = Scenario(10.0, [(3600.0, 0.0), (600.0, 1.0)])
    probe = Suite(groups, evaluation_interval_s=10.0)
    probe.add(scenario, [Check(4200.0)])
    result = run_promtool_test(probe.write(tmp_path, "hostile"))
    out = result.stdout + result.stderr
    assert "error expanding" not in out and "template" not in out.lower(), out
    # promtool prints label sets with Go-quoted values: compare with the quoted expectation
    assert _go_quote(HOSTILE) in out  # the extra label and the note annotation
    assert _go_quote("https://rb/" + HOSTILE) in out  # runbook_url
    assert "SLO error budget burning over 14.4x" in out
    assert _go_quote(f"checkout: avail{HOSTILE} SLO error budget burning over 14.4x (page-fast)") in out


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def test_rules_render_for_catalog_with_hostile_values_is_accepted_by_promtool(tmp_path: Path) -> None:
    base = availability_service(0.999, 30)
    svc = replace(base, ref=replace(base.ref, name='svc"} or vector(1)'), links=Links(runbook=HOSTILE))
    [art] = [a for a in rules.render(Catalog((svc,)), TEMPLATES, RenderOptions()) if a.kind is Kind.PROMETHEUS_RULES]
    path = tmp_path / "hostile.rules.yml"
    path.write_bytes(art.body)
    check = promtool_check_rules(path)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(("min_events", "fires"), [(1000.0, True), (1e6, False)])
def test_min_events_guard_holds_back_low_traffic_pages(tmp_path: Path, min_events: float, fires: bool) -> None:
    """10 req/s is 36000 events per hour: a full outage pages with a 1000-event guard, not with 10^6."""
    svc = availability_service(0.999, 30, ["page-fast"], min_events=min_events)
    groups = rule_groups(svc, TEMPLATES)
    scenario = Scenario(10.0, [(3600.0, 0.0), (600.0, 1.0)])
    suite = Suite(groups, evaluation_interval_s=10.0)
    suite.add(scenario, [Check(4200.0, ["page-fast"] if fires else [])])
    result = run_promtool_test(suite.write(tmp_path, "guard"))
    assert result.returncode == 0, result.stdout + result.stderr


def _custom_case(suite: Suite, series: dict[str, str], checks: list[Check], interval: float) -> None:
    """A test case with hand-written input series (promtool notation)."""
    suite.tests.append({
        "interval": f"{interval:g}s",
        "input_series": [{"series": k, "values": v} for k, v in series.items()],
        "alert_rule_test": [{"eval_time": f"{c.at_s:g}s", "alertname": c.alertname,
                             "exp_alerts": [{"exp_labels": alert_labels(suite.groups, t)} for t in c.tiers]}
                            for c in checks],
    })


def test_latency_and_good_events_slis_fire_on_real_series(tmp_path: Path) -> None:
    """Latency reads the `le` bucket; a good-events SLI pages even when its good counter never existed."""
    latency = availability_service(0.99, 30, ["page-fast"])
    latency = replace(latency, slos=(replace(latency.slos[0], name="latency", sli=LatencySLI(0.25)),))
    suite = Suite(rule_groups(latency, TEMPLATES), evaluation_interval_s=10.0)
    sel = 'service_name="checkout",deployment_environment_name="production"'
    # 10 req/s, all fast for an hour, then all slow for 10 minutes
    _custom_case(suite, {
        f"http_server_request_duration_seconds_count{{{sel}}}": "0+100x420",
        f'http_server_request_duration_seconds_bucket{{{sel},le="0.25"}}': "0+100x360 36000+0x60",
        f'http_server_request_duration_seconds_bucket{{{sel},le="+Inf"}}': "0+100x420",
    }, [Check(3590.0), Check(4200.0, ["page-fast"])], 10.0)
    result = run_promtool_test(suite.write(tmp_path, "latency"))
    assert result.returncode == 0, result.stdout + result.stderr

    events = availability_service(0.99, 30, ["page-fast"])
    events = replace(events, slos=(replace(events.slos[0], name="jobs", sli=EventsSLI(
        total_query="sum(rate(jobs_total[{{window}}]))",
        good_query='sum(rate(jobs_total{outcome="ok"}[{{window}}]))')),))
    suite = Suite(rule_groups(events, TEMPLATES), evaluation_interval_s=10.0)
    # only failing jobs ever ran: the good series does not exist at all
    _custom_case(suite, {'jobs_total{outcome="failed"}': "0+100x120"}, [Check(600.0, ["page-fast"])], 10.0)
    result = run_promtool_test(suite.write(tmp_path, "events"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_other_environments_traffic_never_burns_the_budget(tmp_path: Path) -> None:
    """Staging fails completely under the same service name: production's SLO stays quiet, then pages on its own."""
    svc = availability_service(0.999, 30, ["page-fast"])
    suite = Suite(rule_groups(svc, TEMPLATES), evaluation_interval_s=10.0)
    metric = "http_server_request_duration_seconds_count"
    prod, staging = ('service_name="checkout",deployment_environment_name="production"',
                     'service_name="checkout",deployment_environment_name="staging"')
    _custom_case(suite, {
        f'{metric}{{{prod},http_response_status_code="200"}}': "0+100x360 36000+0x60",
        f'{metric}{{{prod},http_response_status_code="500"}}': "0+0x360 0+100x60",
        f'{metric}{{{staging},http_response_status_code="500"}}': "0+1000x420",  # staging: all errors, 10x prod's load
    }, [Check(3590.0), Check(4200.0, ["page-fast"])], 10.0)
    result = run_promtool_test(suite.write(tmp_path, "environment"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("kind", ["availability", "latency", "good"])
def test_grouped_slo_ratios_per_group_with_the_zero_fill(tmp_path: Path, kind: str) -> None:
    """A grouped SLO's error ratios are per group at every window, read the request rate recorded for that
    group, and are 0 (not absent) for a group that never failed (matched `on(<groups>)`)."""
    import yaml

    base = availability_service(0.99, 30)
    sli = {"availability": base.slos[0].sli, "latency": LatencySLI(0.25),
           "good": EventsSLI(total_query="sum by (http_route) (rate(jobs_total[{{window}}]))",
                             good_query='sum by (http_route) (rate(jobs_total{ok="1"}[{{window}}]))')}[kind]
    slo = replace(base.slos[0], sli=sli, group_by=("http_route",))
    svc = replace(base, slos=(slo,))
    env = 'service_name="checkout",deployment_environment_name="production"'
    if kind == "good":
        series = [(f'jobs_total{{http_route="{r}",ok="{ok}"}}', inc) for r, ok, inc in
                  (("/a", "1", 9), ("/a", "0", 1), ("/b", "1", 10))]
    elif kind == "latency":
        metric = "http_server_request_duration_seconds"
        series = [(f'{metric}_bucket{{{env},http_route="{r}",le="{le}"}}', inc) for r, le, inc in
                  (("/a", "0.25", 9), ("/a", "+Inf", 10), ("/b", "0.25", 10), ("/b", "+Inf", 10))]
        series += [(f'{metric}_count{{{env},http_route="{r}"}}', 10) for r in ("/a", "/b")]
    else:
        series = [(f'http_server_request_duration_seconds_count{{{env},http_route="{r}",'
                   f'http_response_status_code="{c}"}}', inc) for r, c, inc in
                  (("/a", "200", 9), ("/a", "500", 1), ("/b", "200", 10))]
    groups = rule_groups(svc, TEMPLATES)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    sel = 'service="checkout",catalog_namespace="default",slo="availability"'
    windows = ("5m", "30m", "1h", "2h", "6h")
    tests = [{"interval": "1m",
              "input_series": [{"series": s, "values": f"0+{inc * 60}x480"} for s, inc in series],
              "promql_expr_test": [
                  {"expr": f'obsctl:slo_error_ratio:rate{w}{{{sel}}}', "eval_time": "7h",
                   "exp_samples": [{"labels": f'obsctl:slo_error_ratio:rate{w}{{{sel},http_route="{r}"}}',
                                    "value": v} for r, v in (("/a", 0.1), ("/b", 0.0))]}
                  for w in windows]}]
    (tmp_path / "test.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m",
                                                       "tests": tests}, sort_keys=False))
    result = run_promtool_test(tmp_path / "test.yml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize("grouped", [False, True])
def test_one_read_by_error_class_gives_the_raw_windows_own_rates(tmp_path: Path, grouped: bool) -> None:
    """The request rate and error ratio of every window up to 6h, from the one read by error class (5m, 1h) or added
    up from a shorter window's by-class rates (30m, 2h, 6h), equal the two raw reads they replace (errors: the error
    matcher's series), at several times, under traffic that changes per series: 2xx, 4xx and 5xx codes, and a series
    without the code label (never an error). Exactly once the series are as old as the window; before that within
    1 %: the raw read extrapolates the first sample's interval back (Prometheus' guess), the added-up rates do not."""
    import yaml

    base = availability_service(0.99, 30)
    svc = replace(base, slos=(replace(base.slos[0], group_by=("http_route",) if grouped else ()),))
    groups = rule_groups(svc, TEMPLATES)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    rng = random.Random(20261129)
    metric = "http_server_request_duration_seconds_count"
    env = 'service_name="checkout",deployment_environment_name="production"'
    series = []
    for route in ("/a", "/b"):
        for code in ("200", "404", "500", "503", None):
            labels = f'{env},http_route="{route}"' + (f',http_response_status_code="{code}"' if code else "")
            values, total = [], 0
            for _ in range(480):
                total += rng.choice((0, 3, 60, 600))
                values.append(str(total))
            series.append({"series": f"{metric}{{{labels}}}", "values": " ".join(values)})
    sel = 'service="checkout",catalog_namespace="default",slo="availability"'
    by = "by (http_route) " if grouped else ""
    on = "on(http_route) " if grouped else "on() "
    checks = []
    for w, w_s in (("5m", 300), ("30m", 1800), ("1h", 3600), ("2h", 7200), ("6h", 21600)):
        errors, total = (f"sum {by}(rate({metric}{{{env}{m}}}[{w}]))"
                         for m in (',http_response_status_code=~"5.."', ""))
        for recorded, raw in ((f"obsctl:slo_requests:rate{w}{{{sel}}}", total),
                              (f"obsctl:slo_error_ratio:rate{w}{{{sel}}}", f"({errors}) / {on}({total})")):
            for at, at_s in (("2h", 7200), ("7h", 25200), ("7h59m", 28740)):
                # nothing differs by more than float rounding (or the first sample's extrapolation), and the recorded
                # series is there for every group
                tolerance = "1e-9" if at_s >= w_s else "0.01"
                checks.append({"expr": f"abs({recorded} - {on}({raw})) > {tolerance} * abs({raw})", "eval_time": at,
                               "exp_samples": []})
                checks.append({"expr": f"count({recorded})", "eval_time": at,
                               "exp_samples": [{"labels": "{}", "value": 2 if grouped else 1}]})
    tests = [{"interval": "1m", "input_series": series, "promql_expr_test": checks}]
    # each step evaluates `sli` first, as a live Prometheus has evaluated it before a slower group reads it (promtool
    # evaluates the groups of one step in an arbitrary order otherwise)
    (tmp_path / "test.yml").write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m",
                                                       "group_eval_order": [g["name"] for g in groups],
                                                       "tests": tests}, sort_keys=False))
    by_class = {r["record"]: r["expr"] for g in groups for r in g["rules"]
                if r.get("record", "").startswith("obsctl:slo_requests_by_class:")}
    # read from the raw counters in the `sli` group; added up outside it (6h: six 1h terms; 2h: two; 30m: six 5m)
    assert all(metric in by_class[f"obsctl:slo_requests_by_class:rate{w}"] for w in ("5m", "1h"))
    for w, base, n in (("30m", "5m", 6), ("2h", "1h", 2), ("6h", "1h", 6)):
        expr = by_class[f"obsctl:slo_requests_by_class:rate{w}"]
        assert metric not in expr and expr.count(f"obsctl:slo_requests_by_class:rate{base}{{") == n
        assert expr.endswith(f") / {n}")
    result = run_promtool_test(tmp_path / "test.yml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
