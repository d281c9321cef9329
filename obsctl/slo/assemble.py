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
from obsctl.slo.query_plan import MEASURE_EVENTS, MEASURE_OBJECTIVE, Query, QueryPlan, series_measure
from obsctl.slo.report import Key, Point, SLOData, slo_key


@dataclass(frozen=True)
class Answer:
    """One query's series (labels, samples) and any warnings Prometheus attached."""

    series: list[tuple[dict[str, str], list[Point]]]
    warnings: list[str] = field(default_factory=list)


class _Values:
    """Values per SLO key and measure; conflicting duplicates make the value unusable, never a pick."""

    def __init__(self) -> None:
        self.by_key: dict[Key, dict[str, Any]] = {}
        self.conflicts: dict[Key, set[str]] = {}

    def add(self, key: Key, sub: str, value: Any) -> None:
        mine = self.by_key.get(key)
        if mine is None:
            self.by_key[key] = {sub: value}
            return
        if sub in mine:
            old = mine[sub]
            if old != value and not _both_nan(old, value):
                self.conflicts.setdefault(key, set()).add(sub)
        mine[sub] = value

    def of(self, key: Key) -> dict[str, Any]:
        """The usable values of one SLO (conflicting measures left out)."""
        mine = self.by_key.get(key)
        if not mine:
            return {}
        bad = self.conflicts.get(key)
        return {m: x for m, x in mine.items() if m not in bad} if bad else mine


def _both_nan(a: Any, b: Any) -> bool:
    return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)


@dataclass
class _Collected:
    values: _Values = field(default_factory=_Values)
    partial: list[str] = field(default_factory=list)  # measures Prometheus answered only in part
    warnings: list[str] = field(default_factory=list)


_UNKNOWN = "?"  # a series name no measure reads


def _ingest(out: _Collected, query: Query, answer: Answer) -> None:
    if answer.warnings:
        # A partial answer may lack or skew any SLO's value: use none of it.
        out.partial.append(query.measure)
        out.warnings.append(f"Prometheus answered {query.expr!r} only in part ({'; '.join(answer.warnings)}); "
                            f"{query.measure} treated as missing")
        return
    add = out.values.add
    ns_label, svc_label, slo_label = conv.LABEL_NAMESPACE, conv.LABEL_SERVICE, conv.LABEL_SLO
    measures: dict[str, str] = {}  # series name -> measure: thousands of series share a handful of names
    for labels, samples in answer.series:
        ns, svc, slo = labels.get(ns_label), labels.get(svc_label), labels.get(slo_label)
        if not ns or not svc or not slo:
            continue
        key = (ns, svc, slo)
        if query.is_range:
            add(key, query.measure, tuple(samples))
            continue
        if query.by_series_name:
            name = labels.get("__name__", "")
            measure = measures.get(name)
            if measure is None:
                measure = measures[name] = series_measure(labels) or _UNKNOWN
            if measure is not _UNKNOWN:
                add(key, measure, samples[0][1])
        else:
            add(key, query.measure, samples[0][1])


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
    result: dict[Key, SLOData] = {}
    for svc, slo in slos:
        key = slo_key(svc, slo)
        bad = v.conflicts.get(key)
        problems = [f"conflicting series for {', '.join(sorted(bad))}: more than one value for this SLO"] if bad else []
        mine = v.of(key)
        windows = _window_names(tables.get(slo.period_days))
        kind = "s:" if slo.budgeting is BudgetingMethod.TIMESLICES else "w:"
        window_ratios = {w: float(x) for w in windows if (x := mine.get(kind + w)) is not None}
        window_rates = {w: float(x) for w in windows if (x := mine.get("t:" + w)) is not None}
        period_ratio: float | None
        events: float | None = None
        if period.is_calendar:
            period_ratio = None
            if slo.budgeting is BudgetingMethod.TIMESLICES:
                period_ratio = mine.get("bad slices")  # the share of the range spent in bad slices
                if period_ratio is None and "bad slices" in out.partial:
                    problems.append("Prometheus answered only in part")
            else:
                err, tot = mine.get("errors"), mine.get("requests")
                if err is not None and tot is not None:
                    period_ratio = err / tot if tot > 0 else math.nan
                    events = tot * plan.events_per_sample
                elif any(m in out.partial for m in ("errors", "requests")):
                    problems.append("Prometheus answered only in part")
        else:
            period_ratio = mine.get(kind + "period")
            if slo.budgeting is BudgetingMethod.OCCURRENCES:
                events = mine.get(MEASURE_EVENTS)
            if "error ratios" in out.partial:
                problems.append("Prometheus answered only in part")
        if period_ratio is None and not problems and key not in v.by_key:
            problems.append("no recorded series for this SLO in Prometheus (rules not loaded yet?)")
        burn_history = {m[len("burn "):]: mine[m] for m in sorted(mine) if m.startswith("burn ")}
        history: tuple[tuple[float, float, float], ...] = ()
        errs, tots = mine.get("error history"), mine.get("request history")
        if errs and tots:
            tot_at = dict(tots)
            history = tuple((t, e, tot_at[t]) for t, e in errs if t in tot_at and math.isfinite(e)
                            and math.isfinite(tot_at[t]))
        result[key] = SLOData(window_ratios=window_ratios, window_rates=window_rates, period_ratio=period_ratio,
                              period_events=events,
                              recorded_objective=mine.get(MEASURE_OBJECTIVE),
                              burn_history={w: h for w, h in burn_history.items() if h},
                              rate_history=history, history_step=plan.chart_step, problems=tuple(problems))
    return result, out.warnings
