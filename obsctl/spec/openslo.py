"""OpenSLO (openslo/v1 and openslo/v1alpha) as an import format: Service, SLI, SLO, AlertPolicy,
AlertCondition. Burn-rate alert conditions select the matching tiers of obsctl's window table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from obsctl.model.durations import parse_duration
from obsctl.model.entities import SLO, AlertPolicy, BudgetingMethod, EventsSLI
from obsctl.spec.fields import FieldPath, Reader
from obsctl.spec.slos import check_name, check_objective, check_period, check_query, check_slo
from obsctl.spec.templates import Templates

API_VERSIONS = {"openslo/v1", "openslo/v1alpha"}
KINDS = {"Service", "SLI", "SLO", "AlertPolicy", "AlertCondition", "AlertNotificationTarget", "DataSource"}


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


def _query(r: Reader, path: FieldPath, m: Any) -> str | None:
    """A query from v1 `metricSource.spec.query` or v1alpha `{source, queryType, query}`."""
    body = r.mapping(m, path)
    if "metricSource" in body:
        src = r.mapping(body["metricSource"], (*path, "metricSource"))
        spec = r.mapping(src.get("spec"), (*path, "metricSource", "spec"))
        q = r.text(spec, "query", (*path, "metricSource", "spec"), required=True)
        return check_query(r, (*path, "metricSource", "spec", "query"), q) if q else None
    q = r.text(body, "query", path, required=True)
    return check_query(r, (*path, "query"), q) if q else None


def _ratio_sli(r: Reader, path: FieldPath, ratio: Any) -> EventsSLI | None:
    m = r.mapping(ratio, path)
    total = _query(r, (*path, "total"), m.get("total")) if "total" in m else None
    if "total" not in m:
        r.problem((*path, "total"), "is required")
    good = _query(r, (*path, "good"), m["good"]) if "good" in m else None
    bad = _query(r, (*path, "bad"), m["bad"]) if "bad" in m else None
    if total is None or (good is None and bad is None):
        if "good" not in m and "bad" not in m:
            r.problem(path, "needs good or bad beside total")
        return None
    return EventsSLI(total_query=total, good_query=good, error_query=bad)


def _period(r: Reader, spec: dict[str, Any], templates: Templates) -> int | None:
    if "timeWindow" in spec:  # v1
        windows = r.seq(spec["timeWindow"], ("spec", "timeWindow"))
        w = r.mapping(windows[0] if windows else {}, ("spec", "timeWindow", 0))
        text = r.text(w, "duration", ("spec", "timeWindow", 0), required=True)
        if text.endswith("w") and text[:-1].isdigit():
            text = f"{int(text[:-1]) * 7}d"
        return check_period(r, ("spec", "timeWindow", 0, "duration"), text, templates) if text else None
    if "timeWindows" in spec:  # v1alpha
        windows = r.seq(spec["timeWindows"], ("spec", "timeWindows"))
        w = r.mapping(windows[0] if windows else {}, ("spec", "timeWindows", 0))
        count = r.number(w, "count", ("spec", "timeWindows", 0), required=True)
        unit = r.text(w, "unit", ("spec", "timeWindows", 0), default="Day").lower()
        days = (count or 0) * {"day": 1, "week": 7}.get(unit, 0)
        return check_period(r, ("spec", "timeWindows", 0), f"{int(days)}d", templates)
    return templates.default_period_days


def _alerting(r: Reader, spec: dict[str, Any], objects: OpenSloSet, templates: Templates,
              period: int) -> AlertPolicy:
    refs = r.seq(spec.get("alertPolicies"), ("spec", "alertPolicies"))
    if not refs:
        r.warn(("spec",), "no alertPolicies: this SLO gets recordings and dashboards but no page or ticket")
        return AlertPolicy(page=False, ticket=False)
    table = templates.windows[period]
    tiers: set[str] = set()
    for i, ref in enumerate(refs):
        path: FieldPath = ("spec", "alertPolicies", i)
        policy: Any = ref
        if isinstance(ref, str) or (isinstance(ref, dict) and "alertPolicyRef" in ref):
            name = ref if isinstance(ref, str) else str(ref["alertPolicyRef"])
            found = objects.get("AlertPolicy", name)
            if found is None:
                r.problem(path, f"AlertPolicy {name!r} not found")
                continue
            policy = found.data
        pspec = r.mapping(r.mapping(policy, path).get("spec"), (*path, "spec"))
        for j, cond in enumerate(r.seq(pspec.get("conditions"), (*path, "spec", "conditions"))):
            cpath: FieldPath = (*path, "spec", "conditions", j)
            c = r.mapping(cond, cpath)
            if "conditionRef" in c:
                found = objects.get("AlertCondition", str(c["conditionRef"]))
                if found is None:
                    r.problem(cpath, f"AlertCondition {c['conditionRef']!r} not found")
                    continue
                c = found.data
            cspec = r.mapping(c.get("spec"), (*cpath, "spec"))
            cond_m = r.mapping(cspec.get("condition"), (*cpath, "spec", "condition"))
            threshold = r.number(cond_m, "threshold", (*cpath, "spec", "condition"))
            lookback = cond_m.get("lookbackWindow")
            match = [t.name for t in table.tiers
                     if threshold is not None and abs(t.burn_rate - threshold) < 0.05
                     and (lookback is None or parse_duration(str(lookback)) == t.long_window_s)]
            if not match:
                r.warn(cpath, f"burn-rate condition (threshold {threshold}, lookback {lookback}) matches no tier "
                              f"of the {period}d window table; it is ignored")
            tiers.update(match)
    if not tiers:
        return AlertPolicy()
    return AlertPolicy(tiers=tuple(t.name for t in table.tiers if t.name in tiers))


def build_slos(slo_doc: OpenSloDoc, objects: OpenSloSet, templates: Templates) -> tuple[str, str, tuple[SLO, ...]]:
    """Returns (service name, owner label, SLOs) for one OpenSLO SLO object."""
    r = slo_doc.reader
    data = slo_doc.data
    meta = r.mapping(data.get("metadata"), ("metadata",))
    labels = r.mapping(meta.get("labels"), ("metadata", "labels"))
    owner = str(labels.get("owner") or labels.get("team") or "")
    spec = r.mapping(data.get("spec"), ("spec",))
    service = r.text(spec, "service", ("spec",), required=True)
    if service and objects.get("Service", service) is not None and not owner:
        svc_meta = objects.get("Service", service)
        assert svc_meta is not None
        sl = svc_meta.data.get("metadata", {}).get("labels", {}) or {}
        owner = str(sl.get("owner") or sl.get("team") or "")
    period = _period(r, spec, templates)
    method_text = r.text(spec, "budgetingMethod", ("spec",), default="Occurrences").lower()
    budgeting = BudgetingMethod.TIMESLICES if "timeslice" in method_text else BudgetingMethod.OCCURRENCES
    indicator: Any = spec.get("indicator")
    if "indicatorRef" in spec:
        found = objects.get("SLI", str(spec["indicatorRef"]))
        if found is None:
            r.problem(("spec", "indicatorRef"), f"SLI {spec['indicatorRef']!r} not found")
        else:
            indicator = found.data
    shared_sli = None
    if indicator is not None:
        ind = r.mapping(indicator, ("spec", "indicator"))
        ispec = r.mapping(ind.get("spec"), ("spec", "indicator", "spec"))
        if "ratioMetric" in ispec:
            shared_sli = _ratio_sli(r, ("spec", "indicator", "spec", "ratioMetric"), ispec["ratioMetric"])
        else:
            r.problem(("spec", "indicator", "spec"), "only ratioMetric SLIs are supported")
    objectives = r.seq(spec.get("objectives"), ("spec", "objectives"))
    if not objectives:
        r.problem(("spec", "objectives"), "needs at least one objective")
    base = str(meta.get("name", ""))
    out: list[SLO] = []
    for i, obj in enumerate(objectives):
        p: FieldPath = ("spec", "objectives", i)
        o = r.mapping(obj, p)
        sli = _ratio_sli(r, (*p, "ratioMetrics"), o["ratioMetrics"]) if "ratioMetrics" in o else shared_sli
        target = r.number(o, "target", p)
        percent = target * 100 if target is not None else r.number(o, "targetPercent", p)
        if percent is None:
            r.problem((*p, "target"), "is required")
        objective = check_objective(r, (*p, "target"), percent)
        name = base if len(objectives) == 1 else f"{base}-{i}"
        if not check_name(r, ("metadata", "name"), name) or sli is None or objective is None or period is None:
            continue
        slice_target = r.number(o, "timeSliceTarget", p)
        slice_window = o.get("timeSliceWindow")
        slo = SLO(name=name, objective=objective, sli=sli, period_days=period, budgeting=budgeting,
                  timeslice_seconds=parse_duration(str(slice_window)) if slice_window else 60.0,
                  timeslice_target=slice_target if slice_target else 0.95,
                  description=r.text(spec, "description", ("spec",)),
                  alerting=_alerting(r, spec, objects, templates, period))
        if check_slo(r, p, slo, templates):
            out.append(slo)
    return service, owner, tuple(out)
