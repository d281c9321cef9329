"""The only I/O of SLO reports: a few vectorised queries to the Prometheus HTTP API.

Every measure is read for all SLOs at once (one instant query per measure, one per distinct
period length for event counts, one range query per chart series), so the number of queries
does not grow with the number of SLOs. A measure missing or ambiguous for one SLO leaves that
SLO without it ("no data"); Prometheus unreachable, slow or failing raises a clear error.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from obsctl.errors import PermanentError, TemporaryError
from obsctl.model import conventions as conv
from obsctl.model.durations import parse_duration
from obsctl.model.entities import SLO, BudgetingMethod, Catalog, Service
from obsctl.model.windows import WindowTable
from obsctl.slo.periods import PeriodSpec, parse_period
from obsctl.slo.report import Key, Point, Report, ReportFilter, SLOData, slo_key, slo_report

DEFAULT_TIMEOUT_S = 15.0
CHART_POINTS = 240
_TEMPORARY_ERROR_TYPES = {"timeout", "canceled", "unavailable", "internal"}

EVENTS_STEP_S = 3600.0  # rolling-period event counts sum the recorded 1h rates, one per hour


@dataclass(frozen=True)
class Answer:
    """One query's series (labels, samples) and any warnings Prometheus attached."""

    series: list[tuple[dict[str, str], list[Point]]]
    warnings: list[str] = field(default_factory=list)


