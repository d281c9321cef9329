"""The registration API: `/v1/services[/{namespace}/{name}]`.

Bodies are streamed with the size limit enforced while reading; parsing, loading and the
candidate render run in a worker thread, never on the event loop.
"""

# no `from __future__ import annotations`: FastAPI resolves the local Annotated aliases at definition time
import logging
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from obsctl.service.admission import Admission, Admitted
from obsctl.service.auth import READ, WRITE, Principal
from obsctl.service.bodies import body_format, parse_document, read_limited
from obsctl.service.guard import Access
from obsctl.service.runtime import Runtime
from obsctl.store.state import Registration

log = logging.getLogger("obsctl.service.http")

DOC_BODY = {
    "requestBody": {
        "required": True,
        "description": "An obsctl.dev/v1 Service document, as JSON or YAML.",
        "content": {
            "application/json": {"schema": {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"]}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


def registration_dict(reg: Registration, with_document: bool = False) -> dict[str, Any]:
    """A registration as JSON."""
    out: dict[str, Any] = {"namespace": reg.namespace, "name": reg.name, "digest": reg.digest,
                           "created_at": reg.created_at, "updated_at": reg.updated_at, "updated_by": reg.updated_by}
    if with_document:
        out["document"] = yaml.safe_load(reg.document)
    return out


def router(rt: Runtime, access: Access, admission: Admission) -> APIRouter:
    """Register, replace, read and remove services."""
    api = APIRouter(tags=["registrations"])
    Reader = Annotated[Principal, Depends(access.dependency(READ))]  # noqa: N806 (a type alias)
    Writer = Annotated[Principal, Depends(access.dependency(WRITE))]  # noqa: N806

    def stored(ns: str, name: str) -> bytes | None:
        reg = rt.store.get_registration(ns, name)
        return reg.document if reg is not None else None

    async def admit(request: Request, who: Principal, url: tuple[str, str] | None) -> Admitted:
        fmt = body_format(request)
        raw = await read_limited(request)
        rt.require_writable()

        def work() -> Admitted:
            return admission.admit(parse_document(raw, fmt), who, url, stored)
        return await run_in_threadpool(work)

    def registered(adm: Admitted, who: Principal, created: bool) -> dict[str, Any]:
        ns, name = adm.namespace, adm.name
        detail = {"overrides_catalog": adm.overrides} if adm.overrides else {}
        created = rt.store.put_registration(ns, name, adm.body, who.actor, detail)
        log.info("registration %s", "created" if created else "updated",
                 extra={"fields": {"service": f"{ns}/{name}", "actor": who.actor, **detail}})
        rt.reconciler.wake(f"registration {ns}/{name}")
        reg = rt.store.get_registration(ns, name)
        if reg is None:  # removed by another replica in between
            raise HTTPException(status.HTTP_409_CONFLICT, f"{ns}/{name} was removed meanwhile")
        out = registration_dict(reg)
        out["created"] = created
        if adm.overrides:
            out["warning"] = f"this registration overrides the catalog's {adm.overrides}"
        return out

    @api.get("/v1/services")
    def list_services(_who: Reader) -> dict[str, Any]:
        """Every registered service."""
        return {"items": [registration_dict(r) for r in rt.store.list_registrations()]}

    @api.get("/v1/services/{namespace}/{name}")
    def get_service(namespace: str, name: str, _who: Reader) -> dict[str, Any]:
        """One registration, with its document."""
        reg = rt.store.get_registration(namespace, name)
        if reg is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{namespace}/{name} is not registered")
        return registration_dict(reg, with_document=True)

    @api.post("/v1/services", status_code=201, openapi_extra=DOC_BODY)
    async def create_service(request: Request, who: Writer) -> JSONResponse:
        """Register a new service (409 when it exists; use PUT to replace)."""
        adm = await admit(request, who, None)
        if rt.store.get_registration(adm.namespace, adm.name) is not None:
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"{adm.namespace}/{adm.name} is already registered; PUT replaces it")
        out = registered(adm, who, True)
        return JSONResponse(out, status_code=201, headers={"Location": f"/v1/services/{adm.namespace}/{adm.name}"})

    @api.put("/v1/services/{namespace}/{name}", openapi_extra=DOC_BODY,
             responses={201: {"description": "created"}, 200: {"description": "replaced"}})
    async def put_service(namespace: str, name: str, request: Request, who: Writer) -> JSONResponse:
        """Register or replace a service."""
        adm = await admit(request, who, (namespace, name))
        out = registered(adm, who, False)
        return JSONResponse(out, status_code=201 if out["created"] else 200)

    @api.delete("/v1/services/{namespace}/{name}", status_code=204)
    def delete_service(namespace: str, name: str, who: Writer) -> Response:
        """Deregister a service: its artifacts are removed at the next reconcile (no grace period)."""
        rt.require_writable()
        reg = rt.store.get_registration(namespace, name)
        if reg is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{namespace}/{name} is not registered")
        if who.teams is not None:
            admission.check_may_replace(who, namespace, name, reg.document)
        if not rt.store.delete_registration(namespace, name, who.actor):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{namespace}/{name} is not registered")
        log.info("registration removed", extra={"fields": {"service": f"{namespace}/{name}", "actor": who.actor}})
        rt.deregistered(namespace, name)
        return Response(status_code=204)

    return api
