"""The queries an SLO report sends, as data: pure, no I/O.

Every measure is read for all SLOs at once: one instant query per measure (every window's error
ratio in one), one range query per chart series. The number of queries does not grow with the
number of SLOs; `obsctl.slo.assemble` turns the answers into per-SLO data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from obsctl.model import conventions as conv
from obsctl.model.durations import parse_duration
from obsctl.model.entities import SLO, BudgetingMethod, Service
from obsctl.model.windows import WindowTable
from obsctl.slo.periods import PeriodSpec

CHART_POINTS = 240
MEASURE_EVENTS = "events"  # the recorded request count of the period (rolling periods)
MEASURE_OBJECTIVE = "objective"
MEASURE_PER_SLO = "objectives, request counts and rates"


@dataclass(frozen=True)
class Query:
    """One query: an instant one at `at`, or a range one from `start` to `at` by `step`."""

    measure: str
    expr: str
    at: float
    start: float | None = None
    step: float = 0.0
    # The measure of each series comes from its name (`series_measure`), not from `measure`.
    by_series_name: bool = False

    @property
    def is_range(self) -> bool:
        """Whether this is a range query."""
        return self.start is not None


@dataclass(frozen=True)
class QueryPlan:
    """The queries of one report and what assembling their answers needs to know."""

    queries: tuple[Query, ...]
    chart_step: float = 0.0
    events_per_sample: float = 0.0  # calendar periods: seconds each summed 5m rate stands for


def fmt_ts(value: float) -> str:
    """A timestamp or duration in seconds as PromQL and the API take it (no float noise)."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _chart_step(range_s: float) -> float:
    base = parse_duration(conv.SHORT_RESOLUTION)
    return max(base, math.ceil(range_s / CHART_POINTS / base) * base)


def _names(names: set[str]) -> str:
    """A selector for exactly these series names (a literal alternation: Prometheus matches it as a set)."""
    return f'{{__name__=~"{"|".join(re.escape(n) for n in sorted(names))}"}}'


_RATIO_PREFIX = conv.series(conv.SERIES_ERROR_RATIO, "")
_SLICES_PREFIX = conv.series(conv.SERIES_BAD_SLICES, "")
_TOTAL_PREFIX = conv.series(conv.SERIES_TOTAL, "")


def series_measure(labels: Mapping[str, str]) -> str | None:
    """The measure a series of a by-name query holds: `w:<window>` error ratios, `s:<window>` bad-slice
    ratios (timeslices budgeting), `t:<window>` request rates (the minimum-events guard), the objective,
    the period's request count."""
    name = labels.get("__name__", "")
    if name == conv.SERIES_OBJECTIVE:
        return MEASURE_OBJECTIVE
    if name == conv.SERIES_PERIOD_EVENTS:
        return MEASURE_EVENTS
    if name == conv.SERIES_PERIOD_ERROR_RATIO:
        return "w:period"
    if name == conv.SERIES_PERIOD_BAD_SLICES:
        return "s:period"
    if name.startswith(_RATIO_PREFIX):
        return "w:" + name[len(_RATIO_PREFIX):]
    if name.startswith(_SLICES_PREFIX):
        return "s:" + name[len(_SLICES_PREFIX):]
    if name.startswith(_TOTAL_PREFIX):
        return "t:" + name[len(_TOTAL_PREFIX):]
    return None


