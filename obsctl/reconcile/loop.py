"""The level-triggered reconcile loop: fetch -> load -> render -> list -> plan -> apply, again and again.

Events (a file changed, a registration arrived) only wake the loop early; every round reads the
whole catalog and every sink, and a periodic full resync always runs. Safety rules:

- no catalog (outage) -> no writes at all; an incomplete catalog -> no deletes;
- a sink whose listing fails is skipped this round (never pruned from a partial view);
- a catalog that shrinks past `max_delete_fraction` is refused and reported, and nothing is written
  until it recovers or the deletion is allowed; a sink plan that would delete past it is applied
  without its deletes;
- a service skipped for spec errors (or whose file broke) keeps its last-known-good model, so
  its artifacts stay as they were instead of being deleted;
- a permanently failing artifact is retried only when its desired digest changes or on the next
  full resync; a temporarily failing one after an exponential backoff (or its Retry-After).

Listing depth: a sink with a `set_depth(deep)` method (Grafana) is told before each listing whether
to read everything it owns (deep: finds edits made outside obsctl) or only what its cheap index says
(fast). Deep on a full resync when the sink's last deep listing is at least its
`deep_check_seconds` old (0 or absent: every full resync); fast on every other round.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from opentelemetry import trace

from obsctl.errors import PermanentError, PruneRefused, Severity, TemporaryError
from obsctl.model.artifact import Artifact, DesiredState
from obsctl.model.entities import Catalog, Service
from obsctl.model.source import SourceFile
from obsctl.model.status import ArtifactState, ArtifactStatus, owner_key
from obsctl.reconcile.apply import Outcome, OutcomeState, RetryPolicy, apply_plan
from obsctl.reconcile.plan import Action, Change, Plan, make_plan
from obsctl.sinks.base import Observed, Sink
from obsctl.sources.base import CatalogSource
from obsctl.spec.load import LoadResult

log = logging.getLogger("obsctl.reconcile")

Loader = Callable[[list[SourceFile]], LoadResult]
Renderer = Callable[[Catalog], DesiredState]


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


@dataclass
class LoopConfig:
    """Plain values the loop needs (the service derives them from settings)."""

    resync_seconds: float = 60.0
    max_delete_fraction: float = 0.5
    allow_mass_delete: bool = False
    max_parallelism: int = 8  # a sink opts in to parallel writes with a `parallelism` attribute
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=3, base_delay=0.2, max_delay=5.0))
    backoff_base: float = 1.0  # seconds before the first round-level retry of a temporary failure
    backoff_max: float = 300.0
    debounce_seconds: float = 0.05  # coalesce bursts of wake-ups


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
                        "problems": self.problems},
            "prune": self.prune, "prune_refused": self.prune_refused, "complete": self.complete,
            "error": self.error,
            "sinks": [{"name": s.name, "listed": s.listed, "error": s.error, "summary": s.summary,
                       "held": s.held, "failed": s.failed, "prune_refused": s.prune_refused} for s in self.sinks],
        }


ErrorHook = Callable[[str, str], None]  # (sink name, error class)


class TracedSink:
    """A sink wrapper that opens a span per call and reports errors by class."""

    def __init__(self, inner: Sink, tracer: trace.Tracer, on_error: ErrorHook | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.kinds = inner.kinds
        self._tracer = tracer
        self._on_error = on_error

    @contextlib.contextmanager
    def _span(self, op: str, artifact_id: str = "") -> Iterator[None]:
        with self._tracer.start_as_current_span(f"sink.{op}") as span:
            span.set_attribute("obsctl.sink", self.name)
            if artifact_id:
                span.set_attribute("obsctl.artifact", artifact_id)
            try:
                yield
            except TemporaryError as exc:
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                self._report("temporary")
                raise
            except PermanentError as exc:
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                self._report("permanent")
                raise

    def _report(self, cls: str) -> None:
        if self._on_error is not None:
            self._on_error(self.name, cls)

    def list_owned(self) -> Mapping[str, Observed]:
        """List, traced."""
        with self._span("list_owned"):
            return self.inner.list_owned()

    def put(self, artifact: Artifact) -> None:
        """Put, traced."""
        with self._span("put", artifact.id):
            self.inner.put(artifact)

    def delete(self, observed: Observed) -> None:
        """Delete, traced."""
        with self._span("delete", observed.id):
            self.inner.delete(observed)

    def finish(self) -> None:
        """Finish, traced."""
        with self._span("finish"):
            self.inner.finish()


def _skipped_keys(skipped: Sequence[str]) -> set[str]:
    return {owner_key(ref) for ref in skipped if ":" in ref and "/" in ref and "#" not in ref}


def _svc_key(svc: Service) -> str:
    return f"{svc.ref.namespace}/{svc.ref.name}"


@dataclass
class _Desired:
    catalog: Catalog
    desired: DesiredState
    complete: bool
    skipped: list[str]
    carried: list[str]
    protected: set[str]  # owner keys whose artifacts must not be pruned
    problems: list[str]
    last_good: dict[str, Service]


class Reconciler:
    """Runs rounds on demand (`run_once`) or forever on a thread (`start`/`stop`)."""

    def __init__(self, source: CatalogSource, load: Loader, render: Renderer, sinks: Sequence[Sink], *,
                 config: LoopConfig | None = None, recorder: Recorder | None = None,
                 is_leader: Callable[[], bool] = lambda: True, tracer: trace.Tracer | None = None,
                 on_error: ErrorHook | None = None, on_round: Callable[[RoundReport], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self._load = load
        self._render = render
        self.config = config or LoopConfig()
        self._tracer = tracer or trace.get_tracer("obsctl.reconcile")
        self.sinks: list[TracedSink] = [TracedSink(s, self._tracer, on_error) for s in sinks]
        self._recorder = recorder
        self._is_leader = is_leader
        self._on_round = on_round
        self._clock = clock
        self._lock = threading.RLock()
        self._round_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending_reasons: list[str] = []
        self._last_good: dict[str, Service] = {}
        self._render_cache: tuple[Catalog, DesiredState] | None = None
        self._baseline_services: int | None = None
        self._catalog_failures = 0
        self._catalog_retry_at: float | None = None
        self._last_deep: dict[str, float] = {}  # sink name -> monotonic time of its last deep listing
        self.statuses: dict[tuple[str, str], ArtifactStatus] = {}
        self.last_report: RoundReport | None = None
        self.last_catalog_ok_at: float | None = None
        self.ready = threading.Event()
        self.rounds = 0
        self.reload()

    def reload(self) -> None:
        """Start from the recorded statuses and shrink baseline (at start, and on becoming leader)."""
        if self._recorder is None:
            return
        with self._round_lock:
            statuses = self._recorder.load_statuses()
            baseline = self._recorder.get_meta("baseline_services")
            with self._lock:
                self.statuses = {st.key: st for st in statuses}
                self._baseline_services = int(baseline) if isinstance(baseline, int) else None

    # -- waking ------------------------------------------------------------------------------

    def wake(self, reason: str = "event") -> None:
        """Ask for a round soon (events never act on their own: the round reads everything)."""
        with self._lock:
            self._pending_reasons.append(reason)
        self._wake.set()

    def queue_depth(self) -> int:
        """Wake-ups not yet served plus artifacts waiting for a retry."""
        with self._lock:
            waiting = sum(1 for s in self.statuses.values() if s.state is ArtifactState.HELD
                          or s.state is ArtifactState.FAILED_TEMPORARY)
            return len(self._pending_reasons) + waiting

    @property
    def catalog(self) -> Catalog | None:
        """The catalog of the last successful load and render (None before the first one)."""
        cached = self._render_cache
        return cached[0] if cached is not None else None

    def desired_state(self) -> DesiredState | None:
        """The desired state of the last render (None before the first)."""
        cached = self._render_cache
        return cached[1] if cached is not None else None

    def forget(self, key: str) -> None:
        """A service removed on purpose (`namespace/name`): never carry it forward or keep it for a grace."""
        with self._lock:
            self._last_good.pop(key, None)

    def snapshot(self) -> list[ArtifactStatus]:
        """A copy of every artifact status."""
        with self._lock:
            return sorted(self.statuses.values(), key=lambda s: s.key)

    # -- desired state -----------------------------------------------------------------------

    def _desired(self, files: list[SourceFile], complete: bool) -> _Desired:
        with self._tracer.start_as_current_span("catalog.load"):
            result = self._load(files)
        skipped_keys = _skipped_keys(result.skipped)
        broken_files = {p.file for p in result.problems if p.severity is Severity.ERROR}
        current = {_svc_key(s): s for s in result.catalog.services}
        with self._lock:
            last_good = dict(self._last_good)
        carried: list[str] = []
        for key, svc in sorted(last_good.items()):
            keep = key in skipped_keys or (key not in current and (svc.origin.file in broken_files or not complete))
            if keep:
                current[key] = svc
                carried.append(str(svc.ref))
        services = tuple(v for _, v in sorted(current.items()))
        catalog = Catalog(services, result.catalog.teams)
        with self._tracer.start_as_current_span("render") as span:
            cached = self._render_cache
            if cached is not None and cached[0] == catalog:
                desired = cached[1]  # renderers are pure: the same catalog renders the same bytes
                span.set_attribute("obsctl.cached", True)
            else:
                desired = self._render(catalog)
                self._render_cache = (catalog, desired)
            span.set_attribute("obsctl.artifacts", len(desired))
        protected = {k for k in skipped_keys if k not in current}
        return _Desired(catalog, desired, complete, list(result.skipped), carried, protected,
                        [str(p) for p in result.problems if p.severity is Severity.ERROR], dict(current))

    def _owner_of(self, sink: str, aid: str) -> str:
        st = self.statuses.get((sink, aid))
        return st.owner if st else ""

    def _catalog_refusal(self, count: int) -> str:
        base = self._baseline_services
        if base is None or self.config.allow_mass_delete:
            return ""
        lost = base - count
        if lost > 1 and lost > self.config.max_delete_fraction * base:
            return (f"catalog shrank from {base} to {count} services (more than "
                    f"{self.config.max_delete_fraction:.0%}); not pruning until allowed (allow_mass_delete)")
        return ""

    # -- one round ---------------------------------------------------------------------------

    def run_once(self, full: bool = True, reason: str = "manual") -> RoundReport:
        """One reconcile round. Never raises for catalog or sink failures: they are in the report."""
        with self._round_lock, self._tracer.start_as_current_span("reconcile") as span:
            span.set_attribute("obsctl.full_resync", full)
            report = RoundReport(started_at=self._clock(), full_resync=full, reason=reason)
            try:
                self._round(report, full)
            except Exception as exc:  # a renderer or loader bug: report it, keep serving
                log.exception("reconcile round failed")
                report.error = f"{type(exc).__name__}: {exc}"
                span.set_status(trace.Status(trace.StatusCode.ERROR, report.error))
            report.finished_at = self._clock()
            with self._lock:
                self.last_report = report
                self.rounds += 1
            if report.complete:
                self.ready.set()
            if self._recorder is not None and report.leader:  # a follower never overwrites the leader's record
                try:
                    self._recorder.set_meta("last_round", report.as_dict())
                except Exception:
                    log.exception("could not record the round")
            if self._on_round is not None:
                self._on_round(report)
            log.info("reconcile round", extra={"fields": {
                "full": full, "reason": reason, "duration_s": round(report.duration, 4),
                "complete": report.complete, "services": report.services,
                "sinks": {s.name: s.summary for s in report.sinks}, "catalog_error": report.catalog_error,
                "prune_refused": report.prune_refused, "error": report.error}})
            return report

    def _round(self, report: RoundReport, full: bool) -> None:
        report.leader = self._is_leader()
        if not report.leader:
            return
        with self._tracer.start_as_current_span("catalog.fetch"):
            try:
                fetched = self.source.fetch()
            except (TemporaryError, PermanentError) as exc:
                report.catalog_error = str(exc)
                self._catalog_failures += 1
                retry_after = exc.retry_after if isinstance(exc, TemporaryError) else None
                delay = min(self.config.backoff_max,
                            max(self.config.backoff_base * 2 ** (self._catalog_failures - 1), retry_after or 0))
                self._catalog_retry_at = time.monotonic() + delay
                return
        self._catalog_failures = 0
        self._catalog_retry_at = None
        report.catalog_ok = True
        report.catalog_complete = fetched.complete
        with self._lock:
            self.last_catalog_ok_at = self._clock()
        d = self._desired(fetched.files, fetched.complete)
        report.services = len(d.catalog.services)
        report.skipped, report.carried, report.problems = d.skipped, d.carried, d.problems
        prune = fetched.complete
        refusal = self._catalog_refusal(report.services) if prune else ""
        if refusal:
            # A catalog that suddenly lost most of its services is not trusted for anything: writing
            # the rest would rewrite shared artifacts (team dashboards, routes) without the missing ones.
            report.prune_refused.append(refusal)
            report.prune = False
            return
        report.prune = prune
        with self._lock:
            self._last_good = d.last_good
        all_listed = True
        for sink in self.sinks:
            if not self._is_leader():  # lost the lock mid-round: stop writing now
                report.leader = False
                report.error = "leadership lost during the round"
                return
            sr = self._reconcile_sink(sink, d, prune, full)
            report.sinks.append(sr)
            all_listed = all_listed and sr.listed
            if sr.prune_refused:
                report.prune_refused.append(f"{sink.name}: {sr.prune_refused}")
        # The shrink baseline moves only on a clean, pruning round: a refused shrink stays refused.
        if prune and all_listed and not any(s.prune_refused for s in report.sinks):
            self._baseline_services = report.services
            if self._recorder is not None:
                self._recorder.set_meta("baseline_services", report.services)

    def _hold(self, change: Change, sink: str, full: bool, now: float) -> bool:
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

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _choose_depth(self, sink: TracedSink, full: bool) -> bool:
        """Tell a sink that lists at two depths which one this round needs; True when deep."""
        set_depth = getattr(sink.inner, "set_depth", None)
        if set_depth is None:
            return False
        every = float(getattr(sink.inner, "deep_check_seconds", 0.0) or 0.0)
        last = self._last_deep.get(sink.name)
        deep = full and (last is None or time.monotonic() - last >= every)
        set_depth(deep)
        return deep

    def _reconcile_sink(self, sink: TracedSink, d: _Desired, prune: bool, full: bool) -> SinkReport:
        sr = SinkReport(sink.name)
        desired = {aid: a for aid, a in d.desired.items() if a.kind in sink.kinds}
        prepare = getattr(sink.inner, "prepare", None)  # e.g. Grafana learns folder titles before dashboards land
        if prepare is not None:
            prepare(desired.values())
        deep = self._choose_depth(sink, full)
        try:
            owned = dict(sink.list_owned())
            if deep:
                self._last_deep[sink.name] = time.monotonic()
        except (TemporaryError, PermanentError, OSError) as exc:
            sr.listed, sr.error = False, f"list_owned failed: {exc}"
            now = self._clock()
            with self._lock:
                for aid, art in desired.items():
                    st = self.statuses.get((sink.name, aid))
                    if st is None or st.desired_digest != art.digest:
                        self.statuses[(sink.name, aid)] = ArtifactStatus(
                            sink.name, aid, art.owner, art.path, "", ArtifactState.PENDING, art.digest,
                            st.applied_digest if st else "", False, sr.error, "", 0, None, now)
            return sr
        with self._lock:
            plan_owned = {aid: obs for aid, obs in owned.items()
                          if aid in desired or owner_key(self._owner_of(sink.name, aid)) not in d.protected}
        try:
            plan = make_plan(desired, plan_owned, prune=prune, max_delete_fraction=self.config.max_delete_fraction,
                             allow_mass_delete=self.config.allow_mass_delete)
        except PruneRefused as exc:
            sr.prune_refused = str(exc)
            plan = make_plan(desired, plan_owned, prune=False)
        sr.summary = plan.summary()
        now = self._clock()
        with self._lock:
            held = [c for c in plan.writes if self._hold(c, sink.name, full, now)]
        held_ids = {c.id for c in held}
        todo = Plan([c for c in plan.changes if c.id not in held_ids])
        sr.held = len(held)
        retry = replace(self.config.retry, sleep=self._interruptible_sleep)
        with self._tracer.start_as_current_span("sink.apply") as span:
            span.set_attribute("obsctl.sink", sink.name)
            span.set_attribute("obsctl.writes", len(todo.writes))
            # sinks are sequential unless they say they are thread-safe (FilesSink rewrites its manifest)
            parallelism = max(1, min(int(getattr(sink.inner, "parallelism", 1)), self.config.max_parallelism))
            result = apply_plan(sink, todo, retry, parallelism=parallelism)
        changes = {c.id: c for c in plan.changes}
        saved: list[ArtifactStatus] = []
        forgotten: list[tuple[str, str]] = []
        with self._lock:
            for c in held:
                st = self.statuses[(sink.name, c.id)]
                self.statuses[st.key] = replace(st, state=ArtifactState.HELD, drifted=bool(c.observed and
                                                                                             c.observed.drifted))
            for o in result.outcomes:
                if o.id == "finish":
                    sr.failed += 1
                    continue
                st_new = self._status_from(sink.name, o, changes.get(o.id), now)
                if st_new is None:
                    forgotten.append((sink.name, o.id))
                    self.statuses.pop((sink.name, o.id), None)
                    continue
                if st_new.state in (ArtifactState.FAILED_PERMANENT, ArtifactState.FAILED_TEMPORARY):
                    sr.failed += 1
                old = self.statuses.get(st_new.key)
                if old is not None and replace(old, updated_at=st_new.updated_at) == st_new:
                    continue  # nothing new: keep the time of the last change, write nothing
                self.statuses[st_new.key] = st_new
                saved.append(st_new)
            # statuses of artifacts that are neither desired nor owned any more
            for key in [k for k in self.statuses if k[0] == sink.name and k[1] not in desired
                        and k[1] not in owned]:
                forgotten.append(key)
                del self.statuses[key]
        if self._recorder is not None:
            if saved:
                self._recorder.save_statuses(saved)
            if forgotten:
                self._recorder.delete_statuses(forgotten)
        return sr

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
            delay = min(self.config.backoff_max, self.config.backoff_base * 2 ** (failures - 1))
            delay = max(delay, o.retry_after or 0.0)
            next_retry = now + delay
        desired_digest = art.digest if art else ""
        return ArtifactStatus(sink, o.id, owner, path, o.action.value,
                              ArtifactState.FAILED_PERMANENT if permanent else ArtifactState.FAILED_TEMPORARY,
                              desired_digest, prev.applied_digest if prev else "", drifted, o.error,
                              "permanent" if permanent else "temporary", failures, next_retry, now)

    # -- dry run -----------------------------------------------------------------------------

    def plan(self) -> dict[str, Any]:
        """What a round would do now, per sink, without writing (diffs included)."""
        out: dict[str, Any] = {"catalog": {}, "sinks": {}}
        try:
            fetched = self.source.fetch()
        except (TemporaryError, PermanentError) as exc:
            out["catalog"] = {"ok": False, "error": str(exc)}
            return out
        d = self._desired(fetched.files, fetched.complete)
        out["catalog"] = {"ok": True, "complete": fetched.complete, "services": len(d.catalog.services),
                          "skipped": d.skipped, "carried_forward": d.carried, "problems": d.problems}
        refusal = self._catalog_refusal(len(d.catalog.services)) if fetched.complete else ""
        for sink in self.sinks:
            desired = {aid: a for aid, a in d.desired.items() if a.kind in sink.kinds}
            try:
                owned = dict(sink.list_owned())
            except (TemporaryError, PermanentError, OSError) as exc:
                out["sinks"][sink.name] = {"error": f"list_owned failed: {exc}"}
                continue
            with self._lock:
                owned = {aid: obs for aid, obs in owned.items()
                         if aid in desired or owner_key(self._owner_of(sink.name, aid)) not in d.protected}
            refused = refusal
            try:
                plan = make_plan(desired, owned, prune=fetched.complete and not refusal,
                                 max_delete_fraction=self.config.max_delete_fraction,
                                 allow_mass_delete=self.config.allow_mass_delete)
            except PruneRefused as exc:
                refused = str(exc)
                plan = make_plan(desired, owned, prune=False)
            out["sinks"][sink.name] = {
                "summary": plan.summary(), "prune_refused": refused,
                "changes": [{"action": c.action.value, "id": c.id, "path": c.path,
                             **({"diff": c.diff()} if c.action is Action.UPDATE else {})} for c in plan.writes]}
        return out

    # -- the loop ----------------------------------------------------------------------------

    def _seconds_to_next(self, next_full: float) -> float:
        """Seconds until the next full resync, artifact retry or catalog retry, whichever is first."""
        mono, now = time.monotonic(), self._clock()
        wait = next_full - mono
        with self._lock:
            for st in self.statuses.values():
                if st.error_class == "temporary" and st.next_retry_at is not None:
                    wait = min(wait, st.next_retry_at - now)
        if self._catalog_retry_at is not None:
            wait = min(wait, self._catalog_retry_at - mono)
        return max(0.0, wait)

    def run(self) -> None:
        """Rounds until stop(): at start, on wake-ups, at retry times, and a full resync periodically."""
        next_full = 0.0
        reason = "start"
        while not self._stop.is_set():
            now = time.monotonic()
            full = now >= next_full
            if full:
                next_full = now + self.config.resync_seconds
            self._wake.clear()
            with self._lock:
                self._pending_reasons.clear()
            self.run_once(full=full, reason=reason)
            woke = self._wake.wait(self._seconds_to_next(next_full))
            if self._stop.is_set():
                break
            if woke and self.config.debounce_seconds > 0:
                self._stop.wait(self.config.debounce_seconds)
            with self._lock:
                reasons = sorted(set(self._pending_reasons))
            reason = ",".join(reasons) if reasons else ("resync" if time.monotonic() >= next_full else "retry")

    def start(self) -> None:
        """Run the loop on a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="obsctl-reconcile", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop after the in-flight round (its apply finishes; retry sleeps are cut short)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def stopping(self) -> threading.Event:
        """Set once stop() was called."""
        return self._stop
