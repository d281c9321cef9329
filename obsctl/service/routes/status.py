"""Status, plan, reconcile trigger and audit."""

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status

from obsctl.model.status import FAILED_STATES, ArtifactStatus, owner_key
from obsctl.service.auth import READ, WRITE, Principal
from obsctl.service.guard import Access
from obsctl.service.routes.registrations import registration_dict
from obsctl.service.runtime import Runtime


def status_dict(st: ArtifactStatus) -> dict[str, Any]:
    """One artifact status as JSON."""
    return {"sink": st.sink, "id": st.id, "owner": st.owner, "path": st.path, "state": st.state.value,
            "last_action": st.action, "desired_digest": st.desired_digest, "applied_digest": st.applied_digest,
            "drift": st.drifted, "error": st.error, "error_class": st.error_class, "failures": st.failures,
            "next_retry_at": st.next_retry_at, "updated_at": st.updated_at}


def router(rt: Runtime, access: Access) -> APIRouter:
    """`/status`, `/status/{ns}/{name}`, `/plan`, `/reconcile`, `/audit`."""
    api = APIRouter(tags=["status"])
    Reader = Annotated[Principal, Depends(access.dependency(READ))]  # noqa: N806 (a type alias)
    Writer = Annotated[Principal, Depends(access.dependency(WRITE))]  # noqa: N806

    @api.get("/status")
    def get_status(_who: Reader) -> dict[str, Any]:
        """The last round, every service's artifacts summarised, and the services isolated for failing."""
        statuses = rt.statuses()
        by_state = Counter(st.state.value for st in statuses)
        services: dict[str, dict[str, Any]] = {}
        for st in statuses:
            entry = services.setdefault(owner_key(st.owner) if st.owner else "", {"artifacts": 0, "failing": 0,
                                                                                   "drift": 0})
            entry["artifacts"] += 1
            entry["failing"] += st.state in FAILED_STATES
            entry["drift"] += st.drifted
        return {"leader": rt.elector.is_leader(), "ready": rt.readiness()[0],
                "last_round": rt.store.get_meta("last_round"),
                "artifacts": {"total": len(statuses), "by_state": dict(sorted(by_state.items()))},
                "owners": dict(sorted(services.items())),
                "isolated": rt.store.get_meta("isolated") or {},
                "held_after_state_loss": rt.store.get_meta("held_owners") or [],
                "failing": [status_dict(st) for st in statuses if st.state in FAILED_STATES]}

    @api.get("/status/{namespace}/{name}")
    def get_service_status(namespace: str, name: str, _who: Reader) -> dict[str, Any]:
        """Each artifact of one service (or team): last outcome, digests, drift, error."""
        key = f"{namespace}/{name}"
        rows = [st for st in rt.statuses() if owner_key(st.owner) == key]
        reg = rt.store.get_registration(namespace, name)
        isolated = (rt.store.get_meta("isolated") or {}).get(key)
        if not rows and reg is None and isolated is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"nothing known about {key}")
        return {"service": key, "registered": registration_dict(reg) if reg else None,
                "artifacts": [status_dict(st) for st in rows], "isolated": isolated,
                "in_sync": isolated is None and all(st.state.value in ("applied", "unchanged") for st in rows)}

    @api.get("/plan")
    def get_plan(_who: Reader) -> dict[str, Any]:
        """What a reconcile would change now, per sink, with diffs (nothing is written)."""
        return rt.reconciler.plan()

    @api.post("/reconcile", status_code=202)
    def post_reconcile(who: Writer) -> dict[str, Any]:
        """Wake the reconcile loop now."""
        leader = rt.elector.is_leader()
        rt.store.audit(who.actor, "reconcile", "", {"leader": leader})
        if leader:
            rt.reconciler.wake("api", full=True)
        return {"accepted": True, "leader": leader,
                "note": "" if leader else "this replica is a follower; the leader resyncs on its own schedule"}

    @api.post("/v1/state/release")
    def release_held(who: Writer) -> dict[str, Any]:
        """Let go of the services held after the state store was lost (found in the targets, missing from
        the catalog): they are pruned after the usual grace period unless registered again."""
        rt.require_writable()
        released = rt.reconciler.release_held()
        rt.store.audit(who.actor, "release-held", "", {"released": released})
        rt.reconciler.wake("held services released")
        return {"released": released}

    @api.get("/audit")
    def get_audit(_who: Reader, limit: int = 100) -> dict[str, Any]:
        """The newest audit entries (registrations, deregistrations, triggers, isolations)."""
        return {"items": [{"at": e.at, "actor": e.actor, "action": e.action, "target": e.target,
                           "detail": e.detail} for e in rt.store.list_audit(min(max(limit, 1), 1000))]}

    return api
