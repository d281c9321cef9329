"""obsctl's own document, `apiVersion: obsctl.dev/v1`, `kind: Service`: the full SLO model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from obsctl.model.conventions import LABEL_NAME_RE, RESERVED_LABEL_PREFIX
from obsctl.model.durations import parse_duration
from obsctl.model.entities import (
    SLI,
    SLO,
    AlertPolicy,
    AvailabilitySLI,
    BudgetingMethod,
    EventsSLI,
    LatencySLI,
)
from obsctl.spec.backstage import check_metadata
from obsctl.spec.fields import FieldPath, Reader
from obsctl.spec.slos import (
    SCOPE_ALERTING,
    SCOPE_PAGE,
    SCOPE_SLO,
    SCOPE_TICKET,
    LabelSites,
    cardinality_note,
    check_labels,
    check_name,
    check_objective,
    check_period,
    check_query,
    check_slo,
    label_sites,
)
from obsctl.spec.templates import Templates

API_VERSION = "obsctl.dev/v1"
MAX_DURATION_SECONDS = 366 * 86400
SERVICE_FIELDS = {"component", "owner", "tier", "protocol", "runtime", "system", "environment", "lifecycle", "paging",
                  "dependsOn", "title", "description", "runbook", "labels", "latencyBuckets", "slos"}
SLO_FIELDS = {"name", "objective", "period", "budgeting", "timeslice", "description", "sli", "alerting", "labels",
              "groupBy"}
ALERTING_FIELDS = {"page", "ticket", "tiers", "minEvents", "noData", "budgetExhausted", "name", "labels",
                   "annotations", "pageLabels", "ticketLabels"}


@dataclass
class ServiceDoc:
    """The fields an obsctl document sets; None where it leaves the Component's value."""

    name: str
    namespace: str
    component: str | None
    owner: str | None
    fields: dict[str, Any]
    slos: tuple[SLO, ...] | None
    line: int
    label_sites: dict[str, LabelSites] = field(default_factory=dict)  # by SLO name


def parse_duration_field(r: Reader, path: FieldPath, value: Any) -> float | None:
    """A duration given as "300ms"/"1m" or a number of seconds."""
    try:
        seconds = float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
            else parse_duration(str(value))
    except (ValueError, OverflowError) as exc:
        r.problem(path, str(exc))
        return None
    if not 0 < seconds <= MAX_DURATION_SECONDS:
        r.problem(path, f"must be more than 0 and at most {MAX_DURATION_SECONDS:.0f} seconds (a year)")
        return None
    return seconds


def parse_sli(r: Reader, path: FieldPath, raw: Any) -> SLI | None:
    """One of availability, latency or events."""
    m = r.mapping(raw, path, {"availability", "latency", "events"})
    if len(m) != 1:
        if not r.failed or m:
            r.problem(path, "needs exactly one of availability, latency, events")
        return None
    kind, body = next(iter(m.items()))
    if kind == "availability":
        r.mapping(body, (*path, kind), set())
        return AvailabilitySLI()
    if kind == "latency":
        b = r.mapping(body, (*path, kind), {"threshold", "native"})
        if "threshold" not in b:
            r.problem((*path, kind, "threshold"), "is required")
            return None
        seconds = parse_duration_field(r, (*path, kind, "threshold"), b["threshold"])
        native = r.flag(b, "native", (*path, kind), False)  # a Prometheus native histogram: histogram_fraction
        return LatencySLI(seconds, native=native) if seconds else None
    b = r.mapping(body, (*path, kind), {"error_query", "good_query", "total_query", "errorQuery", "goodQuery",
                                        "totalQuery"})
    def q(*keys: str) -> str | None:
        for k in keys:
            if k in b:
                return check_query(r, (*path, kind, k), r.text(b, k, (*path, kind)))
        return None
    total = q("total_query", "totalQuery")
    if total is None and not any(k in b for k in ("total_query", "totalQuery")):
        r.problem((*path, kind, "total_query"), "is required")
    error, good = q("error_query", "errorQuery"), q("good_query", "goodQuery")
    if error and good:
        r.problem((*path, kind), "give error_query or good_query, not both")
        return None
    if total is None or (error is None and good is None):
        if not (error or good):
            r.problem((*path, kind), "needs error_query or good_query")
        return None
    return EventsSLI(total_query=total, error_query=error, good_query=good)


def parse_alerting(r: Reader, path: FieldPath, raw: Any) -> AlertPolicy:
    """The alerting block of an SLO."""
    m = r.mapping(raw, path, ALERTING_FIELDS)

    def labels(key: str) -> tuple[tuple[str, str], ...]:
        return check_labels(r, (*path, key), r.string_map(m.get(key), (*path, key), label_names=True))

    tiers = None
    if "tiers" in m:
        tiers = tuple(str(t) for t in r.seq(m["tiers"], (*path, "tiers")))
    min_events = r.number(m, "minEvents", path)
    if min_events is not None and min_events < 0:
        r.problem((*path, "minEvents"), "must not be negative")
    return AlertPolicy(
        page=r.flag(m, "page", path, True),
        ticket=r.flag(m, "ticket", path, True),
        tiers=tiers,
        min_events=min_events,
        no_data=r.flag(m, "noData", path, True),
        budget_exhausted=r.flag(m, "budgetExhausted", path, False),
        name=r.text(m, "name", path) or None,
        labels=labels("labels"),
        annotations=r.string_map(m.get("annotations"), (*path, "annotations"), label_names=True),
        page_labels=labels("pageLabels"),
        ticket_labels=labels("ticketLabels"),
    )


