"""Health, readiness and metrics: open to anyone who reaches the port (no token)."""

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from obsctl.service.runtime import Runtime


def router(rt: Runtime) -> APIRouter:
    """`/healthz`, `/readyz`, `/metrics`."""
    api = APIRouter(tags=["health"])

    @api.get("/healthz")
    def healthz() -> dict[str, Any]:
        """The process is up."""
        return {"ok": True}

    @api.get("/readyz")
    def readyz() -> JSONResponse:
        """Ready after the first complete reconcile (leader) or once a leader has reconciled (follower);
        not ready while rounds keep failing or the state store is lost."""
        ready, why = rt.readiness()
        body: dict[str, Any] = {"ready": ready, "leader": rt.elector.is_leader()}
        if why:
            body["reason"] = why
        return JSONResponse(body, status_code=200 if ready else 503)

    @api.get("/metrics", response_class=PlainTextResponse)
    def metrics() -> Response:
        """Prometheus metrics of this replica."""
        return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return api
