"""Pyrra's `pyrra.dev/v1alpha1 ServiceLevelObjective` as an import format.

Pyrra cannot be built here; its semantics are reproduced from its documentation and API types
(tests/unit/test_pyrra_spec.py states each one):

- `spec.target` is a percent string, `spec.window` the period (a window table must exist for it);
- indicators: `ratio` (errors and total counters), `latency` (a `_bucket` selector with `le` and
  the `_count` total), `latencyNative` (a native histogram and a latency: `histogram_fraction`),
  `bool_gauge` (a 0/1 gauge: the share of samples at 0 is the error ratio); each with `grouping`,
  which becomes obsctl's `groupBy` (one burn rate and one alert per group);
- alerting: Pyrra's four multi-window alerts scaled from its 28-day windows (1h/5m at 14x and
  6h/30m at 7x with `severity: critical`, 1d/2h at 2x and 4d/6h at 1x with `severity: warning`) are
  obsctl tiers of their own, `critical` pages and `warning` opens a ticket; the alert is named
  `alerting.name` (Pyrra's default `ErrorBudgetBurn`); `burnrates: false` or `disabled: true` drop
  them; `absent` is obsctl's no-data alert; metadata labels prefixed `pyrra.dev/` reach every
  series and alert without the prefix, as Pyrra propagates them.
"""

from __future__ import annotations

from typing import Any

import promql_parser

from obsctl.model.durations import format_duration, parse_duration
from obsctl.model.entities import SLO, AlertPolicy, EventsSLI
from obsctl.model.windows import AlertTier
from obsctl.spec.fields import FieldPath, Reader
from obsctl.spec.slos import (
    SCOPE_SLO,
    LabelSites,
    cardinality_note,
    check_labels,
    check_name,
    check_objective,
    check_query,
    check_slo,
    label_sites,
)
from obsctl.spec.templates import Templates

API_VERSION = "pyrra.dev/v1alpha1"
KIND = "ServiceLevelObjective"
LABEL_PREFIX = "pyrra.dev/"
DEFAULT_ALERT_NAME = "ErrorBudgetBurn"
W = "{{window}}"
# Pyrra's multi-window alerts for a 28-day SLO: (severity, long, short, factor); other windows scale them.
PYRRA_WINDOWS_28D = (("critical", 3600.0, 300.0, 14.0), ("critical", 6 * 3600.0, 1800.0, 7.0),
                     ("warning", 86400.0, 2 * 3600.0, 2.0), ("warning", 4 * 86400.0, 6 * 3600.0, 1.0))
CLASS = {"critical": "page", "warning": "ticket"}


def is_pyrra(data: dict[str, Any]) -> bool:
    """Whether a document is a Pyrra ServiceLevelObjective."""
    return str(data.get("apiVersion", "")) == API_VERSION and str(data.get("kind", "")) == KIND


def pyrra_tiers(period_days: int) -> tuple[AlertTier, ...]:
    """Pyrra's four alerts for an SLO window, as obsctl tiers (windows rounded to the minute, as Pyrra does)."""
    scale = period_days / 28.0
    period_s = period_days * 86400.0
    out = []
    for severity, long_s, short_s, factor in PYRRA_WINDOWS_28D:
        long_w = max(60.0, round(long_s * scale / 60) * 60)
        short_w = max(60.0, round(short_s * scale / 60) * 60)
        klass = CLASS[severity]
        out.append(AlertTier(f"{klass}-{format_duration(long_w)}", klass, long_w, short_w,
                             factor * long_w / period_s * 100.0, period_s))
    return tuple(out)


