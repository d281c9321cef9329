"""Sloth specs as an import format: `prometheus/v1` and the Kubernetes `sloth.slok.dev/v1 PrometheusServiceLevel`.

Meaning is kept as Sloth renders it: the spec's and each SLO's `labels` go on every recorded series
and alert, `alerting.labels`/`annotations` on both alerts, `page_alert`/`ticket_alert` ones on that
alert only (a `severity: critical` stays `critical`; obsctl routes on its own `obsctl_severity`), and
an SLI grouped `sum by (cluster)(...)` burns and alerts per cluster. What obsctl reads but cannot
honour (SLO plugins, SLI plugins) is reported by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from obsctl.model.entities import SLO, AlertPolicy, EventsSLI
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
    check_query,
    check_slo,
    label_sites,
    query_grouping,
)
from obsctl.spec.templates import Templates

VERSION = "prometheus/v1"
K8S_API_VERSION = "sloth.slok.dev/v1"
K8S_KIND = "PrometheusServiceLevel"


@dataclass(frozen=True)
class _Dialect:
    """Field names of one wire form (the CLI spec is snake_case, the Kubernetes one camelCase)."""

    root: FieldPath
    top: frozenset[str]
    plugins: str
    error_query: str
    total_query: str
    error_ratio_query: str
    page: str
    ticket: str


CLI = _Dialect((), frozenset({"version", "service", "labels", "slo_plugins", "slos"}), "slo_plugins",
               "error_query", "total_query", "error_ratio_query", "page_alert", "ticket_alert")
K8S = _Dialect(("spec",), frozenset({"service", "labels", "sloPlugins", "slos"}), "sloPlugins",
               "errorQuery", "totalQuery", "errorRatioQuery", "pageAlert", "ticketAlert")
SLO_FIELDS = {"name", "objective", "description", "sli", "alerting", "labels", "plugins"}
ALERT_FIELDS = {"name", "labels", "annotations"}
SUB_ALERT_FIELDS = {"disable", "labels", "annotations"}


def is_sloth(data: dict[str, Any]) -> bool:
    """Whether a document is a Sloth spec in either form."""
    return str(data.get("version", "")) == VERSION or (
        str(data.get("apiVersion", "")) == K8S_API_VERSION and str(data.get("kind", "")) == K8S_KIND)


def parse_sloth(r: Reader, data: dict[str, Any], templates: Templates
                ) -> tuple[str, dict[str, str], tuple[SLO, ...], dict[str, LabelSites]]:
    """Returns (service name, spec labels, valid SLOs, where each SLO's labels were written, by SLO name).
    A bad SLO is reported and skipped alone.

    Sloth has no period: the platform default applies (Sloth's default is 30 days too).
    """
    d = K8S if "apiVersion" in data else CLI
    if d is K8S:
        r.mapping(data, (), {"apiVersion", "kind", "metadata", "spec", "status"})
    top = r.mapping(data.get("spec") if d is K8S else data, d.root, d.top)
    service = r.text(top, "service", d.root, required=True)
    labels = check_labels(r, (*d.root, "labels"), r.string_map(top.get("labels"), (*d.root, "labels")))
    if top.get(d.plugins):
        r.warn((*d.root, d.plugins), "Sloth SLO plugins are not run by obsctl: the SLOs render with obsctl's own rules")
    slos: list[SLO] = []
    sites: dict[str, LabelSites] = {}
    for i, item in enumerate(r.seq(top.get("slos"), (*d.root, "slos"))):
        with r.contained() as outcome:
            found = _slo(r, d, (*d.root, "slos", i), item, spec_labels=labels, templates=templates)
        if found is not None and not outcome.failed:
            slos.append(found[0])
            sites[found[0].name] = found[1]
    return service, dict(labels), tuple(slos), sites


def _slo(r: Reader, d: _Dialect, p: FieldPath, item: Any, *, spec_labels: tuple[tuple[str, str], ...],
         templates: Templates) -> tuple[SLO, LabelSites] | None:
    m = r.mapping(item, p, SLO_FIELDS)
    name = r.text(m, "name", p, required=True)
    if name:
        check_name(r, (*p, "name"), name)
    objective = check_objective(r, (*p, "objective"), r.number(m, "objective", p, required=True))
    if m.get("plugins"):
        r.warn((*p, "plugins"), "Sloth SLO plugins are not run by obsctl: this SLO renders with obsctl's own rules")
    sli, group_by = _sli(r, d, (*p, "sli"), m.get("sli"))
    al_path = (*p, "alerting")
    al = r.mapping(m.get("alerting"), al_path, ALERT_FIELDS | {d.page, d.ticket})
    page = r.mapping(al.get(d.page), (*al_path, d.page), SUB_ALERT_FIELDS)
    ticket = r.mapping(al.get(d.ticket), (*al_path, d.ticket), SUB_ALERT_FIELDS)

    def pairs(block: dict[str, Any], path: FieldPath, key: str,
              annotations: bool = False) -> tuple[tuple[str, str], ...]:
        return check_labels(r, (*path, key), r.string_map(block.get(key), (*path, key)), annotations)

    policy = AlertPolicy(
        page=not r.flag(page, "disable", (*al_path, d.page), False),
        ticket=not r.flag(ticket, "disable", (*al_path, d.ticket), False),
        name=r.text(al, "name", al_path) or None,
        labels=pairs(al, al_path, "labels"),
        annotations=pairs(al, al_path, "annotations", True),
        page_labels=pairs(page, (*al_path, d.page), "labels"),
        ticket_labels=pairs(ticket, (*al_path, d.ticket), "labels"),
        page_annotations=pairs(page, (*al_path, d.page), "annotations", True),
        ticket_annotations=pairs(ticket, (*al_path, d.ticket), "annotations", True),
        # Sloth has no no-data alert; obsctl adds one (a ticket), named SLONoData.
    )
    own_labels = pairs(m, p, "labels")
    slo_labels = dict(spec_labels)
    slo_labels.update(own_labels)
    sites = {**label_sites(SCOPE_SLO, (*d.root, "labels"), spec_labels), **label_sites(SCOPE_SLO, (*p, "labels"),
                                                                                          own_labels),
             **label_sites(SCOPE_ALERTING, (*al_path, "labels"), policy.labels),
             **label_sites(SCOPE_PAGE, (*al_path, d.page, "labels"), policy.page_labels),
             **label_sites(SCOPE_TICKET, (*al_path, d.ticket, "labels"), policy.ticket_labels)}
    if r.failed or sli is None or objective is None or not name:
        return None
    if group_by:
        r.warn((*p, "sli"), cardinality_note(group_by))
    slo = SLO(name=name, objective=objective, sli=sli, period_days=templates.default_period_days,
              description=r.text(m, "description", p), alerting=policy,
              labels=tuple(sorted(slo_labels.items())), group_by=group_by)
    return (slo, sites) if check_slo(r, p, slo, templates) else None


def _sli(r: Reader, d: _Dialect, path: FieldPath, raw: Any) -> tuple[EventsSLI | None, tuple[str, ...]]:
    sli_m = r.mapping(raw, path, {"events", "raw", "plugin"})
    if len(sli_m) > 1:
        r.problem(path, "only one SLI type is allowed (events, raw or plugin)")
        return None, ()
    if "events" in sli_m:
        ep = (*path, "events")
        ev = r.mapping(sli_m["events"], ep, {d.error_query, d.total_query})
        err_text, tot_text = r.text(ev, d.error_query, ep, True), r.text(ev, d.total_query, ep, True)
        err = check_query(r, (*ep, d.error_query), err_text) if err_text else None
        tot = check_query(r, (*ep, d.total_query), tot_text) if tot_text else None
        if err and tot and err == tot:
            r.problem((*ep, d.error_query), "error and total queries are the same")
            return None, ()
        if not (err and tot):
            return None, ()
        groups = query_grouping(r, [((*ep, d.error_query), err), ((*ep, d.total_query), tot)])
        return (EventsSLI(total_query=tot, error_query=err), groups) if groups is not None else (None, ())
    if "raw" in sli_m:
        rp = (*path, "raw")
        raw_m = r.mapping(sli_m["raw"], rp, {d.error_ratio_query})
        text = r.text(raw_m, d.error_ratio_query, rp, True)
        q = check_query(r, (*rp, d.error_ratio_query), text) if text else None
        if not q:
            return None, ()
        r.warn(rp, "a raw error ratio has no event counts: its long windows average the ratio over time, as "
                   "Sloth does, instead of weighting by traffic; prefer events (error and total queries)")
        groups = query_grouping(r, [((*rp, d.error_ratio_query), q)])
        return (EventsSLI(total_query="", error_ratio_query=q), groups) if groups is not None else (None, ())
    if "plugin" in sli_m:
        r.problem((*path, "plugin"), "Sloth SLI plugins are not run by obsctl; write the SLI as events queries")
        return None, ()
    r.problem(path, "needs events or raw")
    return None, ()