def _group_by(r: Reader, path: FieldPath, raw: Any) -> tuple[str, ...]:
    """`groupBy: [cluster, route]`: label names each group of the SLO is told apart by."""
    out: list[str] = []
    for i, item in enumerate(r.seq(raw, path)):
        name = str(item)
        if not LABEL_NAME_RE.match(name) or name.startswith(RESERVED_LABEL_PREFIX):
            r.problem((*path, i), f"{name!r} is not a label name obsctl can group by")
        elif name in out:
            r.problem((*path, i), f"{name!r} is listed twice")
        else:
            out.append(name)
    return tuple(out)


def parse_slos(r: Reader, path: FieldPath, raw: Any, templates: Templates
               ) -> tuple[tuple[SLO, ...], dict[str, LabelSites]]:
    """A list of SLOs, and where each one's labels were written (by SLO name); a bad SLO is reported and dropped
    (the caller decides about the service)."""
    out: list[SLO] = []
    sites: dict[str, LabelSites] = {}
    seen: dict[str, int] = {}
    for i, item in enumerate(r.seq(raw, path)):
        p = (*path, i)
        before = len([x for x in r.problems if x.severity.value == "error"])
        m = r.mapping(item, p, SLO_FIELDS)
        name = r.text(m, "name", p, required=True)
        if name:
            check_name(r, (*p, "name"), name)
            if name in seen:
                r.problem((*p, "name"), f"duplicate SLO name {name!r} (also at index {seen[name]})")
            seen.setdefault(name, i)
        objective = check_objective(r, (*p, "objective"), r.number(m, "objective", p, required=True))
        period = check_period(r, (*p, "period"), r.text(m, "period", p, default=f"{templates.default_period_days}d"),
                              templates)
        budgeting_text = r.text(m, "budgeting", p, default="occurrences").lower()
        try:
            budgeting = BudgetingMethod(budgeting_text)
        except ValueError:
            r.problem((*p, "budgeting"), f"must be occurrences or timeslices, not {budgeting_text!r}")
            budgeting = BudgetingMethod.OCCURRENCES
        ts = r.mapping(m.get("timeslice"), (*p, "timeslice"), {"duration", "target"})
        slice_s = parse_duration_field(r, (*p, "timeslice", "duration"), ts.get("duration", "1m")) or 60.0
        slice_target = r.number(ts, "target", (*p, "timeslice")) or 95.0
        if not 0 < slice_target <= 100:
            r.problem((*p, "timeslice", "target"), "must be in (0, 100]")
        sli = parse_sli(r, (*p, "sli"), m.get("sli")) if "sli" in m else None
        if "sli" not in m:
            r.problem((*p, "sli"), "is required")
        alerting = parse_alerting(r, (*p, "alerting"), m.get("alerting"))
        group_by = _group_by(r, (*p, "groupBy"), m.get("groupBy"))
        labels = check_labels(r, (*p, "labels"), r.string_map(m.get("labels"), (*p, "labels"), label_names=True))
        after = len([x for x in r.problems if x.severity.value == "error"])
        if after > before or objective is None or period is None or sli is None or not name:
            continue
        slo = SLO(name=name, objective=objective, sli=sli, period_days=period, budgeting=budgeting,
                  timeslice_seconds=slice_s, timeslice_target=slice_target / 100.0,
                  description=r.text(m, "description", p), alerting=alerting, labels=labels, group_by=group_by)
        if group_by:
            r.warn((*p, "groupBy"), cardinality_note(group_by))
        if check_slo(r, p, slo, templates):
            out.append(slo)
            sites[name] = {**label_sites(SCOPE_SLO, (*p, "labels"), labels),
                           **label_sites(SCOPE_ALERTING, (*p, "alerting", "labels"), alerting.labels),
                           **label_sites(SCOPE_PAGE, (*p, "alerting", "pageLabels"), alerting.page_labels),
                           **label_sites(SCOPE_TICKET, (*p, "alerting", "ticketLabels"), alerting.ticket_labels)}
    return tuple(out), sites


def parse_service_doc(r: Reader, data: dict[str, Any], templates: Templates) -> ServiceDoc | None:
    """An obsctl.dev/v1 Service document."""
    meta = r.mapping(data.get("metadata"), ("metadata",), {"name", "namespace", "labels", "annotations", "title",
                                                           "description"})
    spec = r.mapping(data.get("spec"), ("spec",), SERVICE_FIELDS)
    ref = check_metadata(r, {**data, "metadata": meta}, "service")
    slos, sites = parse_slos(r, ("spec", "slos"), spec["slos"], templates) if "slos" in spec else (None, {})
    fields = {k: v for k, v in spec.items() if k not in ("slos", "component", "owner")}
    if ref is None:
        return None
    return ServiceDoc(ref.name, ref.namespace, r.text(spec, "component", ("spec",)) or None,
                      r.text(spec, "owner", ("spec",)) or None, fields, slos, r.doc.line(), sites)
