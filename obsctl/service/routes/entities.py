"""Per-entity status for Backstage entity pages: `GET /v1/entities/{kind}/{namespace}/{name}/status`.

One small JSON document per catalog entity that a Backstage card (through Backstage's proxy) can
show without knowing PromQL: the service's SLOs with objective, SLI and error budget left over the
rolling period, the alert tiers firing now, the worst status, links to the dashboard, runbook and
entity page, and whether obsctl's artifacts for it are in sync. The numbers come from the same
report the `/v1/reports` endpoint serves; without Prometheus the SLOs are listed with null numbers
and `data` says why.
"""

# no `from __future__ import annotations`: FastAPI resolves the local Annotated aliases at definition time
import time
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, status

from obsctl.errors import PermanentError, TemporaryError
from obsctl.model import conventions as cv
from obsctl.model.entities import Service
from obsctl.model.status import FAILED_STATES, owner_key
from obsctl.service.auth import READ, Principal
from obsctl.service.guard import Access
from obsctl.service.reports import NoPrometheus, ReportService, current_catalog
from obsctl.service.runtime import Runtime
from obsctl.slo.report import ReportFilter, SLOReport, Status

ROLLING = "rolling"
_IN_SYNC = ("applied", "unchanged")


def _slo_entry(svc: Service, name: str, found: SLOReport | None) -> dict[str, Any]:
    slo = next(s for s in svc.slos if s.name == name)
    entry: dict[str, Any] = {"name": slo.name, "description": slo.description, "objective": slo.objective,
                             "period": f"{slo.period_days}d", "status": Status.NO_DATA.value, "sli": None,
                             "error_budget_remaining": None, "error_budget_minutes_remaining": None,
                             "burn_rate": None, "burn_window": "", "firing": [],
                             "alert_labels": cv.alert_selector(svc, slo)}
    if found is not None:
        entry.update({
            "status": found.status.value, "sli": found.sli, "error_budget_remaining": found.budget_remaining,
            "error_budget_minutes_remaining": found.budget_minutes_remaining, "burn_rate": found.current_burn,
            "burn_window": found.current_burn_window,
            "firing": [{"tier": t.name, "severity": t.severity, "long_burn": t.long_burn, "short_burn": t.short_burn,
                        "threshold": t.threshold} for t in found.tiers if t.firing and t.enabled]})
    return entry


def _links(svc: Service, rt: Runtime) -> dict[str, str]:
    """Only links whose base URL is configured: never a placeholder."""
    out: dict[str, str] = {}
    grafana = rt.settings.grafana.public_url.rstrip("/")
    if grafana:
        out["dashboard"] = f"{grafana}/d/{cv.service_dashboard_uid(svc)}"
    backstage = rt.settings.backstage.public_url.rstrip("/")
    if backstage:
        out["entity"] = cv.backstage_entity_url(backstage, svc)
    prometheus = rt.settings.prometheus.public_url.rstrip("/")
    if prometheus:
        out["alerts"] = f"{prometheus}/alerts?search={quote(svc.name)}"
    if svc.links.runbook:
        out["runbook"] = svc.links.runbook
    return out


def router(rt: Runtime, access: Access, clock: Callable[[], float] = time.time) -> APIRouter:
    """The per-entity status routes (read scope); `clock` is the reports' notion of now."""
    api = APIRouter(tags=["entities"])
    Reader = Annotated[Principal, Depends(access.dependency(READ))]  # noqa: N806 (a type alias)
    reports = ReportService(rt.store, lambda: current_catalog(rt.reconciler, rt.source, rt.templates,
                                                              rt.settings.environment),
                            rt.templates, rt.settings.prometheus.url, clock=clock)

    @api.get("/v1/entities/{kind}/{namespace}/{name}/status")
    def entity_status(kind: str, namespace: str, name: str, _actor: Reader) -> dict[str, Any]:
        """SLOs, error budget, firing tiers, links and sync state of one catalog entity (a Backstage card's data).

        `kind` is the Backstage entity kind (`component`; obsctl services are components).
        """
        if kind.lower() != "component":
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"obsctl keeps no status for {kind} entities")
        catalog = reports.catalog()
        svc = next((s for s in catalog.services if s.namespace == namespace and s.name == name), None)
        if svc is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no service component:{namespace}/{name} in the catalog")
        data = "ok"
        found: dict[str, SLOReport] = {}
        try:
            served = reports.get(ReportFilter(None, f"{namespace}/{name}", None), ROLLING)
            found = {s.slo: s for s in served.report.slos if s.namespace == namespace and s.service == name}
        except NoPrometheus as exc:
            data = f"unavailable: {exc}"
        except (TemporaryError, PermanentError) as exc:
            data = f"unavailable: Prometheus did not answer: {exc}"
        slos = [_slo_entry(svc, slo.name, found.get(slo.name)) for slo in svc.slos]
        worst = min((Status(s["status"]) for s in slos), key=lambda st: st.rank, default=Status.NO_DATA)
        rows = [st for st in rt.statuses() if owner_key(st.owner) == f"{namespace}/{name}"]
        return {
            "entity": f"component:{namespace}/{name}",
            "title": svc.title or svc.name,
            "team": str(svc.team),
            "tier": svc.tier,
            "status": worst.value,
            "data": data,
            "slos": slos,
            "firing": [{"slo": s["name"], **f} for s in slos for f in s["firing"]],
            "links": _links(svc, rt),
            "annotations": cv.backstage_annotations(svc),
            "artifacts": {"total": len(rows), "failing": sum(st.state in FAILED_STATES for st in rows),
                          "in_sync": all(st.state.value in _IN_SYNC for st in rows)},
        }

    return api