def _selector(r: Reader, path: FieldPath, m: dict[str, Any], key: str) -> str | None:
    """A `{metric: <selector>}` field: the selector text, which must be a plain vector selector."""
    q = r.mapping(m.get(key), (*path, key), {"metric"})
    text = r.text(q, "metric", (*path, key), required=True).strip()
    if not text:
        return None
    try:
        node = promql_parser.parse(text)
    except ValueError as exc:
        r.problem((*path, key, "metric"), f"not valid PromQL: {exc}")
        return None
    if not isinstance(node, promql_parser.VectorSelector):
        r.problem((*path, key, "metric"), "must be a metric selector, like http_requests_total{job=\"api\"}")
        return None
    return text


def _grouping(r: Reader, path: FieldPath, m: dict[str, Any]) -> tuple[str, ...]:
    out = []
    for i, g in enumerate(r.seq(m.get("grouping"), (*path, "grouping"))):
        name = str(g)
        if not name.isidentifier():
            r.problem((*path, "grouping", i), f"{name!r} is not a label name")
            continue
        out.append(name)
    return tuple(out)


def _indicator(r: Reader, path: FieldPath, raw: Any) -> tuple[EventsSLI | None, tuple[str, ...]]:
    ind = r.mapping(raw, path, {"ratio", "latency", "latencyNative", "bool_gauge"})
    if len(ind) != 1:
        r.problem(path, "needs exactly one of ratio, latency, latencyNative, bool_gauge")
        return None, ()
    kind, body = next(iter(ind.items()))
    p = (*path, kind)
    if kind == "ratio":
        m = r.mapping(body, p, {"errors", "total", "grouping"})
        errors, total = _selector(r, p, m, "errors"), _selector(r, p, m, "total")
        sli = None
        if errors and total:
            sli = EventsSLI(total_query=f"rate({total}[{W}])", error_query=f"rate({errors}[{W}])")
        return sli, _grouping(r, p, m)
    if kind == "latency":
        m = r.mapping(body, p, {"success", "total", "grouping"})
        success, total = _selector(r, p, m, "success"), _selector(r, p, m, "total")
        node: Any = promql_parser.parse(success) if success else None
        if success and "le" not in {x.name for x in node.matchers.matchers}:
            r.problem((*p, "success", "metric"), "needs an le matcher: the histogram bucket of the latency target")
            success = None
        sli = None
        if success and total:
            sli = EventsSLI(total_query=f"rate({total}[{W}])", good_query=f"rate({success}[{W}])")
        return sli, _grouping(r, p, m)
    if kind == "latencyNative":
        m = r.mapping(body, p, {"total", "latency", "grouping"})
        total = _selector(r, p, m, "total")
        text = r.text(m, "latency", p, required=True)
        seconds = None
        if text:
            try:
                seconds = parse_duration(text) if not text.replace(".", "", 1).isdigit() else float(text)
            except ValueError as exc:
                r.problem((*p, "latency"), str(exc))
        sli = None
        if total and seconds is not None:
            hist = f"rate({total}[{W}])"
            sli = EventsSLI(total_query=f"histogram_count({hist})",
                            good_query=f"histogram_fraction(0, {seconds:g}, {hist}) * histogram_count({hist})")
        return sli, _grouping(r, p, m)
    m = r.mapping(body, p, {"metric", "grouping"})
    gauge = _selector(r, path, {kind: {"metric": m.get("metric")}}, kind)
    sli = None
    if gauge:
        # Each sample is one event: a sample at 1 succeeded, a sample at 0 failed.
        sli = EventsSLI(total_query=f"count_over_time({gauge}[{W}])", good_query=f"sum_over_time({gauge}[{W}])")
    return sli, _grouping(r, p, m)


