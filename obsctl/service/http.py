"""The HTTP API of `obsctl serve`, assembled from one router per concern (obsctl/service/routes/):
health, registrations, status, reports. Guards wrap them all: Host/Origin checks, bearer tokens
(closed to writes by default), streamed bodies."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from obsctl import app as composition
from obsctl.errors import TemporaryError
from obsctl.render.incremental import IncrementalRenderer
from obsctl.service.admission import Admission
from obsctl.service.bodies import MAX_DOCUMENT_BYTES
from obsctl.service.guard import Access, HostOriginGuard, parse_listen
from obsctl.service.reports import current_catalog
from obsctl.service.routes import entities, health, registrations, reports, status
from obsctl.service.runtime import Runtime

log = logging.getLogger("obsctl.service.http")

__all__ = ["MAX_DOCUMENT_BYTES", "create_app"]


def create_app(rt: Runtime, *, clock: Callable[[], float] = time.time) -> FastAPI:
    """The FastAPI application over a runtime. The lifespan starts and stops the runtime.

    `clock` is the reports' notion of now (tests pin it to their data).
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        rt.start()
        try:
            yield
        finally:
            rt.stop()

    api = FastAPI(title="obsctl", version="1", lifespan=lifespan,
                  description="Observability control service: registrations in, dashboards, SLO rules, alert routes "
                              "and collector configs out, kept converged.")
    serve = rt.settings.serve
    api.add_middleware(HostOriginGuard, listen_host=parse_listen(serve.listen)[0],
                       allowed_hosts=serve.allowed_hosts, allowed_origins=serve.allowed_origins)

    @api.exception_handler(TemporaryError)
    async def temporary(_request: Request, exc: TemporaryError) -> JSONResponse:
        """The state store (or another dependency) is unavailable: 503, try again."""
        headers = {"Retry-After": str(int(exc.retry_after or 1))}
        return JSONResponse({"detail": f"temporarily unavailable: {exc}"}, status_code=503, headers=headers)

    @api.exception_handler(RecursionError)
    async def too_deep(request: Request, _exc: RecursionError) -> JSONResponse:
        """Input nested too deep for a parser: the client's fault, said and logged."""
        log.warning("request refused: input nested too deep", extra={"fields": {"path": request.url.path}})
        return JSONResponse({"detail": "the input nests too deep"}, status_code=400)

    index_renderer = IncrementalRenderer(rt.templates, composition.render_options(rt.settings))
    access = Access(rt.tokens, allow_unauthenticated_writes=serve.allow_unauthenticated_writes)
    admission = Admission(composition.catalog_loader(rt.templates, environment=rt.settings.environment),
                          composition.catalog_renderer(rt.settings, rt.templates),
                          lambda: current_catalog(rt.reconciler, rt.source, rt.templates, rt.settings.environment),
                          rt.reconciler.desired_state,
                          render_catalog=lambda catalog: index_renderer.isolated(catalog).desired,
                          allow_catalog_override=serve.registrations_may_override_catalog)
    api.include_router(health.router(rt))
    api.include_router(registrations.router(rt, access, admission))
    api.include_router(status.router(rt, access))
    api.include_router(reports.router(rt, access, clock))
    api.include_router(entities.router(rt, access, clock))
    return api
