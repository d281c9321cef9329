"""Assembly of SLO reports: the answers of a query plan -> what Prometheus said per SLO. Pure, no I/O.

A measure missing or ambiguous for one SLO leaves that SLO without it ("no data"); an answer that
came with warnings (Prometheus answered only in part) is not used at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from obsctl.model import conventions as conv
from obsctl.model.entities import SLO, BudgetingMethod, Service
from obsctl.model.windows import WindowTable
from obsctl.slo.periods import PeriodSpec
from obsctl.slo.query_plan import MEASURE_EVENTS, Query, QueryPlan, series_measure
from obsctl.slo.report import Key, Point, SLOData, slo_key


@dataclass(frozen=True)
class Answer:
    """One query's series (labels, samples) and any warnings Prometheus attached."""

    series: list[tuple[dict[str, str], list[Point]]]
    warnings: list[str] = field(default_factory=list)


def _key(labels: Mapping[str, str]) -> Key | None:
    ns, svc, slo = labels.get(conv.LABEL_NAMESPACE), labels.get(conv.LABEL_SERVICE), labels.get(conv.LABEL_SLO)
    if not ns or not svc or not slo:
        return None
    return (ns, svc, slo)


class _Values:
    """Values per (SLO key, measure); conflicting duplicates make the value unusable, never a pick."""

    def __init__(self) -> None:
        self.values: dict[tuple[Key, str], Any] = {}
        self.conflicts: dict[Key, set[str]] = {}

    def add(self, key: Key, sub: str, value: Any) -> None:
        old = self.values.get((key, sub))
        if (key, sub) in self.values and old != value and not _both_nan(old, value):
            self.conflicts.setdefault(key, set()).add(sub)
        self.values[(key, sub)] = value

    def get(self, key: Key, sub: str) -> Any:
        if sub in self.conflicts.get(key, ()):
            return None
        return self.values.get((key, sub))


def _both_nan(a: Any, b: Any) -> bool:
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


@dataclass
class _Collected:
    values: _Values = field(default_factory=_Values)
    partial: list[str] = field(default_factory=list)  # measures Prometheus answered only in part
    warnings: list[str] = field(default_factory=list)


def _ingest(out: _Collected, query: Query, answer: Answer) -> None:
    if answer.warnings:
        # A partial answer may lack or skew any SLO's value: use none of it.
        out.partial.append(query.measure)
        out.warnings.append(f"Prometheus answered {query.expr!r} only in part ({'; '.join(answer.warnings)}); "
                            f"{query.measure} treated as missing")
        return
    for labels, samples in answer.series:
        key = _key(labels)
        if key is None:
            continue
        if query.is_range:
            out.values.add(key, query.measure, tuple(samples))
            continue
        name = series_measure(labels) if query.by_series_name else query.measure
        if name is not None:
            out.values.add(key, name, samples[0][1])


@lru_cache(maxsize=64)
def _window_names(table: WindowTable | None) -> frozenset[str]:
    return frozenset(conv.window_name(s) for s in table.windows_s) if table else frozenset()


def assemble(plan: QueryPlan, answers: Sequence[tuple[Query, Answer]], slos: Sequence[tuple[Service, SLO]],
             tables: Mapping[int, WindowTable], period: PeriodSpec) -> tuple[dict[Key, SLOData], list[str]]:
    """Per-SLO data from the answers to `plan`'s queries, and the warnings to show."""
    out = _Collected()
    for query, answer in answers:
        _ingest(out, query, answer)
    v = out.values
    measures: dict[Key, set[str]] = {}
    for k, m in v.values:
        measures.setdefault(k, set()).add(m)
    result: dict[Key, SLOData] = {}
    for svc, slo in slos:
        key = slo_key(svc, slo)
        problems = [f"conflicting series for {', '.join(sorted(m))}: more than one value for this SLO"
                    for m in [v.conflicts.get(key, set())] if m]
        windows = _window_names(tables.get(slo.period_days))
        kind = "s:" if slo.budgeting is BudgetingMethod.TIMESLICES else "w:"
        window_ratios = {w: float(v.get(key, kind + w)) for w in windows if v.get(key, kind + w) is not None}
        window_rates = {w: float(v.get(key, "t:" + w)) for w in windows if v.get(key, "t:" + w) is not None}
        period_ratio: float | None
        events: float | None = None
        if period.is_calendar:
            period_ratio = None
            if slo.budgeting is BudgetingMethod.TIMESLICES:
                period_ratio = v.get(key, "bad slices")  # the share of the range spent in bad slices
                if period_ratio is None and "bad slices" in out.partial:
                    problems.append("Prometheus answered only in part")
            else:
                err, tot = v.get(key, "errors"), v.get(key, "requests")
                if err is not None and tot is not None:
                    period_ratio = err / tot if tot > 0 else math.nan
                    events = tot * plan.events_per_sample
                elif any(m in out.partial for m in ("errors", "requests")):
                    problems.append("Prometheus answered only in part")
        else:
            period_ratio = v.get(key, kind + "period")
            if slo.budgeting is BudgetingMethod.OCCURRENCES:
                events = v.get(key, MEASURE_EVENTS)
            if "error ratios" in out.partial:
                problems.append("Prometheus answered only in part")
        if period_ratio is None and not problems and key not in measures:
            problems.append("no recorded series for this SLO in Prometheus (rules not loaded yet?)")
        burn_history = {m[len("burn "):]: v.get(key, m) for m in sorted(measures.get(key, ()))
                        if m.startswith("burn ")}
        history: tuple[tuple[float, float, float], ...] = ()
        errs, tots = v.get(key, "error history"), v.get(key, "request history")
        if errs and tots:
            tot_at = dict(tots)
            history = tuple((t, e, tot_at[t]) for t, e in errs if t in tot_at and math.isfinite(e)
                            and math.isfinite(tot_at[t]))
        result[key] = SLOData(window_ratios=window_ratios, window_rates=window_rates, period_ratio=period_ratio,
                              period_events=events,
                              recorded_objective=v.get(key, "objective"),
                              burn_history={w: h for w, h in burn_history.items() if h},
                              rate_history=history, history_step=plan.chart_step, problems=tuple(problems))
    return result, out.warnings
