"""The pure report: per-SLO numbers from recorded measures, status, ordering, periods, JSON schema, renderers."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from html.parser import HTMLParser

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from obsctl.app import load_templates
from obsctl.config import load_settings
from obsctl.model.entities import SLO, AlertPolicy, AvailabilitySLI, EntityRef, Service, Team
from obsctl.slo.formats import render_markdown, render_table
from obsctl.slo.html import render_html
from obsctl.slo.periods import PeriodSpec, parse_period
from obsctl.slo.report import SCHEMA_PATH, Report, ReportFilter, SLOData, SLOReport, Status, slo_report

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC).timestamp()
DAY = 86400.0
TEMPLATES = load_templates(load_settings(None))
ROLLING = PeriodSpec("rolling", "rolling")
TEAM = Team(EntityRef("group", "default", "team-payments"), title="Payments")

# 99.9 % over 30 d, 0.05 % errors over the period, an incident burning 16x over the last hour
BURNING = SLOData(
    window_ratios={"5m": 0.02, "30m": 0.001, "1h": 0.016, "2h": 0.0005, "6h": 0.001, "1d": 0.0005, "3d": 0.0005},
    period_ratio=0.0005, period_events=1_000_000.0)


def svc(name: str = "checkout", objective: float = 0.999, policy: AlertPolicy | None = None,
        team: str = "team-payments", period_days: int = 30) -> Service:
    return Service(EntityRef("component", "default", name), EntityRef("group", "default", team),
                   (SLO("availability", objective, AvailabilitySLI(), period_days=period_days,
                        alerting=policy or AlertPolicy()),))


def report_of(service: Service, data: SLOData, period: PeriodSpec = ROLLING, now: float = NOW) -> SLOReport:
    slo = service.slos[0]
    return slo_report(service, slo, data, team=TEAM, table=TEMPLATES.windows[slo.period_days], period=period,
                      now=now)


def test_hand_computed_burning_slo() -> None:
    r = report_of(svc(), BURNING)
    assert r.status is Status.BURNING
    assert r.firing == ("page-fast",)  # 1h at 16x and 5m at 20x, both above 14.4x; 6h/30m at 1x
    assert r.sli == pytest.approx(0.9995)
    assert r.budget_remaining == pytest.approx(0.5)
    assert r.budget_minutes == pytest.approx(43.2)
    assert r.budget_minutes_remaining == pytest.approx(21.6)
    assert r.budget_events == pytest.approx(1000)
    assert r.events_bad == pytest.approx(500)
    assert r.budget_events_remaining == pytest.approx(500)
    assert (r.current_burn_window, r.current_burn) == ("1h", pytest.approx(16.0))
    assert r.exhaustion_s == pytest.approx(0.5 * 30 * DAY / 16)  # 22.5 h
    burns = {w.window: w.burn_rate for w in r.windows}
    assert burns == {"5m": pytest.approx(20), "30m": pytest.approx(1), "1h": pytest.approx(16),
                     "2h": pytest.approx(0.5), "6h": pytest.approx(1), "1d": pytest.approx(0.5),
                     "3d": pytest.approx(0.5)}
    assert r.period_end - r.period_start == 30 * DAY


def test_policy_without_pages_is_not_burning() -> None:
    r = report_of(svc(policy=AlertPolicy(page=False)), BURNING)
    assert r.status is Status.HEALTHY
    assert r.firing == ()
    assert [t.enabled for t in r.tiers] == [False, False, True, True]


@pytest.mark.parametrize(("data", "status", "reason"), [
    (SLOData(), Status.NO_DATA, "no data for the period"),
    (SLOData(period_ratio=math.nan, period_events=0.0), Status.NO_DATA, "no traffic in the period"),
    (SLOData(period_ratio=1.5), Status.NO_DATA, "implausible error ratio"),
    (SLOData(period_ratio=0.002, period_events=10.0), Status.EXHAUSTED, "no recent data for window"),
    (SLOData(period_ratio=0.001, period_events=10.0), Status.EXHAUSTED, ""),  # exactly spent
    (SLOData(period_ratio=0.0, period_events=10.0, problems=("x",)), Status.HEALTHY, "x"),
])
def test_status(data: SLOData, status: Status, reason: str) -> None:
    r = report_of(svc(), data)
    assert r.status is status
    assert any(reason in x for x in r.reasons) or not reason
    if status is Status.NO_DATA:
        assert r.budget_remaining is None and r.sli is None and r.budget_minutes_remaining is None
        assert r.exhaustion_s is None and r.budget_events is None


def test_missing_window_never_fires_and_is_named() -> None:
    data = SLOData(window_ratios={"1h": 0.5}, period_ratio=0.0005, period_events=100.0)
    r = report_of(svc(), data)
    assert r.firing == ()  # 1h burns at 500x but the 5m window is unknown
    assert any("5m" in x for x in r.reasons)


def test_recorded_objective_mismatch_is_reported() -> None:
    r = report_of(svc(), SLOData(period_ratio=0.0, period_events=1.0, recorded_objective=0.99))
    assert any("rules not converged" in x for x in r.reasons)


def test_closed_calendar_period() -> None:
    october = parse_period("2026-10", NOW)
    r = report_of(svc(), SLOData(period_ratio=0.0004, period_events=2e6, window_ratios={"1h": 0.5}), october)
    assert not r.in_progress
    assert r.windows == () and r.exhaustion_s is None and r.current_burn is None
    assert [t.name for t in r.tiers] == ["page-fast", "page-slow", "ticket-fast", "ticket-slow"]
    assert not any(t.firing or t.long_burn is not None for t in r.tiers)
    assert r.period_s == 31 * DAY
    assert r.budget_minutes == pytest.approx(44.64)  # 0.1 % of 31 days
    assert r.budget_remaining == pytest.approx(0.6)
    assert r.status is Status.HEALTHY


@pytest.mark.parametrize(("text", "label", "start", "end"), [
    ("this-month", "2026-11", "2026-11-01", "2026-12-01"),
    ("last-month", "2026-10", "2026-10-01", "2026-11-01"),
    ("2026-02", "2026-02", "2026-02-01", "2026-03-01"),
    ("2026-Q3", "2026-Q3", "2026-07-01", "2026-10-01"),
    ("2025-q4", "2025-Q4", "2025-10-01", "2026-01-01"),
    ("this-quarter", "2026-Q4", "2026-10-01", "2027-01-01"),
    ("last-quarter", "2026-Q3", "2026-07-01", "2026-10-01"),
])
def test_calendar_periods(text: str, label: str, start: str, end: str) -> None:
    p = parse_period(text, NOW)
    ts = lambda d: datetime.fromisoformat(d).replace(tzinfo=UTC).timestamp()  # noqa: E731
    assert (p.label, p.start, p.end) == (label, ts(start), ts(end))


def test_last_month_in_january_and_bad_periods() -> None:
    jan = datetime(2027, 1, 5, tzinfo=UTC).timestamp()
    assert parse_period("last-month", jan).label == "2026-12"
    assert parse_period("last-quarter", jan).label == "2026-Q4"
    for bad in ("2026-13", "2026-Q5", "lastmonth", "2027-01"):
        with pytest.raises(ValueError, match="period"):
            parse_period(bad, NOW)


def _report() -> Report:
    services = [svc("checkout"), svc("search", 0.995), svc("ledger"), svc("billing", team="team-billing")]
    data = [BURNING, SLOData(period_ratio=0.0001, period_events=5e6, window_ratios={"1h": 0.0001, "5m": 0.0}),
            SLOData(period_ratio=0.02, period_events=1e5), SLOData()]
    slos = []
    for s, d in zip(services, data, strict=True):
        r = report_of(s, d)
        if s.name == "checkout":  # chart data, as the query layer would bring it
            r = slo_report(s, s.slos[0], SLOData(
                window_ratios=BURNING.window_ratios, period_ratio=0.0005, period_events=1e6,
                burn_history={"1h": tuple((NOW - 86400 + i * 3600, 0.0005 * (1 + i % 5)) for i in range(25))},
                rate_history=tuple((NOW - 30 * DAY + (i + 1) * 10800, 0.02, 40.0) for i in range(240)),
                history_step=10800), team=TEAM, table=TEMPLATES.windows[30], period=ROLLING, now=NOW)
        slos.append(r)
    return Report.build(NOW, ROLLING, "http://127.0.0.1:9090", slos, queries=5)


def test_worst_first_and_grouping() -> None:
    rep = _report()
    assert [(s.service, s.status) for s in rep.slos] == [
        ("ledger", Status.EXHAUSTED), ("checkout", Status.BURNING), ("billing", Status.NO_DATA),
        ("search", Status.HEALTHY)]
    groups = rep.groups()
    assert [g.team for g in groups] == ["team-payments", "team-billing"]
    assert [sg.service for sg in groups[0].services] == ["ledger", "checkout", "search"]
    assert rep.summary() == {"slos": 4, "exhausted": 1, "burning": 1, "no-data": 1, "healthy": 1}


def test_json_round_trip_and_schema() -> None:
    rep = _report()
    doc = json.loads(rep.to_json())
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert doc["schema_version"] == 1
    back = Report.from_json(rep.to_json())
    assert back == rep
    assert back.to_json() == rep.to_json()
    checkout = next(s for t in doc["teams"] for sv in t["services"] for s in sv["slos"] if sv["service"] == "checkout")
    assert checkout["budget"]["minutes_remaining"] == pytest.approx(21.6)
    assert checkout["firing"] == ["page-fast"]
    assert checkout["charts"]["budget"][0] == [NOW - 30 * DAY, 1.0]
    with pytest.raises(ValueError, match="schema_version"):
        Report.from_json({**doc, "schema_version": 2})


def test_schema_rejects_wrong_documents() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    doc = json.loads(_report().to_json())
    doc["teams"][0]["services"][0]["slos"][0]["status"] = "fine"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_budget_chart_ends_at_the_remaining_budget() -> None:
    rep = _report()
    checkout = next(s for s in rep.slos if s.service == "checkout")
    # constant 0.05 % errors: the burn-down is a straight line from 100 % to 50 %
    assert checkout.budget_chart[0] == (NOW - 30 * DAY, 1.0)
    assert checkout.budget_chart[-1][1] == pytest.approx(0.5)
    assert checkout.budget_chart[120][1] == pytest.approx(0.75)
    assert checkout.burn_chart["1h"][0][1] == pytest.approx(0.5)  # ratio 0.0005 / budget 0.001


def test_filters() -> None:
    s = svc("checkout")
    assert ReportFilter().matches(s, s.slos[0])
    assert ReportFilter(team="team-payments", service="default/checkout", slo="availability").matches(s, s.slos[0])
    assert ReportFilter(team="group:default/team-payments").matches(s, s.slos[0])
    assert not ReportFilter(team="team-billing").matches(s, s.slos[0])
    assert not ReportFilter(slo="latency").matches(s, s.slos[0])


def test_same_named_teams_in_two_namespaces_report_and_filter_apart() -> None:
    """group:default/payments and group:retail/payments: the report's team is the team label the alerts carry
    (payments, retail/payments), so they are two teams; a bare name filters the default namespace's, as it routes."""
    from obsctl.service.reports import filter_report

    services = [Service(EntityRef("component", ns, "checkout"), EntityRef("group", ns, "payments"),
                        (SLO("availability", 0.999, AvailabilitySLI()),)) for ns in ("default", "retail")]
    reports = [slo_report(s, s.slos[0], BURNING, team=None, table=TEMPLATES.windows[30], period=ROLLING, now=NOW)
               for s in services]
    assert [(r.team, r.team_title, r.namespace) for r in reports] == [("payments", "payments", "default"),
                                                                     ("retail/payments", "retail/payments", "retail")]
    rep = Report.build(NOW, ROLLING, "http://prometheus", reports)
    assert sorted((g.team, [sg.namespace for sg in g.services]) for g in rep.groups()) == [
        ("payments", ["default"]), ("retail/payments", ["retail"])]
    for wanted, namespaces in (("payments", ["default"]), ("default/payments", ["default"]),
                               ("group:default/payments", ["default"]), ("retail/payments", ["retail"]),
                               ("group:retail/payments", ["retail"]), ("other/payments", [])):
        assert [s.namespace for s in services if ReportFilter(team=wanted).matches(s, s.slos[0])] == namespaces, \
            wanted
        # a stored report (a closed period's snapshot) is filtered the same way
        assert [s.namespace for s in filter_report(rep, ReportFilter(team=wanted)).slos] == namespaces, wanted