def plan(slos: Sequence[tuple[Service, SLO]], tables: Mapping[int, WindowTable], period: PeriodSpec, now: float,
         *, charts: bool = False) -> QueryPlan:
    """The queries a report over `slos` for `period` sends at `now`."""
    queries: list[Query] = []
    errors_5m = conv.series(conv.SERIES_ERRORS, conv.SHORT_RESOLUTION)
    total_5m = conv.series(conv.SERIES_TOTAL, conv.SHORT_RESOLUTION)
    read_end = period.read_end(now)
    used = {tb.period_days: tb for tb in (tables.get(slo.period_days) for _, slo in slos) if tb is not None}
    kinds = {slo.budgeting for _, slo in slos}
    if period.in_progress(now):
        # One query for every window's ratio (and, for rolling periods, the period's) of every SLO. Every
        # query names its series exactly: Prometheus reads (and sends) no series the report does not use.
        windows = {conv.window_name(w) for tb in used.values() for w in tb.windows_s}
        names: set[str] = set()
        if BudgetingMethod.OCCURRENCES in kinds:
            names |= {conv.series(conv.SERIES_ERROR_RATIO, w) for w in windows}
            if not period.is_calendar:
                names.add(conv.SERIES_PERIOD_ERROR_RATIO)
        if BudgetingMethod.TIMESLICES in kinds:
            names |= {conv.series(conv.SERIES_BAD_SLICES, w) for w in windows}
            if not period.is_calendar:
                names.add(conv.SERIES_PERIOD_BAD_SLICES)
        if names:
            queries.append(Query("error ratios", _names(names), now, by_series_name=True))
    # One more for what each SLO has once: the recorded objective, for rolling periods the recorded
    # request count of the period (its 10m tiles), and the request rates of the long windows the
    # minimum-events guard reads. Two queries of similar size: Prometheus evaluates them in parallel.
    per_slo = {conv.SERIES_OBJECTIVE}
    if period.in_progress(now):
        per_slo |= {conv.series(conv.SERIES_TOTAL, conv.window_name(t.long_window_s)) for _, slo in slos
                    if slo.alerting.min_events and slo.period_days in used for t in used[slo.period_days].tiers}
    if not period.is_calendar and BudgetingMethod.OCCURRENCES in kinds:
        per_slo.add(conv.SERIES_PERIOD_EVENTS)
    queries.append(Query(MEASURE_PER_SLO, _names(per_slo), now, by_series_name=True))

    res = conv.SHORT_RESOLUTION
    res_s = parse_duration(res)
    events_per_sample = 0.0
    if period.is_calendar:
        # Events over a calendar range: a subquery at the short resolution tiles the range with the
        # recorded 5m rates (each covers the 5m before it), so sum x 300 s is the count of events.
        # Ranges are 1s short of the period: Prometheus 2.x selects both ends, and the step at the
        # period's start covers the 5m before it.
        range_s = max(0, math.floor(read_end - float(period.start or 0.0)))
        if range_s >= res_s:
            at = fmt_ts(read_end)
            queries.append(Query("errors", f"sum_over_time({errors_5m}[{range_s - 1}s:{res}] @ {at})", read_end))
            queries.append(Query("requests", f"sum_over_time({total_5m}[{range_s - 1}s:{res}] @ {at})", read_end))
            events_per_sample = res_s
            if any(slo.budgeting is BudgetingMethod.TIMESLICES for _, slo in slos):
                queries.append(Query("bad slices", f"avg_over_time({conv.SERIES_SLICE_BAD}[{range_s}s] @ {at})",
                                     read_end))

    step = 0.0
    if charts:
        if period.is_calendar:
            chart_start = float(period.start or 0.0)
        else:
            chart_start = now - max((slo.period_days for _, slo in slos), default=30) * 86400.0
        step = _chart_step(read_end - chart_start)
        first = chart_start + step
        if read_end > first:
            for secs in sorted({t.long_window_s for tb in tables.values() for t in tb.tiers}):
                w = conv.window_name(secs)
                queries.append(Query(f"burn {w}", f"max_over_time({conv.series(conv.SERIES_ERROR_RATIO, w)}"
                                     f"[{fmt_ts(step)}s])", read_end, start=first, step=step))
            queries.append(Query("error history", f"avg_over_time({errors_5m}[{fmt_ts(step)}s])", read_end,
                                 start=first, step=step))
            queries.append(Query("request history", f"avg_over_time({total_5m}[{fmt_ts(step)}s])", read_end,
                                 start=first, step=step))
    return QueryPlan(tuple(queries), chart_step=step, events_per_sample=events_per_sample)
