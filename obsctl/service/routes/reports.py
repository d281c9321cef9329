"""SLO reports: `/v1/reports` and its stored snapshots."""

# no `from __future__ import annotations`: FastAPI resolves the local Annotated aliases at definition time
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse

from obsctl.errors import PermanentError
from obsctl.service.auth import READ, WRITE, Principal
from obsctl.service.guard import Access
from obsctl.service.reports import FORMATS, NoPrometheus, ReportService, current_catalog
from obsctl.service.runtime import Runtime
from obsctl.slo.report import ReportFilter


def router(rt: Runtime, access: Access, clock: Callable[[], float] = time.time) -> APIRouter:
    """Reports over the current catalog; `clock` is the reports' notion of now."""
    api = APIRouter(tags=["reports"])
    Reader = Annotated[Principal, Depends(access.dependency(READ))]  # noqa: N806 (a type alias)
    reports = ReportService(rt.store, lambda: current_catalog(rt.reconciler, rt.source, rt.templates,
                                                              rt.settings.environment),
                            rt.templates, rt.settings.prometheus.url, clock=clock)

    @api.get("/v1/reports", response_class=Response,
             responses={200: {"content": {ctype: {} for ctype, _ in FORMATS.values()},
                              "description": "the report in the asked format"},
                        503: {"description": "no Prometheus URL configured, or Prometheus unreachable"}})
    def get_report(request: Request, _who: Reader, *, team: str | None = None, service: str | None = None,
                   slo: str | None = None, period: str = "rolling",
                   format: Literal["json", "markdown", "html", "table"] = "json",
                   charts: bool = False, refresh: bool = False) -> Response:
        """Error budgets, burn rates and status of every SLO (the `obsctl slo report` of the service).

        A closed calendar month or quarter is served from its snapshot in the state store (taken
        the first time it is asked for); `refresh=true` (write scope) rebuilds the snapshot.
        """
        if refresh:
            access.principal(request, WRITE)
        filters = ReportFilter(team or None, service or None, slo or None)
        try:
            served = reports.get(filters, period, charts=charts, refresh=refresh)
        except ValueError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
        except NoPrometheus as exc:
            return JSONResponse({"detail": str(exc)}, status_code=503)
        except PermanentError as exc:
            return JSONResponse({"detail": f"cannot build the report: {exc}"}, status_code=502)
        if not served.report.slos and (team or service or slo):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no SLO matches the filters")
        ctype, render = FORMATS[format]
        headers = {"X-Obsctl-Report-Origin": served.origin}
        if served.snapshot_key:
            headers["X-Obsctl-Snapshot"] = served.snapshot_key
        return Response(render(served.report), media_type=ctype, headers=headers)

    @api.get("/v1/reports/snapshots")
    def list_report_snapshots(_who: Reader) -> dict[str, Any]:
        """The stored report snapshots (closed calendar periods), by key such as `calendar:2026-10`."""
        return {"items": [{"key": key, "period": key.partition(":")[2]} for key in reports.snapshots()]}

    return api
