"""Artifact statuses: what each sink holds of each artifact, kept in memory and in the recorder.

The status book decides which failed writes wait (the held-retry rule) and turns each converge
run into status rows and a report line; `RoundReport` is what a whole round did.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from obsctl.model.status import ArtifactState, ArtifactStatus
from obsctl.reconcile.apply import Outcome, OutcomeState
from obsctl.reconcile.converge import SinkRun
from obsctl.reconcile.plan import Action, Change


class Recorder(Protocol):
    """Where the loop persists what it did (the state store implements this)."""

    def save_statuses(self, statuses: Sequence[ArtifactStatus]) -> None:
        """Insert or replace status rows."""
        ...

    def delete_statuses(self, keys: Sequence[tuple[str, str]]) -> None:
        """Forget status rows (artifacts deleted from their sink)."""
        ...

    def load_statuses(self) -> list[ArtifactStatus]:
        """Every status row (used at start-up)."""
        ...

    def set_meta(self, key: str, value: Any) -> None:
        """Store a small JSON value."""
        ...

    def get_meta(self, key: str) -> Any:
        """A stored JSON value or None."""
        ...

    def audit(self, actor: str, action: str, target: str = "", detail: Mapping[str, Any] | None = None) -> None:
        """Append to the audit trail (a service isolated or recovered)."""
        ...


@dataclass
class SinkReport:
    """What one round did to one sink."""

    name: str
    listed: bool = True
    error: str = ""
    summary: dict[str, int] = field(default_factory=dict)
    held: int = 0
    failed: int = 0
    prune_refused: str = ""
    stale: str = ""  # the backend runs an older config than obsctl wrote: why (its last reload's error)


@dataclass
class RoundReport:
    """One reconcile round, for status, metrics and logs."""

    started_at: float
    finished_at: float = 0.0
    full_resync: bool = False
    reason: str = ""
    leader: bool = True
    catalog_ok: bool = False
    catalog_complete: bool = False
    catalog_error: str = ""
    services: int = 0
    skipped: list[str] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    prune: bool = False
    prune_refused: list[str] = field(default_factory=list)
    sinks: list[SinkReport] = field(default_factory=list)
    planned: int | None = None  # artifacts an event round planned (those that may have changed); None: all
    isolated: dict[str, str] = field(default_factory=dict)  # owner key -> why it did not render
    absent: dict[str, float] = field(default_factory=dict)  # owner key -> seconds left before it may be pruned
    held_owners: list[str] = field(default_factory=list)  # found in the targets after the state store was lost
    error: str = ""

    @property
    def duration(self) -> float:
        """Seconds the round took."""
        return max(0.0, self.finished_at - self.started_at)

    @property
    def complete(self) -> bool:
        """The catalog was read completely and every sink was listed and planned."""
        return self.catalog_ok and self.catalog_complete and not self.error and all(s.listed for s in self.sinks)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able summary."""
        return {
            "started_at": self.started_at, "finished_at": self.finished_at, "duration_seconds": self.duration,
            "full_resync": self.full_resync, "reason": self.reason, "leader": self.leader,
            "catalog": {"ok": self.catalog_ok, "complete": self.catalog_complete, "error": self.catalog_error,
                        "services": self.services, "skipped": self.skipped, "carried_forward": self.carried,
                        "problems": self.problems, "isolated": self.isolated,
                        "absent_in_grace": {k: round(v, 1) for k, v in self.absent.items()},
                        "held_after_state_loss": self.held_owners},
            "prune": self.prune, "prune_refused": self.prune_refused, "complete": self.complete,
            "error": self.error, "planned": self.planned,
            "sinks": [{"name": s.name, "listed": s.listed, "error": s.error, "summary": s.summary,
                       "held": s.held, "failed": s.failed, "prune_refused": s.prune_refused,
                       "stale": s.stale} for s in self.sinks],
        }


_SETTLED = (ArtifactState.APPLIED, ArtifactState.UNCHANGED)