class PrometheusAPI:
    """A minimal Prometheus HTTP API client that counts the queries it sends."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT_S, client: httpx.Client | None = None) -> None:
        if not url:
            raise PermanentError("no Prometheus URL given (--prometheus or OBSCTL_PROMETHEUS__URL)")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._client = client or httpx.Client(timeout=timeout)
        self._own_client = client is None
        self.queries = 0

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._own_client:
            self._client.close()

    def _post(self, path: str, form: Mapping[str, str], expr: str) -> dict[str, Any]:
        self.queries += 1
        where = f"Prometheus at {self.url}"
        try:
            resp = self._client.post(self.url + path, data=dict(form), timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise TemporaryError(f"{where} did not answer within {self.timeout:g}s (query {expr!r})") from exc
        except httpx.TransportError as exc:
            raise TemporaryError(f"{where} is unreachable: {exc}") from exc
        try:
            doc = resp.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            if resp.status_code >= 500 or resp.status_code == 429:
                raise TemporaryError(f"{where} answered HTTP {resp.status_code} to query {expr!r}",
                                     _retry_after(resp))
            raise PermanentError(f"{where} answered HTTP {resp.status_code} with a body that is not the "
                                 f"Prometheus API's JSON (wrong URL?): {resp.text[:200]!r}")
        if doc.get("status") != "success":
            msg = f"{where} rejected query {expr!r}: {doc.get('errorType', '')}: {doc.get('error', '')}"
            if resp.status_code >= 500 or resp.status_code == 429 or doc.get("errorType") in _TEMPORARY_ERROR_TYPES:
                raise TemporaryError(msg, _retry_after(resp))
            raise PermanentError(msg)
        data = doc.get("data")
        if not isinstance(data, dict):
            raise PermanentError(f"{where} answered query {expr!r} without a data object")
        data["warnings"] = [str(w) for w in doc.get("warnings") or []]
        return data

    def instant(self, expr: str, at: float) -> Answer:
        """An instant query evaluated at `at` (unix seconds); the result must be a vector."""
        data = self._post("/api/v1/query", {"query": expr, "time": _fmt_ts(at)}, expr)
        if data.get("resultType") != "vector":
            raise PermanentError(f"query {expr!r} returned a {data.get('resultType')}, expected a vector")
        series = []
        for item in data.get("result") or []:
            series.append((dict(item["metric"]), [_sample(item["value"])]))
        return Answer(series, data["warnings"])

    def range(self, expr: str, start: float, end: float, step: float) -> Answer:
        """A range query; the result must be a matrix."""
        data = self._post("/api/v1/query_range", {"query": expr, "start": _fmt_ts(start), "end": _fmt_ts(end),
                                                   "step": _fmt_ts(step)}, expr)
        if data.get("resultType") != "matrix":
            raise PermanentError(f"query {expr!r} returned a {data.get('resultType')}, expected a matrix")
        series = [(dict(item["metric"]), [_sample(v) for v in item.get("values") or []])
                  for item in data.get("result") or []]
        return Answer(series, data["warnings"])


def _retry_after(resp: httpx.Response) -> float | None:
    try:
        return float(resp.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _fmt_ts(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _sample(pair: Sequence[Any]) -> Point:
    return float(pair[0]), float(pair[1])  # float() reads "NaN", "+Inf" as Prometheus writes them


def _key(labels: Mapping[str, str]) -> Key | None:
    ns, svc, slo = labels.get(conv.LABEL_NAMESPACE), labels.get(conv.LABEL_SERVICE), labels.get(conv.LABEL_SLO)
    if not ns or not svc or not slo:
        return None
    return (ns, svc, slo)


class _Values:
    """Values per (SLO key, sub key); conflicting duplicates make the value unusable, never a pick."""

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
    problems: dict[Key, list[str]] = field(default_factory=dict)
    partial: list[str] = field(default_factory=list)  # measures Prometheus answered only in part
    warnings: list[str] = field(default_factory=list)


class _Reader:
    def __init__(self, api: PrometheusAPI, out: _Collected) -> None:
        self.api = api
        self.out = out

    def _accept(self, answer: Answer, measure: str, expr: str) -> bool:
        if answer.warnings:
            # A partial answer may lack or skew any SLO's value: use none of it.
            self.out.partial.append(measure)
            self.out.warnings.append(f"Prometheus answered {expr!r} only in part ({'; '.join(answer.warnings)}); "
                                     f"{measure} treated as missing")
            return False
        return True

    def instant(self, measure: str, expr: str, at: float, sub: Any = None) -> None:
        """Store each series' value under (key, measure or sub(labels))."""
        answer = self.api.instant(expr, at)
        if not self._accept(answer, measure, expr):
            return
        for labels, samples in answer.series:
            key = _key(labels)
            if key is None:
                continue
            name = sub(labels) if sub else measure
            if name is not None:
                self.out.values.add(key, name, samples[0][1])

    def range(self, measure: str, expr: str, start: float, end: float, step: float) -> None:
        answer = self.api.range(expr, start, end, step)
        if not self._accept(answer, measure, expr):
            return
        for labels, samples in answer.series:
            key = _key(labels)
            if key is not None:
                self.out.values.add(key, measure, tuple(samples))


def _chart_step(range_s: float) -> float:
    base = parse_duration(conv.SHORT_RESOLUTION)
    return max(base, math.ceil(range_s / CHART_POINTS / base) * base)


def _ratio_regex(with_period: bool) -> str:
    names = [re.escape(conv.series(conv.SERIES_ERROR_RATIO, "")) + ".+",
             re.escape(conv.series(conv.SERIES_BAD_SLICES, "")) + ".+",
             re.escape(conv.series(conv.SERIES_TOTAL, "")) + ".+"]
    if with_period:
        names += [re.escape(conv.SERIES_PERIOD_ERROR_RATIO), re.escape(conv.SERIES_PERIOD_BAD_SLICES)]
    return "|".join(names)