def parse_pyrra(r: Reader, data: dict[str, Any], templates: Templates
                ) -> tuple[str, str, tuple[SLO, ...], dict[str, LabelSites]]:
    """Returns (service name, owner, SLOs: none when the document is bad, where the SLO's labels were written)."""
    r.mapping(data, (), {"apiVersion", "kind", "metadata", "spec", "status"})
    meta = r.mapping(data.get("metadata"), ("metadata",))
    name = r.text(meta, "name", ("metadata",), required=True)
    raw_labels = r.string_map(meta.get("labels"), ("metadata", "labels"))
    annotations = dict(r.string_map(meta.get("annotations"), ("metadata", "annotations")))
    propagated = tuple((k[len(LABEL_PREFIX):], v) for k, v in raw_labels if k.startswith(LABEL_PREFIX))
    labels = check_labels(r, ("metadata", "labels"), propagated)
    plain = dict(raw_labels)
    service = plain.get(LABEL_PREFIX + "service") or plain.get("service") or name
    owner = plain.get(LABEL_PREFIX + "team") or plain.get("team") or plain.get("owner") or ""
    spec = r.mapping(data.get("spec"), ("spec",), {"description", "target", "window", "indicator", "alerting",
                                                   "partial_response_strategy"})
    if "partial_response_strategy" in spec:
        r.warn(("spec", "partial_response_strategy"), "not honoured: it applies to Thanos Ruler only")
    if name:
        check_name(r, ("metadata", "name"), name)
    target = r.number(spec, "target", ("spec",), required=True)
    if target is not None and 0 < target < 1:
        r.warn(("spec", "target"), f"target is a percent: {target:g} means {target:g} %, not {target * 100:g} %")
    objective = check_objective(r, ("spec", "target"), target)
    window = r.text(spec, "window", ("spec",), required=True)
    period = None
    if window:
        try:
            seconds = parse_duration(window)
        except ValueError as exc:
            r.problem(("spec", "window"), str(exc))
        else:
            days = seconds / 86400.0
            if days.is_integer() and int(days) in templates.windows:
                period = int(days)
            else:
                known = ", ".join(f"{d}d" for d in sorted(templates.windows))
                r.problem(("spec", "window"), f"window {window} has no window table; known: {known}")
    sli, group_by = _indicator(r, ("spec", "indicator"), spec.get("indicator"))
    if sli is not None:
        for key in ("total_query", "error_query", "good_query"):
            q = getattr(sli, key)
            if q is not None and not check_query(r, ("spec", "indicator"), q):
                sli = None
                break
    al = r.mapping(spec.get("alerting"), ("spec", "alerting"), {"disabled", "burnrates", "absent", "name",
                                                                "absentName"})
    ap: FieldPath = ("spec", "alerting")
    disabled = r.flag(al, "disabled", ap, False)
    burnrates = r.flag(al, "burnrates", ap, True) and not disabled
    absent = r.flag(al, "absent", ap, True) and not disabled
    if absent and not burnrates:
        r.warn(ap, "Pyrra keeps its absent alert when burn-rate alerts are off; obsctl renders no alert for an SLO "
                   "whose alerting is off (no burn-rate tier), so no no-data alert either")
    if al.get("absentName"):
        r.warn((*ap, "absentName"), f"the no-data alert is named SLONoData, not {al['absentName']!r}")
    if r.failed or sli is None or objective is None or period is None or not name:
        return service, owner, (), {}
    tiers = pyrra_tiers(period) if burnrates else ()
    policy = AlertPolicy(tiers=(), custom_tiers=tiers, no_data=absent, page=burnrates, ticket=burnrates,
                         name=r.text(al, "name", ap) or DEFAULT_ALERT_NAME,
                         page_labels=(("severity", "critical"),), ticket_labels=(("severity", "warning"),))
    if group_by:
        r.warn(("spec", "indicator"), cardinality_note(group_by))
    slo = SLO(name=name, objective=objective, sli=sli, period_days=period, alerting=policy, labels=labels,
              description=r.text(spec, "description", ("spec",)) or annotations.get(LABEL_PREFIX + "description", ""),
              group_by=group_by)
    sites = {(scope, name): (*path[:-1], LABEL_PREFIX + name)
             for (scope, name), path in label_sites(SCOPE_SLO, ("metadata", "labels"), labels).items()}
    return service, owner, (slo,) if check_slo(r, (), slo, templates) else (), {name: sites}