class StatusBook:
    """Every artifact's status by (sink, artifact id), mirrored to the recorder when there is one."""

    def __init__(self, recorder: Recorder | None = None, backoff_base: float = 1.0,
                 backoff_max: float = 300.0) -> None:
        self.recorder = recorder
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._lock = threading.RLock()
        self.statuses: dict[tuple[str, str], ArtifactStatus] = {}
        self._unsettled: set[tuple[str, str]] = set()  # keys of the statuses not applied nor unchanged
        self._owners: Counter[str] = Counter()  # owner -> how many statuses name it

    def _put(self, st: ArtifactStatus) -> None:
        old = self.statuses.get(st.key)
        if old is not None:
            self._count(old.owner, -1)
        self._count(st.owner, 1)
        self.statuses[st.key] = st
        if st.state in _SETTLED:
            self._unsettled.discard(st.key)
        else:
            self._unsettled.add(st.key)

    def _drop(self, key: tuple[str, str]) -> None:
        old = self.statuses.pop(key, None)
        if old is not None:
            self._count(old.owner, -1)
        self._unsettled.discard(key)

    def _count(self, owner: str, delta: int) -> None:
        if not owner:
            return
        left = self._owners[owner] + delta
        if left > 0:
            self._owners[owner] = left
        else:
            self._owners.pop(owner, None)

    def load(self, statuses: Sequence[ArtifactStatus]) -> None:
        """Start from recorded statuses (at start, and on becoming leader)."""
        with self._lock:
            self.statuses = {st.key: st for st in statuses}
            self._unsettled = {key for key, st in self.statuses.items() if st.state not in _SETTLED}
            self._owners = Counter(st.owner for st in self.statuses.values() if st.owner)

    def snapshot(self) -> list[ArtifactStatus]:
        """A copy of every artifact status."""
        with self._lock:
            return sorted(self.statuses.values(), key=lambda s: s.key)

    def waiting(self) -> int:
        """Artifacts held back or waiting for a retry."""
        with self._lock:
            return sum(1 for s in self.statuses.values()
                       if s.state is ArtifactState.HELD or s.state is ArtifactState.FAILED_TEMPORARY)

    def next_retry_at(self) -> float | None:
        """The earliest retry time of a temporarily failed artifact (clock time), None when none waits."""
        with self._lock:
            times = [st.next_retry_at for st in self.statuses.values()
                     if st.error_class == "temporary" and st.next_retry_at is not None]
        return min(times) if times else None

    def unsettled(self) -> set[str]:
        """Ids of the artifacts some sink does not hold as desired yet (failed, held back or pending)."""
        with self._lock:
            return {key[1] for key in self._unsettled}

    def owner_of(self, sink: str, aid: str) -> str:
        """The owner recorded with an artifact ("" when unknown)."""
        with self._lock:
            st = self.statuses.get((sink, aid))
        return st.owner if st else ""

    def owners(self) -> set[str]:
        """Every owner some status names."""
        with self._lock:
            return set(self._owners)

    def hold(self, change: Change, sink: str, full: bool, now: float) -> bool:
        """Skip this write for now: it failed before with the same desired content (permanent: until a
        full resync; temporary: until its retry time)."""
        with self._lock:
            st = self.statuses.get((sink, change.id))
        if st is None or st.state not in (ArtifactState.FAILED_PERMANENT, ArtifactState.FAILED_TEMPORARY,
                                          ArtifactState.HELD):
            return False
        digest = change.artifact.digest if change.artifact else ""
        if digest != st.desired_digest:
            return False  # the desired content changed: try it now
        if st.error_class == "permanent":
            return not full
        return st.next_retry_at is not None and now < st.next_retry_at

    def record(self, run: SinkRun, now: float) -> SinkReport:
        """Statuses from one sink's run, kept in memory and in the recorder; the sink's line of the report."""
        sink = run.sink
        sr = SinkReport(sink.name, listed=run.listed, error=run.error)
        if not run.listed:
            with self._lock:
                for aid, art in run.desired.items():
                    st = self.statuses.get((sink.name, aid))
                    if st is None or st.desired_digest != art.digest:
                        self._put(ArtifactStatus(
                            sink.name, aid, art.owner, art.path, "", ArtifactState.PENDING, art.digest,
                            st.applied_digest if st else "", False, sr.error, "", 0, None, now))
            return sr
        sr.summary = run.plan.summary()
        sr.stale = run.stale
        sr.held = len(run.held)
        sr.prune_refused = run.prune_refused
        result = run.result
        assert result is not None
        changes = {c.id: c for c in run.plan.changes}
        saved: list[ArtifactStatus] = []
        forgotten: list[tuple[str, str]] = []
        with self._lock:
            for c in run.held:
                st = self.statuses[(sink.name, c.id)]
                self._put(replace(st, state=ArtifactState.HELD, drifted=bool(c.observed and c.observed.drifted)))
            for o in result.outcomes:
                if o.id == "finish":
                    sr.failed += 1
                    continue
                change = changes.get(o.id)
                if o.state is OutcomeState.UNCHANGED and self._settled(sink.name, o.digest, change):
                    continue  # still as last recorded: nothing new to keep (most of a full resync)
                st_new = self._status_from(sink.name, o, change, now)
                if st_new is None:
                    forgotten.append((sink.name, o.id))
                    self._drop((sink.name, o.id))
                    continue
                if st_new.state in (ArtifactState.FAILED_PERMANENT, ArtifactState.FAILED_TEMPORARY):
                    sr.failed += 1
                old = self.statuses.get(st_new.key)
                if old is not None and replace(old, updated_at=st_new.updated_at) == st_new:
                    continue  # nothing new: keep the time of the last change, write nothing
                self._put(st_new)
                saved.append(st_new)
            # statuses of artifacts that are neither desired nor owned any more
            for key in [k for k in self.statuses if k[0] == sink.name and k[1] not in run.desired
                        and k[1] not in run.owned]:
                forgotten.append(key)
                self._drop(key)
        if self.recorder is not None:
            if saved:
                self.recorder.save_statuses(saved)
            if forgotten:
                self.recorder.delete_statuses(forgotten)
        return sr

    def _settled(self, sink: str, digest: str, change: Change | None) -> bool:
        """An unchanged outcome whose status already says so (what `_status_from` would build, but the time)."""
        art = change.artifact if change else None
        if art is None or (change is not None and change.observed is not None and change.observed.drifted):
            return False
        prev = self.statuses.get((sink, art.id))
        return (prev is not None and prev.state in (ArtifactState.APPLIED, ArtifactState.UNCHANGED)
                and prev.desired_digest == digest and prev.applied_digest == digest and not prev.drifted
                and not prev.error and not prev.error_class and prev.failures == 0 and prev.next_retry_at is None
                and prev.owner == art.owner and prev.path == art.path)

    def _status_from(self, sink: str, o: Outcome, change: Change | None, now: float) -> ArtifactStatus | None:
        art = change.artifact if change else None
        prev = self.statuses.get((sink, o.id))
        owner = art.owner if art else (prev.owner if prev else "")
        path = art.path if art else (prev.path if prev else "")
        drifted = bool(change and change.observed and change.observed.drifted)
        if o.state is OutcomeState.APPLIED and o.action is Action.DELETE:
            return None
        if o.state in (OutcomeState.APPLIED, OutcomeState.UNCHANGED):
            state = ArtifactState.APPLIED if o.state is OutcomeState.APPLIED else ArtifactState.UNCHANGED
            if prev is not None and prev.state is ArtifactState.APPLIED and prev.applied_digest == o.digest:
                state = ArtifactState.APPLIED  # still what obsctl last wrote
                drifted = drifted or prev.drifted  # "the last write repaired drift" stays visible
            # an unchanged row keeps its last write's action, so status says how it got there
            action = o.action.value if o.state is OutcomeState.APPLIED else (prev.action if prev else "unchanged")
            # drifted: the last round found it edited outside obsctl (and, when applied, overwrote it)
            return ArtifactStatus(sink, o.id, owner, path, action, state, o.digest, o.digest, drifted, "", "", 0,
                                  None, now)
        failures = (prev.failures if prev else 0) + 1
        permanent = o.state is OutcomeState.FAILED_PERMANENT
        next_retry: float | None = None
        if not permanent:
            delay = min(self._backoff_max, self._backoff_base * 2 ** (failures - 1))
            delay = max(delay, o.retry_after or 0.0)
            next_retry = now + delay
        desired_digest = art.digest if art else ""
        return ArtifactStatus(sink, o.id, owner, path, o.action.value,
                              ArtifactState.FAILED_PERMANENT if permanent else ArtifactState.FAILED_TEMPORARY,
                              desired_digest, prev.applied_digest if prev else "", drifted, o.error,
                              "permanent" if permanent else "temporary", failures, next_retry, now)
