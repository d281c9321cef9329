"""Sloth's `prometheus/v1` spec as an import format."""

from __future__ import annotations

from typing import Any

from obsctl.model.entities import SLO, AlertPolicy, EventsSLI
from obsctl.spec.fields import Reader
from obsctl.spec.slos import check_name, check_objective, check_query, check_slo
from obsctl.spec.templates import Templates

VERSION = "prometheus/v1"
TOP_FIELDS = {"version", "service", "labels", "slos"}
SLO_FIELDS = {"name", "objective", "description", "sli", "alerting", "labels"}
ALERT_FIELDS = {"name", "labels", "annotations", "page_alert", "ticket_alert"}
SUB_ALERT_FIELDS = {"disable", "labels", "annotations"}


def parse_sloth(r: Reader, data: dict[str, Any], templates: Templates) -> tuple[str, dict[str, str], tuple[SLO, ...]]:
    """Returns (service name, labels, SLOs). Sloth has no period: the platform default applies."""
    top = r.mapping(data, (), TOP_FIELDS)
    service = r.text(top, "service", (), required=True)
    labels = dict(r.string_map(top.get("labels"), ("labels",)))
    slos: list[SLO] = []
    for i, item in enumerate(r.seq(top.get("slos"), ("slos",))):
        p: tuple[str | int, ...] = ("slos", i)
        errors_before = sum(1 for x in r.problems if x.severity.value == "error")
        m = r.mapping(item, p, SLO_FIELDS)
        name = r.text(m, "name", p, required=True)
        if name:
            check_name(r, (*p, "name"), name)
        objective = check_objective(r, (*p, "objective"), r.number(m, "objective", p, required=True))
        sli_m = r.mapping(m.get("sli"), (*p, "sli"), {"events", "raw", "plugin"})
        sli = None
        if "events" in sli_m:
            ev = r.mapping(sli_m["events"], (*p, "sli", "events"), {"error_query", "total_query"})
            ep = (*p, "sli", "events")
            err = check_query(r, (*ep, "error_query"), r.text(ev, "error_query", ep, True))
            tot = check_query(r, (*ep, "total_query"), r.text(ev, "total_query", ep, True))
            if err and tot:
                sli = EventsSLI(total_query=tot, error_query=err)
        elif "raw" in sli_m:
            raw = r.mapping(sli_m["raw"], (*p, "sli", "raw"), {"error_ratio_query"})
            q = check_query(r, (*p, "sli", "raw", "error_ratio_query"),
                            r.text(raw, "error_ratio_query", (*p, "sli", "raw"), True))
            if q:
                # A raw ratio has no event counts: weight every 5m step equally.
                r.warn((*p, "sli", "raw"), "raw error-ratio SLIs cannot be traffic-weighted; "
                                           "prefer events (error_query/total_query)")
                sli = EventsSLI(total_query="vector(1)", error_query=q)
        elif "plugin" in sli_m:
            r.problem((*p, "sli", "plugin"), "Sloth SLI plugins are not supported; write the events queries")
        else:
            r.problem((*p, "sli"), "needs events or raw")
        al = r.mapping(m.get("alerting"), (*p, "alerting"), ALERT_FIELDS)
        page = r.mapping(al.get("page_alert"), (*p, "alerting", "page_alert"), SUB_ALERT_FIELDS)
        ticket = r.mapping(al.get("ticket_alert"), (*p, "alerting", "ticket_alert"), SUB_ALERT_FIELDS)
        policy = AlertPolicy(
            page=not r.flag(page, "disable", (*p, "alerting", "page_alert"), False),
            ticket=not r.flag(ticket, "disable", (*p, "alerting", "ticket_alert"), False),
            name=r.text(al, "name", (*p, "alerting")) or None,
            labels=r.string_map(al.get("labels"), (*p, "alerting", "labels")),
            annotations=r.string_map(al.get("annotations"), (*p, "alerting", "annotations")),
            page_labels=r.string_map(page.get("labels"), (*p, "alerting", "page_alert", "labels")),
            ticket_labels=r.string_map(ticket.get("labels"), (*p, "alerting", "ticket_alert", "labels")),
        )
        if sum(1 for x in r.problems if x.severity.value == "error") > errors_before:
            continue
        if sli is None or objective is None:
            continue
        slo = SLO(name=name, objective=objective, sli=sli, period_days=templates.default_period_days,
                  description=r.text(m, "description", p), alerting=policy,
                  labels=r.string_map(m.get("labels"), (*p, "labels")))
        if check_slo(r, p, slo, templates):
            slos.append(slo)
    return service, labels, tuple(slos)
