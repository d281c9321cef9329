"""The HTTP API of `obsctl serve`: registrations, status, plan, reconcile trigger, SLO reports, health,
metrics."""


import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import yaml
from fastapi import Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from obsctl.errors import PermanentError, TemporaryError
from obsctl.model.status import FAILED_STATES, ArtifactStatus, owner_key
from obsctl.service.auth import READ, WRITE, token_id
from obsctl.service.reports import FORMATS, NoPrometheus, ReportService, current_catalog
from obsctl.service.runtime import Runtime
from obsctl.slo.report import ReportFilter
from obsctl.sources.registrations import origin
from obsctl.spec import native
from obsctl.spec.load import SourceFile, load_catalog
from obsctl.store.state import Registration

log = logging.getLogger("obsctl.service.http")

MAX_DOCUMENT_BYTES = 256 * 1024
_DOC_BODY = {
    "requestBody": {
        "required": True,
        "description": "An obsctl.dev/v1 Service document, as JSON or YAML.",
        "content": {
            "application/json": {"schema": {"type": "object", "required": ["apiVersion", "kind", "metadata", "spec"]}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


def _status_dict(st: ArtifactStatus) -> dict[str, Any]:
    return {"sink": st.sink, "id": st.id, "owner": st.owner, "path": st.path, "state": st.state.value,
            "last_action": st.action, "desired_digest": st.desired_digest, "applied_digest": st.applied_digest,
            "drift": st.drifted, "error": st.error, "error_class": st.error_class, "failures": st.failures,
            "next_retry_at": st.next_retry_at, "updated_at": st.updated_at}


def _registration_dict(reg: Registration, with_document: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"namespace": reg.namespace, "name": reg.name, "digest": reg.digest,
                           "created_at": reg.created_at, "updated_at": reg.updated_at, "updated_by": reg.updated_by}
    if with_document:
        out["document"] = yaml.safe_load(reg.document)
    return out


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

    @api.exception_handler(TemporaryError)
    async def temporary(_request: Request, exc: TemporaryError) -> JSONResponse:
        """The state store (or another dependency) is unavailable: 503, try again."""
        headers = {"Retry-After": str(int(exc.retry_after or 1))}
        return JSONResponse({"detail": f"temporarily unavailable: {exc}"}, status_code=503, headers=headers)

    def scope(required: str) -> Callable[[Request], str]:
        def check(request: Request) -> str:
            if not rt.tokens.enabled:
                return "anonymous"
            header = request.headers.get("authorization", "")
            kind, _, token = header.partition(" ")
            if kind.lower() != "bearer" or not token.strip():
                raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token",
                                    headers={"WWW-Authenticate": "Bearer"})
            scopes = rt.tokens.scopes(token.strip())
            if scopes is None:
                raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown token",
                                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
            if required not in scopes:
                raise HTTPException(status.HTTP_403_FORBIDDEN, f"this token lacks the {required} scope")
            return token_id(token.strip())
        return check

    Reader = Annotated[str, Depends(scope(READ))]  # noqa: N806 (a type alias)
    Writer = Annotated[str, Depends(scope(WRITE))]  # noqa: N806

    # -- health ------------------------------------------------------------------------------

    @api.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        """The process is up."""
        return {"ok": True}

    @api.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Ready after the first complete reconcile (leader) or once a leader has reconciled (follower)."""
        ready = rt.is_ready()
        return JSONResponse({"ready": ready, "leader": rt.elector.is_leader()},
                            status_code=200 if ready else 503)

    @api.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def metrics() -> Response:
        """Prometheus metrics of this replica."""
        return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- registrations -----------------------------------------------------------------------

    async def read_document(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > MAX_DOCUMENT_BYTES:
            raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "document too large")
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        try:
            data = json.loads(raw) if ctype == "application/json" else yaml.safe_load(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"cannot parse the body as {ctype}: {exc}") from exc
        if not isinstance(data, dict):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "the document must be a mapping")
        return data

    def validate(data: dict[str, Any], namespace: str | None, name: str | None) -> tuple[str, str, bytes]:
        meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        doc_name = str(meta.get("name", "")) if meta else ""
        doc_ns = str(meta.get("namespace", "default")) if meta else "default"
        problems: list[dict[str, Any]] = []
        if data.get("apiVersion") != native.API_VERSION or data.get("kind") != "Service":
            problems.append({"field": "apiVersion", "message": f"expected apiVersion {native.API_VERSION} "
                             "and kind Service"})
        if name is not None and (doc_name, doc_ns) != (name, namespace):
            problems.append({"field": "metadata", "message": f"metadata names {doc_ns}/{doc_name}, the URL "
                             f"{namespace}/{name}"})
        body = yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True).encode()
        if not problems:
            result = load_catalog([SourceFile(origin(doc_ns, doc_name), body)], rt.templates)
            problems = [{"file": p.file, "line": p.line, "entity": p.entity, "field": p.field,
                         "severity": p.severity.value, "message": p.message} for p in result.errors]
            if not problems and not result.catalog.services:
                problems.append({"field": "", "message": "the document does not define a service"})
        if problems:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, {"problems": problems})
        return doc_ns, doc_name, body

    def registered(ns: str, name: str, actor: str, created: bool) -> None:
        log.info("registration %s", "created" if created else "updated",
                 extra={"fields": {"service": f"{ns}/{name}", "actor": actor}})
        rt.reconciler.wake(f"registration {ns}/{name}")

    @api.get("/v1/services", tags=["registrations"])
    def list_services(_actor: Reader) -> dict[str, Any]:
        """Every registered service."""
        return {"items": [_registration_dict(r) for r in rt.store.list_registrations()]}

    @api.get("/v1/services/{namespace}/{name}", tags=["registrations"])
    def get_service(namespace: str, name: str, _actor: Reader) -> dict[str, Any]:
        """One registration, with its document."""
        reg = rt.store.get_registration(namespace, name)
        if reg is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{namespace}/{name} is not registered")
        return _registration_dict(reg, with_document=True)

    @api.post("/v1/services", tags=["registrations"], status_code=201, openapi_extra=_DOC_BODY)
    async def create_service(request: Request, actor: Writer) -> JSONResponse:
        """Register a new service (409 when it exists; use PUT to replace)."""
        ns, name, body = validate(await read_document(request), None, None)
        if rt.store.get_registration(ns, name) is not None:
            raise HTTPException(status.HTTP_409_CONFLICT, f"{ns}/{name} is already registered; PUT replaces it")
        rt.store.put_registration(ns, name, body, actor)
        registered(ns, name, actor, True)
        reg = rt.store.get_registration(ns, name)
        assert reg is not None
        return JSONResponse(_registration_dict(reg), status_code=201,
                            headers={"Location": f"/v1/services/{ns}/{name}"})

    @api.put("/v1/services/{namespace}/{name}", tags=["registrations"], openapi_extra=_DOC_BODY,
             responses={201: {"description": "created"}, 200: {"description": "replaced"}})
    async def put_service(namespace: str, name: str, request: Request, actor: Writer) -> JSONResponse:
        """Register or replace a service."""
        ns, nm, body = validate(await read_document(request), namespace, name)
        created = rt.store.put_registration(ns, nm, body, actor)
        registered(ns, nm, actor, created)
        reg = rt.store.get_registration(ns, nm)
        assert reg is not None
        return JSONResponse(_registration_dict(reg), status_code=201 if created else 200)

    @api.delete("/v1/services/{namespace}/{name}", tags=["registrations"], status_code=204)
    def delete_service(namespace: str, name: str, actor: Writer) -> Response:
        """Deregister a service: its artifacts are removed at the next reconcile."""
        if not rt.store.delete_registration(namespace, name, actor):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"{namespace}/{name} is not registered")
        log.info("registration removed", extra={"fields": {"service": f"{namespace}/{name}", "actor": actor}})
        rt.reconciler.wake(f"deregistration {namespace}/{name}")
        return Response(status_code=204)

    # -- status, plan, reconcile -------------------------------------------------------------

    @api.get("/status", tags=["status"])
    def get_status(_actor: Reader) -> dict[str, Any]:
        """The last round, and every service's artifacts summarised."""
        statuses = rt.statuses()
        by_state = Counter(st.state.value for st in statuses)
        services: dict[str, dict[str, Any]] = {}
        for st in statuses:
            entry = services.setdefault(owner_key(st.owner) if st.owner else "", {"artifacts": 0, "failing": 0,
                                                                                   "drift": 0})
            entry["artifacts"] += 1
            entry["failing"] += st.state in FAILED_STATES
            entry["drift"] += st.drifted
        return {"leader": rt.elector.is_leader(), "ready": rt.is_ready(),
                "last_round": rt.store.get_meta("last_round"),
                "artifacts": {"total": len(statuses), "by_state": dict(sorted(by_state.items()))},
                "owners": dict(sorted(services.items())),
                "failing": [_status_dict(st) for st in statuses if st.state in FAILED_STATES]}

    @api.get("/status/{namespace}/{name}", tags=["status"])
    def get_service_status(namespace: str, name: str, _actor: Reader) -> dict[str, Any]:
        """Each artifact of one service (or team): last outcome, digests, drift, error."""
        key = f"{namespace}/{name}"
        rows = [st for st in rt.statuses() if owner_key(st.owner) == key]
        reg = rt.store.get_registration(namespace, name)
        if not rows and reg is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"nothing known about {key}")
        return {"service": key, "registered": _registration_dict(reg) if reg else None,
                "artifacts": [_status_dict(st) for st in rows],
                "in_sync": all(st.state.value in ("applied", "unchanged") for st in rows)}

    @api.get("/plan", tags=["status"])
    def get_plan(_actor: Reader) -> dict[str, Any]:
        """What a reconcile would change now, per sink, with diffs (nothing is written)."""
        return rt.reconciler.plan()

    @api.post("/reconcile", tags=["status"], status_code=202)
    def post_reconcile(actor: Writer) -> dict[str, Any]:
        """Wake the reconcile loop now."""
        leader = rt.elector.is_leader()
        rt.store.audit(actor, "reconcile", "", {"leader": leader})
        if leader:
            rt.reconciler.wake("api")
        return {"accepted": True, "leader": leader,
                "note": "" if leader else "this replica is a follower; the leader resyncs on its own schedule"}

    @api.get("/audit", tags=["status"])
    def get_audit(_actor: Reader, limit: int = 100) -> dict[str, Any]:
        """The newest audit entries (registrations, deregistrations, triggers)."""
        return {"items": [{"at": e.at, "actor": e.actor, "action": e.action, "target": e.target,
                           "detail": e.detail} for e in rt.store.list_audit(min(max(limit, 1), 1000))]}

    # -- SLO reports -------------------------------------------------------------------------

    reports = ReportService(rt.store, lambda: current_catalog(rt.reconciler, rt.source, rt.templates),
                            rt.templates, rt.settings.prometheus.url, clock=clock)

    @api.get("/v1/reports", tags=["reports"], response_class=Response,
             responses={200: {"content": {ctype: {} for ctype, _ in FORMATS.values()},
                              "description": "the report in the asked format"},
                        503: {"description": "no Prometheus URL configured, or Prometheus unreachable"}})
    def get_report(request: Request, _actor: Reader, *, team: str | None = None, service: str | None = None,
                   slo: str | None = None, period: str = "rolling",
                   format: Literal["json", "markdown", "html", "table"] = "json",
                   charts: bool = False, refresh: bool = False) -> Response:
        """Error budgets, burn rates and status of every SLO (the `obsctl slo report` of the service).

        A closed calendar month or quarter is served from its snapshot in the state store (taken
        the first time it is asked for); `refresh=true` (write scope) rebuilds the snapshot.
        """
        if refresh:
            scope(WRITE)(request)
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

    @api.get("/v1/reports/snapshots", tags=["reports"])
    def list_report_snapshots(_actor: Reader) -> dict[str, Any]:
        """The stored report snapshots (closed calendar periods), by key such as `calendar:2026-10`."""
        return {"items": [{"key": key, "period": key.partition(":")[2]} for key in reports.snapshots()]}

    return api