def collect(api: PrometheusAPI, slos: Sequence[tuple[Service, SLO]], tables: Mapping[int, WindowTable],
            period: PeriodSpec, now: float, *, charts: bool = False) -> tuple[dict[Key, SLOData], list[str]]:
    """Read every measure the report needs for `slos`, with a fixed number of vectorised queries."""
    out = _Collected()
    rd = _Reader(api, out)
    ratio_prefix = conv.series(conv.SERIES_ERROR_RATIO, "")
    errors_5m = conv.series(conv.SERIES_ERRORS, conv.SHORT_RESOLUTION)
    total_5m = conv.series(conv.SERIES_TOTAL, conv.SHORT_RESOLUTION)
    in_progress = period.in_progress(now)
    read_end = period.read_end(now)

    slices_prefix = conv.series(conv.SERIES_BAD_SLICES, "")
    total_prefix = conv.series(conv.SERIES_TOTAL, "")

    def window_of(labels: Mapping[str, str]) -> str | None:
        # error ratios (w:) and, for timeslices budgeting, bad-slice ratios (s:) per window
        name = labels.get("__name__", "")
        if name == conv.SERIES_PERIOD_ERROR_RATIO:
            return "w:period"
        if name == conv.SERIES_PERIOD_BAD_SLICES:
            return "s:period"
        if name.startswith(ratio_prefix):
            return "w:" + name[len(ratio_prefix):]
        if name.startswith(slices_prefix):
            return "s:" + name[len(slices_prefix):]
        if name.startswith(total_prefix):
            return "t:" + name[len(total_prefix):]  # event rates, for the minimum-events guard
        return None

    if in_progress:
        # one query for every window's ratio (and, for rolling periods, the period's) of every SLO
        rd.instant("error ratios", f'{{__name__=~"{_ratio_regex(not period.is_calendar)}"}}', now, sub=window_of)
    rd.instant("objective", conv.SERIES_OBJECTIVE, now)

    # Events over a range: a subquery at the short resolution tiles the range with the recorded
    # 5m rates (each covers the 5m before it), so sum x 300 s is the count of events, exact and
    # traffic-weighted, and a series that exists for part of the range only counts that part.
    # Ranges are 1s short of the period: Prometheus 2.x selects both ends, and the step at the
    # period's start covers the 5m before it.
    res = f"{conv.SHORT_RESOLUTION}"
    res_s = parse_duration(res)
    events_step: dict[int, float] = {}
    if period.is_calendar:
        range_s = max(0, math.floor(read_end - float(period.start or 0.0)))
        if range_s >= res_s:
            at = _fmt_ts(read_end)
            rd.instant("errors", f"sum_over_time({errors_5m}[{range_s - 1}s:{res}] @ {at})", read_end)
            rd.instant("requests", f"sum_over_time({total_5m}[{range_s - 1}s:{res}] @ {at})", read_end)
            if any(slo.budgeting is BudgetingMethod.TIMESLICES for _, slo in slos):
                rd.instant("bad slices", f"avg_over_time({conv.SERIES_SLICE_BAD}[{range_s}s] @ {at})", read_end)
    else:
        # Rolling periods count events from the recorded 1h rates, stepped by 1h: twelve times fewer
        # points than the 5m rates (a 10,000-SLO report read 86 M points that way), and a series that
        # exists for part of the period still counts only that part. Each 1h rate extrapolates over
        # the one scrape interval its window starts after, so a count can be off by a small fraction
        # of that hour's traffic; the period ratio and budget come from the recorded period series.
        for days in sorted({slo.period_days for _, slo in slos if slo.budgeting is BudgetingMethod.OCCURRENCES}):
            table = tables.get(days)
            step_s = EVENTS_STEP_S if table and EVENTS_STEP_S in table.windows_s else res_s
            series = conv.series(conv.SERIES_TOTAL, conv.window_name(step_s))
            events_step[days] = step_s
            rd.instant(f"requests {days}d", f"sum_over_time({series}[{days * 86400 - 1}s:{conv.window_name(step_s)}])",
                       now)

    chart_start = 0.0
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
                rd.range(f"burn {w}", f"max_over_time({conv.series(conv.SERIES_ERROR_RATIO, w)}[{_fmt_ts(step)}s])",
                         first, read_end, step)
            rd.range("error history", f"avg_over_time({errors_5m}[{_fmt_ts(step)}s])", first, read_end, step)
            rd.range("request history", f"avg_over_time({total_5m}[{_fmt_ts(step)}s])", first, read_end, step)

    result: dict[Key, SLOData] = {}
    v = out.values
    seen = {k for k, _ in v.values}
    measures: dict[Key, set[str]] = {}
    for k, m in v.values:
        measures.setdefault(k, set()).add(m)
    for svc, slo in slos:
        key = slo_key(svc, slo)
        problems = [f"conflicting series for {', '.join(sorted(m))}: more than one value for this SLO"
                    for m in [out.values.conflicts.get(key, set())] if m]
        table = tables.get(slo.period_days)
        windows = {conv.window_name(s) for s in table.windows_s} if table else set()
        kind = "s:" if slo.budgeting is BudgetingMethod.TIMESLICES else "w:"
        window_ratios = {w: float(v.get(key, kind + w)) for w in windows if v.get(key, kind + w) is not None}
        window_rates = {w: float(v.get(key, "t:" + w)) for w in windows if v.get(key, "t:" + w) is not None}
        period_ratio: float | None
        events: float | None
        if period.is_calendar:
            period_ratio, events = None, None
            if slo.budgeting is BudgetingMethod.TIMESLICES:
                period_ratio = v.get(key, "bad slices")  # the share of the range spent in bad slices
                if period_ratio is None and "bad slices" in out.partial:
                    problems.append("Prometheus answered only in part")
            else:
                err, tot = v.get(key, "errors"), v.get(key, "requests")
                if err is not None and tot is not None:
                    period_ratio = err / tot if tot > 0 else math.nan
                    events = tot * res_s
                elif any(m in out.partial for m in ("errors", "requests")):
                    problems.append("Prometheus answered only in part")
        else:
            period_ratio = v.get(key, kind + "period")
            tot = v.get(key, f"requests {slo.period_days}d")
            events = None if tot is None else tot * events_step.get(slo.period_days, res_s)
            if "error ratios" in out.partial:
                problems.append("Prometheus answered only in part")
        if period_ratio is None and not problems and key not in seen:
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
                              rate_history=history, history_step=step, problems=tuple(problems))
    return result, out.warnings