def test_text_renderers() -> None:
    rep = _report()
    table = render_table(rep)
    assert table.index("ledger/availability") < table.index("checkout/availability") < table.index("search/")
    assert "21.6 min" in table and "page-fast" in table and "-1900%" in table
    md = render_markdown(rep)
    assert "## Payments" in md and "| checkout | availability | **burning** |" in md
    assert "no data for the period" in md


class _Checker(HTMLParser):
    VOID = {"meta", "br", "rect", "line", "path", "i"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value and tag in ("script", "link", "img"):
                self.external.append(value)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def test_html_is_self_contained_and_balanced() -> None:
    page = render_html(_report())
    checker = _Checker()
    checker.feed(page)
    assert checker.stack == ["html"] or checker.stack == []
    assert checker.external == [] and "script" not in checker.tags
    assert page.count('class="chart chart-burn"') == 1  # only checkout has burn history
    assert page.count('class="chart chart-budget"') == 1
    assert page.count("threshold") >= 1


def test_html_escapes_catalog_text() -> None:
    s = Service(EntityRef("component", "default", "evil"), EntityRef("group", "default", "t"),
                (SLO("availability", 0.99, AvailabilitySLI(), description='<script>alert("x")</script>'),),
                title="<b>Evil</b>")
    r = report_of(s, SLOData())
    page = render_html(Report.build(NOW, ROLLING, "http://x", [r]))
    assert "<script>" not in page and "&lt;script&gt;" in page and "<b>Evil" not in page


def test_min_events_guard_in_the_report() -> None:
    # page-fast burns at 16x/20x, but only 12 events per hour (0.0033/s) reached the long window
    quiet = SLOData(window_ratios=BURNING.window_ratios, window_rates={"1h": 12 / 3600}, period_ratio=0.0005,
                    period_events=1e6)
    guarded = svc(policy=AlertPolicy(min_events=20))
    assert report_of(guarded, quiet).firing == ()
    busy = SLOData(window_ratios=BURNING.window_ratios, window_rates={"1h": 20 / 3600}, period_ratio=0.0005,
                   period_events=1e6)
    assert report_of(guarded, busy).firing == ("page-fast",)
    assert report_of(svc(), quiet).firing == ("page-fast",)  # no guard: fires


def test_tier_that_cannot_fire_is_not_enabled() -> None:
    # 90 %: the 14.4x tier would need 144 % errors, so the rules leave it out
    r = report_of(svc(objective=0.9), SLOData(window_ratios={w: 1.0 for w in BURNING.window_ratios},
                                              period_ratio=0.05, period_events=100.0))
    states = {t.name: (t.enabled, t.firing) for t in r.tiers}
    assert states["page-fast"] == (False, False)
    assert states["page-slow"] == (True, True)  # 6 x 10 % = 60 % < 100 %


@given(objective=st.floats(min_value=0.5, max_value=0.9999), ratio=st.floats(min_value=0, max_value=1),
       events=st.floats(min_value=1, max_value=1e12))
def test_report_budget_views_agree(objective: float, ratio: float, events: float) -> None:
    r = report_of(svc(objective=objective), SLOData(period_ratio=ratio, period_events=events))
    assert r.budget_remaining is not None and r.budget_events and r.budget_events_remaining is not None
    assert r.budget_remaining == pytest.approx(1 - ratio / (1 - objective))
    assert r.budget_events_remaining / r.budget_events == pytest.approx(r.budget_remaining, rel=1e-6, abs=1e-6)
    assert r.budget_minutes_remaining == pytest.approx(r.budget_remaining * r.budget_minutes)
    assert (r.status is Status.EXHAUSTED) == (r.budget_remaining <= 1e-9)
