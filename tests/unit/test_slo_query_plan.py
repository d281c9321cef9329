"""The report's query plan and assembly, without Prometheus: a fixed number of queries for any number
of SLOs, and the answers mapped back to each SLO (conflicts and partial answers never picked)."""

from __future__ import annotations

from bench.common import synthetic_catalog, templates
from obsctl.model import conventions as cv
from obsctl.slo.assemble import Answer, assemble
from obsctl.slo.periods import parse_period
from obsctl.slo.query_plan import MEASURE_PER_SLO, plan

TEMPLATES = templates()
NOW = 1_800_000_000.0


def _labels(svc: str, slo: str, name: str) -> dict[str, str]:
    return {"__name__": name, cv.LABEL_SERVICE: svc, cv.LABEL_NAMESPACE: "default", cv.LABEL_SLO: slo}


def test_query_count_does_not_grow_with_the_slos() -> None:
    counts = set()
    for n in (3, 300):
        cat = synthetic_catalog(n, 1)
        slos = [(s, o) for s in cat.services for o in s.slos]
        for period in ("rolling", "this-month"):
            p = plan(slos, TEMPLATES.windows, parse_period(period, NOW), NOW, charts=True)
            counts.add((period, len(p.queries)))
    assert len(counts) == 2 and all(c <= 10 for _, c in counts)


def test_rolling_answers_assemble_per_slo() -> None:
    cat = synthetic_catalog(2, 1)
    slos = [(s, o) for s in cat.services for o in s.slos]
    period = parse_period("rolling", NOW)
    p = plan(slos, TEMPLATES.windows, period, NOW)
    by_measure = {q.measure: q for q in p.queries}
    assert set(by_measure) == {"error ratios", MEASURE_PER_SLO}  # without charts: two queries
    # only the series the report reads: every window's ratio and the period's; the long windows' rates
    # (the synthetic SLOs have a minimum-events guard), the objective, the period's request count
    assert by_measure["error ratios"].expr == ('{__name__=~"obsctl:slo_error_ratio:period|'
                                               + "|".join(f"obsctl:slo_error_ratio:rate{w}" for w in
                                                          sorted(["5m", "30m", "1h", "2h", "6h", "1d", "3d"]))
                                               + '"}')
    assert by_measure[MEASURE_PER_SLO].expr == ('{__name__=~"obsctl:slo_events:period|obsctl:slo_objective:ratio|'
                                                + "|".join(f"obsctl:slo_requests:rate{w}" for w in
                                                           sorted(["1h", "6h", "1d", "3d"])) + '"}')
    a, b = cat.services[0].name, cat.services[1].name
    ratios = Answer([(_labels(a, "availability", "obsctl:slo_error_ratio:rate1h"), [(NOW, 0.002)]),
                     (_labels(a, "availability", cv.SERIES_PERIOD_ERROR_RATIO), [(NOW, 0.001)]),
                     (_labels(a, "availability", "obsctl:slo_requests:rate1d"), [(NOW, 40.0)]),
                     # two different values for one SLO's measure: neither is used
                     (_labels(b, "availability", cv.SERIES_PERIOD_ERROR_RATIO), [(NOW, 0.1)]),
                     (_labels(b, "availability", cv.SERIES_PERIOD_ERROR_RATIO), [(NOW, 0.2)])])
    per_slo = Answer([(_labels(a, "availability", cv.SERIES_PERIOD_EVENTS), [(NOW, 1.5e6)]),
                      (_labels(a, "availability", cv.SERIES_OBJECTIVE), [(NOW, 0.999)])])
    data, warnings = assemble(p, [(by_measure["error ratios"], ratios), (by_measure[MEASURE_PER_SLO], per_slo)],
                              slos, TEMPLATES.windows, period)
    mine = data[("default", a, "availability")]
    assert mine.window_ratios == {"1h": 0.002} and mine.window_rates == {"1d": 40.0}
    assert mine.period_ratio == 0.001 and mine.period_events == 1.5e6 and mine.recorded_objective == 0.999
    other = data[("default", b, "availability")]
    assert other.period_ratio is None and any("conflicting" in p for p in other.problems)
    assert not warnings
    silent = data[("default", b, "latency")]
    assert silent.period_ratio is None and any("no recorded series" in p for p in silent.problems)
    # an answer with warnings is not used at all: no value, the warning shown, the SLO says why
    partial = Answer(ratios.series, warnings=["partial"])
    data, warnings = assemble(p, [(by_measure["error ratios"], partial), (by_measure[MEASURE_PER_SLO], per_slo)],
                              slos, TEMPLATES.windows, period)
    assert warnings and "only in part" in warnings[0]
    mine = data[("default", a, "availability")]
    assert mine.period_ratio is None and mine.window_ratios == {} and mine.period_events == 1.5e6
    assert "Prometheus answered only in part" in mine.problems