class HasWindows(Protocol):
    """Anything with the window tables by period (spec.templates.Templates)."""

    @property
    def windows(self) -> Mapping[int, WindowTable]:
        """Window tables keyed by period days."""
        ...


def selected_slos(catalog: Catalog, filters: ReportFilter | None) -> list[tuple[Service, SLO]]:
    """The (service, SLO) pairs the filter keeps, in catalog order."""
    flt = filters or ReportFilter()
    return [(svc, slo) for svc in catalog.services for slo in svc.slos if flt.matches(svc, slo)]


def build_report(  # noqa: PLR0917 - the service calls it positionally
        catalog: Catalog, templates: HasWindows, prometheus_url: str,
                 filters: ReportFilter | None = None, period: PeriodSpec | str = "rolling",
                 now: float | None = None, *, charts: bool = False, timeout: float = DEFAULT_TIMEOUT_S,
                 client: httpx.Client | None = None) -> Report:
    """Query Prometheus and build the report for the catalog's SLOs (the CLI's and the service's entry point).

    Raises TemporaryError when Prometheus is unreachable, slow or failing, PermanentError when it
    rejects a query, ValueError for a bad period text.
    """
    now = time.time() if now is None else now
    spec = parse_period(period, now) if isinstance(period, str) else period
    slos = selected_slos(catalog, filters)
    api = PrometheusAPI(prometheus_url, timeout=timeout, client=client)
    try:
        data, warnings = collect(api, slos, templates.windows, spec, now, charts=charts)
    finally:
        api.close()
    reports = [slo_report(svc, slo, data[slo_key(svc, slo)], team=catalog.team(svc.team),
                          table=templates.windows.get(slo.period_days), period=spec, now=now) for svc, slo in slos]
    return Report.build(now, spec, api.url, reports, warnings=warnings, queries=api.queries)
