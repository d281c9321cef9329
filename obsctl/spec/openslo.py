"""OpenSLO (openslo/v1 and openslo/v1alpha) as an import format: Service, SLI, SLO, AlertPolicy,
AlertCondition (AlertNotificationTarget and DataSource are read and reported as not honoured).

Meaning kept:
- SLIs: `ratioMetric` (good or bad over total; `counter: true` queries written without a window,
  as in the OpenSLO examples, are rated over each window; `raw` ratios with `rawType`), and
  `thresholdMetric` (a gauge compared with the objective's `op`/`value`: the share of minutes it
  misses is the error ratio).
- Time windows: rolling (`7d`, `28d`, `30d`, `1w`, `4w`, `1M`=30d, `1Q`=90d) and calendar
  (`isRolling: false`); a calendar window is alerted on like the rolling window of its length, and
  `validate` says so, because the budget of a rolling window does not reset on the 1st.
- Budgeting: Occurrences, Timeslices (with `timeSliceTarget`/`timeSliceWindow`), RatioTimeslices.
- Alerting: every burn-rate `AlertCondition` becomes exactly the tier it describes: its
  `severity` decides page or ticket (only a page-like severity pages; `ticket` never does) and is
  kept as the alert's `severity` label, its `threshold` and `lookbackWindow` select the matching row
  of the window table, or a custom tier of its own when no row matches.

Each SLO's problems skip that SLO only; errors in an SLI referenced by `indicatorRef` point at the
SLI document's own lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import promql_parser

from obsctl.model.durations import format_duration, parse_duration
from obsctl.model.entities import SLO, AlertPolicy, BudgetingMethod, EventsSLI
from obsctl.model.windows import AlertTier
from obsctl.spec.fields import FieldPath, Reader, dotted
from obsctl.spec.slos import (
    SCOPE_SLO,
    WINDOW_PLACEHOLDER,
    LabelSites,
    cardinality_note,
    check_labels,
    check_name,
    check_objective,
    check_query,
    check_slo,
    label_sites,
    normalize_window,
    query_grouping,
)
from obsctl.spec.templates import Templates

API_VERSIONS = {"openslo/v1", "openslo/v1alpha"}
KINDS = {"Service", "SLI", "SLO", "AlertPolicy", "AlertCondition", "AlertNotificationTarget", "DataSource"}
PAGE_SEVERITIES = {"page", "critical", "high", "urgent", "emergency", "fatal", "p1", "p2", "sev1", "sev2",
                   "sev-1", "sev-2", "error"}
TICKET_SEVERITIES = {"ticket", "warning", "warn", "low", "medium", "info", "minor", "p3", "p4", "p5", "sev3",
                     "sev4", "sev-3", "sev-4"}
# Calendar units: duration text -> days of the window table that alerts on it.
CALENDAR_DAYS = {"w": 7, "M": 30, "Q": 90, "Y": 365}
THRESHOLD_SLICE = "1m"  # a threshold SLI's gauge is judged once a minute
_OPS = {"lt": ">=", "lte": ">", "gt": "<=", "gte": "<"}  # objective op -> the comparison that marks a miss
_AGG_OF_SELECTOR = re.compile(
    r"^\s*(?P<head>(?:sum|count|min|max|avg)\s*(?:(?:by|without)\s*\([^()]*\)\s*)?)\((?P<inner>.*)\)"
    r"(?P<tail>\s*(?:(?:by|without)\s*\([^()]*\))?)\s*$", re.DOTALL)


@dataclass
class OpenSloDoc:
    """One OpenSLO object with the reader that located it."""

    kind: str
    name: str
    data: dict[str, Any]
    reader: Reader


@dataclass
class OpenSloSet:
    """All OpenSLO objects of a catalog, by kind and name."""

    objects: dict[tuple[str, str], OpenSloDoc] = field(default_factory=dict)

    def add(self, doc: OpenSloDoc) -> None:
        """Register an object; a duplicate is reported."""
        key = (doc.kind, doc.name)
        if key in self.objects:
            doc.reader.problem(("metadata", "name"), f"duplicate OpenSLO {doc.kind} {doc.name!r}")
            return
        self.objects[key] = doc

    def get(self, kind: str, name: str) -> OpenSloDoc | None:
        """Look an object up."""
        return self.objects.get((kind, name))


# -- queries ---------------------------------------------------------------------------------------


def windowed(r: Reader, path: FieldPath, query: str, counter: bool | None) -> str | None:
    """A query with the window placeholder: as written, or rated/averaged over each window.

    A counter written without a window (`sum(http_requests_total{...})`, the OpenSLO examples' style)
    is rated inside the aggregation, `sum(rate(http_requests_total{...}[{{window}}]))`, which is what
    its author means (a rate of the sum would read every counter reset as a drop). A gauge is
    averaged over the window.
    """
    query = normalize_window(query.strip())
    if WINDOW_PLACEHOLDER in query:
        return check_query(r, path, query)
    try:
        node = promql_parser.parse(query)
    except ValueError as exc:
        r.problem(path, f"query is not valid PromQL: {exc}")
        return None
    if counter is None:  # a threshold gauge, read as is
        return query
    if not counter:
        return check_query(r, path, f"avg_over_time(({query})[{WINDOW_PLACEHOLDER}:{THRESHOLD_SLICE}])")
    if isinstance(node, promql_parser.VectorSelector):
        return check_query(r, path, f"rate({query}[{WINDOW_PLACEHOLDER}])")
    m = _AGG_OF_SELECTOR.match(query)
    if m:
        try:
            inner = promql_parser.parse(m.group("inner"))
        except ValueError:
            inner = None
        if isinstance(inner, promql_parser.VectorSelector):
            rated = f"{m.group('head')}(rate({m.group('inner')}[{WINDOW_PLACEHOLDER}])){m.group('tail')}"
            return check_query(r, path, rated)
    r.problem(path, "a counter query without the window placeholder must be a selector or one aggregation of a "
                    "selector (sum(x{...})); otherwise write the rate with {{window}} yourself")
    return None


def _metric_query(r: Reader, path: FieldPath, m: Any, counter: bool | None) -> str | None:
    """A query from v1 `metricSource.spec.query` or v1alpha `{source, queryType, query}`."""
    body = r.mapping(m, path)
    if "metricSource" in body:
        src_path = (*path, "metricSource")
        src = r.mapping(body["metricSource"], src_path, {"metricSourceRef", "type", "spec"})
        kind = r.text(src, "type", src_path)
        if kind and kind.lower() not in ("prometheus", "thanos", "mimir", "cortex", "victoriametrics"):
            r.problem((*src_path, "type"), f"metric source type {kind!r} is not PromQL; obsctl renders "
                                           "Prometheus rules")
            return None
        spec = r.mapping(src.get("spec"), (*src_path, "spec"))
        key = "query" if "query" in spec else ("promql" if "promql" in spec else "query")
        q = r.text(spec, key, (*src_path, "spec"), required=True)
        return windowed(r, (*src_path, "spec", key), q, counter) if q else None
    q = r.text(body, "query", path, required=True)
    return windowed(r, (*path, "query"), q, counter) if q else None


@dataclass
class _Indicator:
    """An SLI's rendered form, before the objective (a threshold SLI needs its op and value)."""

    sli: EventsSLI | None = None
    threshold_query: str | None = None
    threshold_path: FieldPath = ()
    reader: Reader | None = None
    groups: tuple[str, ...] = ()


def _ratio(r: Reader, path: FieldPath, raw: Any, v1alpha: bool) -> _Indicator:
    m = r.mapping(raw, path, {"counter", "good", "bad", "total", "raw", "rawType", "incremental"})
    counter = r.flag(m, "counter", path, True)
    if "raw" in m:
        q = _metric_query(r, (*path, "raw"), m["raw"], False)
        kind = r.text(m, "rawType", path, default="success").lower()
        if kind not in ("success", "failure"):
            r.problem((*path, "rawType"), f"must be success or failure, not {kind!r}")
            return _Indicator()
        if q is None:
            return _Indicator()
        r.warn((*path, "raw"), "a raw ratio has no event counts: its long windows average the ratio over time "
                               "instead of weighting by traffic")
        ratio = q if kind == "failure" else f"1 - ({q})"
        groups = query_grouping(r, [((*path, "raw"), ratio)])
        return _Indicator(EventsSLI(total_query="", error_ratio_query=ratio), groups=groups or ())
    if "total" not in m:
        r.problem((*path, "total"), "is required")
    total = _metric_query(r, (*path, "total"), m["total"], counter) if "total" in m else None
    good = _metric_query(r, (*path, "good"), m["good"], counter) if "good" in m else None
    bad = _metric_query(r, (*path, "bad"), m["bad"], counter) if "bad" in m else None
    if "good" in m and "bad" in m:
        r.problem(path, "give good or bad, not both")
        return _Indicator()
    if "good" not in m and "bad" not in m:
        r.problem(path, "needs good or bad beside total")
    if total is None or (good is None and bad is None):
        return _Indicator()
    named = [((*path, "total"), total)] + ([((*path, "good"), good)] if good else [((*path, "bad"), bad)]
                                           if bad else [])
    groups = query_grouping(r, named)
    if groups is None:
        return _Indicator()
    return _Indicator(EventsSLI(total_query=total, good_query=good, error_query=bad), groups=groups)


def _indicator(r: Reader, path: FieldPath, raw: Any, v1alpha: bool) -> _Indicator:
    """An SLI object's spec (`path` is the spec of an inline or referenced SLI)."""
    spec = r.mapping(raw, path, {"description", "ratioMetric", "thresholdMetric", "ratioMetrics"})
    if "ratioMetric" in spec:
        return _ratio(r, (*path, "ratioMetric"), spec["ratioMetric"], v1alpha)
    if "thresholdMetric" in spec:
        tpath = (*path, "thresholdMetric")
        q = _metric_query(r, tpath, spec["thresholdMetric"], None)
        if q is None:
            return _Indicator()
        return _Indicator(threshold_query=q, threshold_path=tpath, reader=r)
    r.problem(path, "needs ratioMetric or thresholdMetric")
    return _Indicator()


def _threshold_sli(r: Reader, path: FieldPath, ind: _Indicator, o: dict[str, Any]) -> EventsSLI | None:
    """A threshold SLI: the share of minutes in which the gauge misses the objective's `op value`."""
    op = r.text(o, "op", path, required=True).lower()
    value = r.number(o, "value", path, required=True)
    if op and op not in _OPS:
        r.problem((*path, "op"), f"must be one of {', '.join(_OPS)}, not {op!r}")
        return None
    if not op or value is None or ind.threshold_query is None:
        return None
    q = ind.threshold_query
    if WINDOW_PLACEHOLDER in q:
        (ind.reader or r).problem(ind.threshold_path, "a threshold metric is a gauge read as is: leave out {{window}}")
        return None
    miss = f"({q}) {_OPS[op]} bool {value:g}"
    ratio = f"avg_over_time(({miss})[{WINDOW_PLACEHOLDER}:{THRESHOLD_SLICE}])"
    return EventsSLI(total_query="", error_ratio_query=ratio)


# -- time windows and budgeting --------------------------------------------------------------------


def _period(r: Reader, spec: dict[str, Any], templates: Templates) -> int | None:
    """Days of the window table the SLO alerts against (a calendar window: its length)."""
    if "timeWindow" in spec:  # v1
        windows = r.seq(spec["timeWindow"], ("spec", "timeWindow"))
        if len(windows) > 1:
            r.warn(("spec", "timeWindow", 1), "only the first time window is used")
        wp: FieldPath = ("spec", "timeWindow", 0)
        w = r.mapping(windows[0] if windows else {}, wp, {"duration", "isRolling", "calendar"})
        text = r.text(w, "duration", wp, required=True).strip()
        rolling = r.flag(w, "isRolling", wp, True)
        cal = r.mapping(w.get("calendar"), (*wp, "calendar"), {"startTime", "timeZone"})
        return _days(r, (*wp, "duration"), text, rolling=rolling, cal=cal, templates=templates)
    if "timeWindows" in spec:  # v1alpha
        windows = r.seq(spec["timeWindows"], ("spec", "timeWindows"))
        wp = ("spec", "timeWindows", 0)
        w = r.mapping(windows[0] if windows else {}, wp, {"count", "unit", "isRolling", "calendar", "period"})
        count = r.number(w, "count", wp, required=True)
        unit = r.text(w, "unit", wp, default="Day")
        short = {"day": "d", "week": "w", "month": "M", "quarter": "Q", "year": "Y"}.get(unit.lower())
        if short is None or count is None:
            r.problem((*wp, "unit"), f"unit {unit!r} must be Day, Week, Month, Quarter or Year")
            return None
        rolling = r.flag(w, "isRolling", wp, True)
        cal = r.mapping(w.get("calendar"), (*wp, "calendar"), {"startTime", "timeZone"})
        return _days(r, wp, f"{int(count)}{short}", rolling=rolling, cal=cal, templates=templates)
    return templates.default_period_days


def _days(r: Reader, path: FieldPath, text: str, *, rolling: bool, cal: dict[str, Any],
          templates: Templates) -> int | None:
    m = re.fullmatch(r"(\d+)\s*([dwMQY])", text)
    if not m:
        r.problem(path, f"time window {text!r} not understood; use e.g. 28d, 4w, 1M, 1Q")
        return None
    n, unit = int(m.group(1)), m.group(2)
    days = n if unit == "d" else n * CALENDAR_DAYS[unit]
    if days not in templates.windows:
        known = ", ".join(f"{d}d" for d in sorted(templates.windows))
        r.problem(path, f"time window {text} ({days}d) has no alert window table; known: {known}")
        return None
    if unit in "MQY" and rolling:
        r.warn(path, f"a rolling {text} is read as {days}d")
    if not rolling:
        tz = cal.get("timeZone", "UTC")
        r.warn(path, f"calendar window {text} (starting {cal.get('startTime', 'at the unit boundary')}, {tz}): "
                     f"alerts burn against {days}d and reports show a rolling {days}d budget; obsctl does not "
                     "reset the budget at each calendar boundary")
    return days


def _budgeting(r: Reader, spec: dict[str, Any]) -> BudgetingMethod:
    text = r.text(spec, "budgetingMethod", ("spec",), default="Occurrences")
    low = text.lower()
    if low == "occurrences":
        return BudgetingMethod.OCCURRENCES
    if low in ("timeslices", "ratiotimeslices"):
        if low == "ratiotimeslices":
            r.warn(("spec", "budgetingMethod"), "RatioTimeslices is counted as Timeslices: a slice is good when "
                                                "its ratio meets timeSliceTarget")
        return BudgetingMethod.TIMESLICES
    r.problem(("spec", "budgetingMethod"), f"must be Occurrences, Timeslices or RatioTimeslices, not {text!r}")
    return BudgetingMethod.OCCURRENCES


# -- alerting --------------------------------------------------------------------------------------


@dataclass
class _Policy:
    tiers: list[str] = field(default_factory=list)
    custom: list[AlertTier] = field(default_factory=list)
    severity_text: dict[str, str] = field(default_factory=dict)  # page|ticket -> severity as written
    no_data: bool = False
    conditions: int = 0


def _severity_class(r: Reader, path: FieldPath, text: str) -> str | None:
    low = text.strip().lower()
    if low in PAGE_SEVERITIES:
        return "page"
    if low in TICKET_SEVERITIES or not low:
        return "ticket"
    r.warn(path, f"severity {text!r} is not a known paging severity ({', '.join(sorted(PAGE_SEVERITIES))}): it opens "
                 "a ticket; the alert keeps severity as written")
    return "ticket"


def _condition(r: Reader, path: FieldPath, c: dict[str, Any], *, table_period: int, templates: Templates,
               out: _Policy) -> None:
    cspec = r.mapping(c.get("spec"), (*path, "spec"), {"description", "severity", "condition"})
    severity = r.text(cspec, "severity", (*path, "spec"), required=True)
    klass = _severity_class(r, (*path, "spec", "severity"), severity)
    cp = (*path, "spec", "condition")
    cond = r.mapping(cspec.get("condition"), cp, {"kind", "op", "threshold", "lookbackWindow", "alertAfter"})
    kind = r.text(cond, "kind", cp, default="burnrate").lower()
    if kind != "burnrate":
        r.problem((*cp, "kind"), f"condition kind {kind!r} is not supported; obsctl alerts on burn rates")
        return
    op = r.text(cond, "op", cp, default="gte").lower()
    if op not in ("gt", "gte"):
        r.problem((*cp, "op"), f"a burn-rate condition fires above its threshold: op must be gt or gte, not {op!r}")
        return
    threshold = r.number(cond, "threshold", cp, required=True)
    lookback_text = r.text(cond, "lookbackWindow", cp)
    lookback = None
    if lookback_text:
        try:
            lookback = parse_duration(lookback_text)
        except ValueError as exc:
            r.problem((*cp, "lookbackWindow"), str(exc))
            return
    if cond.get("alertAfter") is not None:
        r.warn((*cp, "alertAfter"), "alertAfter is not honoured: the tier's short window confirms the burn instead")
    if threshold is None or klass is None:
        return
    if threshold <= 0:
        r.problem((*cp, "threshold"), "a burn-rate threshold must be above 0")
        return
    out.conditions += 1
    if severity:
        prev = out.severity_text.setdefault(klass, severity)
        if prev != severity:
            r.warn((*path, "spec", "severity"), f"another {klass} condition says severity {prev!r}: the alerts of this "
                                                f"SLO's {klass} tiers carry {prev!r}")
    table = templates.windows[table_period]
    match = [t for t in table.tiers if abs(t.burn_rate - threshold) < 0.05 and t.severity == klass
             and (lookback is None or lookback == t.long_window_s)]
    if match:
        out.tiers.extend(t.name for t in match[:1])
        return
    if lookback is None:
        r.problem((*cp, "lookbackWindow"), f"burn rate {threshold:g} ({klass}) matches no tier of the {table_period}d "
                                           "window table: give lookbackWindow to define a tier of its own")
        return
    short = max(60.0, round(lookback / 12 / 60) * 60)  # the SRE Workbook's short window: 1/12 of the long one
    period_s = table_period * 86400.0
    tier = AlertTier(f"{klass}-{threshold:g}x-{format_duration(lookback)}", klass, lookback, short,
                     threshold * lookback / period_s * 100.0, period_s)
    r.warn(cp, f"burn rate {threshold:g} over {format_duration(lookback)} matches no tier of the {table_period}d "
               "table: "
               f"it becomes its own {klass} tier {tier.name} (short window {format_duration(short)})")
    out.custom.append(tier)


def _alerting(r: Reader, spec: dict[str, Any], objects: OpenSloSet, templates: Templates,
              period: int) -> _Policy | None:
    refs = r.seq(spec.get("alertPolicies"), ("spec", "alertPolicies"))
    out = _Policy()
    if not refs:
        return None
    for i, ref in enumerate(refs):
        path: FieldPath = ("spec", "alertPolicies", i)
        policy: Any = ref
        pr, ppath = r, path
        if isinstance(ref, str) or (isinstance(ref, dict) and "alertPolicyRef" in ref):
            name = ref if isinstance(ref, str) else str(ref["alertPolicyRef"])
            found = objects.get("AlertPolicy", name)
            if found is None:
                r.problem(path, f"AlertPolicy {name!r} not found")
                continue
            policy, pr, ppath = found.data, found.reader, ()
        pspec = pr.mapping(pr.mapping(policy, ppath).get("spec"), (*ppath, "spec"),
                           {"description", "alertWhenNoData", "alertWhenResolved", "alertWhenBreaching",
                            "conditions", "notificationTargets"})
        sp = (*ppath, "spec")
        out.no_data = out.no_data or pr.flag(pspec, "alertWhenNoData", sp, False)
        if not pr.flag(pspec, "alertWhenBreaching", sp, True):
            pr.warn((*sp, "alertWhenBreaching"), "alertWhenBreaching: false leaves this policy without "
                                                 "burn-rate alerts")
            continue
        if "alertWhenResolved" in pspec:
            pr.warn((*sp, "alertWhenResolved"), "not honoured per policy: Alertmanager's receivers decide whether "
                                                "resolutions are sent")
        if pspec.get("notificationTargets"):
            pr.warn((*sp, "notificationTargets"), "not honoured: alerts route to the owning team's receivers "
                                                  "(obsctl's routing settings)")
        for j, cond in enumerate(pr.seq(pspec.get("conditions"), (*sp, "conditions"))):
            cpath: FieldPath = (*sp, "conditions", j)
            c = pr.mapping(cond, cpath)
            cr = pr
            if "conditionRef" in c:
                found = objects.get("AlertCondition", str(c["conditionRef"]))
                if found is None:
                    pr.problem((*cpath, "conditionRef"), f"AlertCondition {c['conditionRef']!r} not found")
                    continue
                c, cr, cpath = found.data, found.reader, ()
            with cr.contained() as outcome:
                _condition(cr, cpath, c, table_period=period, templates=templates, out=out)
            if outcome.failed and cr is not r:
                r.problem(path, "its alert condition has errors (reported at the condition)")
    return out


def _documentation_only(r: Reader, path: FieldPath, *, data_meta: dict[str, Any], spec: dict[str, Any]) -> None:
    """One warning naming the fields obsctl reads but does not show anywhere (display names)."""
    names = [dotted(p) for p, present in (
        (("metadata", "displayName"), "displayName" in data_meta),
        *((("spec", "objectives", i, "displayName"), isinstance(o, dict) and "displayName" in o)
          for i, o in enumerate(spec.get("objectives") or [])),
    ) if present]
    if names:
        r.warn(path, f"not shown by obsctl (dashboards and alerts use the SLO name): {', '.join(names)}")


# -- SLOs ------------------------------------------------------------------------------------------


def _owner(data: dict[str, Any], objects: OpenSloSet, service: str) -> str:
    meta: Any = data.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    labels: Any = meta.get("labels")
    labels = labels if isinstance(labels, dict) else {}
    owner = str(labels.get("owner") or labels.get("team") or "")
    svc = objects.get("Service", service) if service else None
    if not owner and svc is not None:
        sl = svc.data.get("metadata", {}).get("labels", {}) or {}
        owner = str(sl.get("owner") or sl.get("team") or "") if isinstance(sl, dict) else ""
    return owner


def _labels(r: Reader, meta: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """An OpenSLO object's metadata labels as Prometheus labels (a list value is joined with commas)."""
    raw = r.mapping(meta.get("labels"), ("metadata", "labels"))
    pairs = []
    for k, v in raw.items():
        text = str(v)
        if isinstance(v, list):
            r.warn(("metadata", "labels", k), "a list label value is written joined with commas")
            text = ",".join(str(x) for x in v)
        elif isinstance(v, dict) or v is None:
            r.problem(("metadata", "labels", k), "must be a string or a list of strings")
            continue
        pairs.append((str(k), text))
    return check_labels(r, ("metadata", "labels"), tuple(sorted(pairs)))


def build_slos(slo_doc: OpenSloDoc, objects: OpenSloSet, templates: Templates
               ) -> tuple[str, str, tuple[SLO, ...], dict[str, LabelSites]]:
    """Returns (service name, owner label, valid SLOs, where each SLO's labels were written) for one OpenSLO SLO
    object; a bad SLO is skipped alone."""
    r = slo_doc.reader
    data = slo_doc.data
    v1alpha = str(data.get("apiVersion")) == "openslo/v1alpha"
    meta = r.mapping(data.get("metadata"), ("metadata",), {"name", "displayName", "labels", "annotations",
                                                           "namespace"})
    spec = r.mapping(data.get("spec"), ("spec",), {"description", "service", "indicator", "indicatorRef",
                                                   "timeWindow", "timeWindows", "budgetingMethod", "objectives",
                                                   "alertPolicies"})
    service = r.text(spec, "service", ("spec",), required=True)
    owner = _owner(data, objects, service)
    out: list[SLO] = []
    with r.contained() as outcome:
        slos = _build(r, objects, templates, spec=spec, meta=meta, v1alpha=v1alpha)
    if not outcome.failed:
        out.extend(slos)
    # every objective's SLO carries the object's metadata labels
    sites = {slo.name: label_sites(SCOPE_SLO, ("metadata", "labels"), slo.labels) for slo in out}
    return service, owner, tuple(out), sites


def _build(r: Reader, objects: OpenSloSet, templates: Templates, *, spec: dict[str, Any],
           meta: dict[str, Any], v1alpha: bool) -> list[SLO]:
    labels = _labels(r, meta)
    period = _period(r, spec, templates)
    budgeting = _budgeting(r, spec)
    shared = _Indicator()
    if "indicatorRef" in spec:
        ref = str(spec["indicatorRef"])
        found = objects.get("SLI", ref)
        if found is None:
            r.problem(("spec", "indicatorRef"), f"SLI {ref!r} not found")
        else:
            # Problems of the SLI are reported in its own document, at its own lines.
            with found.reader.contained() as sli_outcome:
                shared = _indicator(found.reader, ("spec",), found.data.get("spec"), v1alpha)
            if sli_outcome.failed:
                r.problem(("spec", "indicatorRef"), f"SLI {ref!r} has errors (reported in {found.reader.doc.file})")
    elif "indicator" in spec:
        ind = r.mapping(spec["indicator"], ("spec", "indicator"))
        if "spec" in ind:  # v1: an inline SLI object
            r.mapping(ind, ("spec", "indicator"), {"metadata", "spec"})
            shared = _indicator(r, ("spec", "indicator", "spec"), ind.get("spec"), v1alpha)
        else:  # v1alpha: the SLI's fields directly
            shared = _indicator(r, ("spec", "indicator"), ind, v1alpha)
    objectives = r.seq(spec.get("objectives"), ("spec", "objectives"))
    if not objectives:
        r.problem(("spec", "objectives"), "needs at least one objective")
    policy = _alerting(r, spec, objects, templates, period) if period is not None else None
    if period is not None and policy is None:
        r.warn(("spec",), "no alertPolicies: this SLO gets recordings and dashboards but no page or ticket")
    base = str(meta.get("name", ""))
    _documentation_only(r, (), data_meta=meta, spec=spec)
    out: list[SLO] = []
    for i, obj in enumerate(objectives):
        p: FieldPath = ("spec", "objectives", i)
        with r.contained() as one:
            slo = _objective(r, p, obj, base if len(objectives) == 1 else f"{base}-{i}", shared=shared,
                             ctx=_Context(v1alpha, spec, period, budgeting, labels, policy, templates))
        if slo is not None and not one.failed:
            out.append(slo)
    if r.failed:
        return []
    return out


@dataclass(frozen=True)
class _Context:
    """What every objective of one SLO document shares."""

    v1alpha: bool
    spec: dict[str, Any]
    period: int | None
    budgeting: BudgetingMethod
    labels: tuple[tuple[str, str], ...]
    policy: _Policy | None
    templates: Templates


def _objective(r: Reader, p: FieldPath, obj: Any, name: str, *, shared: _Indicator, ctx: _Context) -> SLO | None:
    v1alpha, spec, period, budgeting = ctx.v1alpha, ctx.spec, ctx.period, ctx.budgeting
    labels, policy, templates = ctx.labels, ctx.policy, ctx.templates
    o = r.mapping(obj, p, {"displayName", "op", "value", "target", "targetPercent", "timeSliceTarget",
                           "timeSliceWindow", "ratioMetrics", "indicator", "indicatorRef", "compositeWeight"})
    ind = shared
    if "ratioMetrics" in o:  # v1alpha: the SLI is per objective
        ind = _ratio(r, (*p, "ratioMetrics"), o["ratioMetrics"], v1alpha)
    sli = ind.sli
    if ind.threshold_query is not None:
        sli = _threshold_sli(r, p, ind, o)
    elif "op" in o or "value" in o:
        r.warn(p, "op/value apply to threshold metrics only; this ratio SLI ignores them")
    if "compositeWeight" in o:
        r.warn((*p, "compositeWeight"), "composite SLOs are not supported: the weight is ignored")
    target = r.number(o, "target", p)
    percent = target * 100 if target is not None else r.number(o, "targetPercent", p)
    if percent is None:
        r.problem((*p, "target"), "is required")
    objective = check_objective(r, (*p, "target"), percent)
    check_name(r, ("metadata", "name"), name)
    slice_target = r.number(o, "timeSliceTarget", p)
    slice_window = o.get("timeSliceWindow")
    slice_s = 60.0
    if slice_window is not None:
        try:
            slice_s = parse_duration(str(slice_window))
        except ValueError as exc:
            r.problem((*p, "timeSliceWindow"), str(exc))
    if budgeting is BudgetingMethod.OCCURRENCES and (slice_target is not None or slice_window is not None):
        r.warn(p, "timeSliceTarget/timeSliceWindow apply to Timeslices budgeting only; ignored")
    if slice_target is not None and not 0 < slice_target <= 1:
        r.problem((*p, "timeSliceTarget"), "must be in (0, 1]")
    if r.failed or sli is None or objective is None or period is None:
        return None
    alerting = AlertPolicy(page=False, ticket=False, no_data=False)
    if policy is not None:
        sev = policy.severity_text
        alerting = AlertPolicy(tiers=tuple(policy.tiers), custom_tiers=tuple(policy.custom), no_data=policy.no_data,
                               page_labels=(("severity", sev["page"]),) if "page" in sev else (),
                               ticket_labels=(("severity", sev["ticket"]),) if "ticket" in sev else ())
    if ind.groups:
        r.warn((*p,), cardinality_note(ind.groups))
    desc = r.text(spec, "description", ("spec",))
    slo = SLO(name=name, objective=objective, sli=sli, period_days=period, budgeting=budgeting,
              timeslice_seconds=slice_s, timeslice_target=slice_target if slice_target else 0.95,
              description=desc, alerting=alerting, labels=labels, group_by=ind.groups)
    return slo if check_slo(r, p, slo, templates) else None
