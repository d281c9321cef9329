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
- a service that fails to render, or collides with another owner's identifiers, is isolated: its last
  good artifacts stay, its failure is in the report (status, metrics, audit), every other service goes on;
- no deletion on a blink: a service missing from a complete read is carried forward (its artifacts
  kept as they were) until it has been absent for `deletion_grace_seconds` and `deletion_reads` complete
  reads; owners known only from the targets or the recorded statuses (after a restart) are protected
  the same way. An explicit deregistration (`forget`) skips the grace;
- a permanently failing artifact is retried only when its desired digest changes or on the next
  full resync; a temporarily failing one after an exponential backoff (or its Retry-After).

Listing depth: a sink whose contract lists at two depths (Grafana) is listed deep (reads everything it
owns: finds edits made outside obsctl) on a full resync when its last deep listing is at least its
`deep_every_seconds` old (0: every full resync), and fast (its cheap index) on every other round.

The plan and apply of a round are `converge.converge`, the path every command shares. This module
schedules rounds and keeps the shrink guard; each round's desired state (carry-forward, grace, held
and frozen owners) is built by `desired.DesiredStates`, statuses and held retries live in
`status.StatusBook`, sink spans in `tracing.TracedSink`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry import trace

from obsctl.errors import PermanentError, TemporaryError
from obsctl.model.artifact import DesiredState, Kind
from obsctl.model.entities import Catalog
from obsctl.model.source import SourceFile
from obsctl.model.status import ArtifactStatus, owner_key
from obsctl.reconcile.apply import RetryPolicy
from obsctl.reconcile.converge import (
    ALL_KINDS,
    ConvergeReport,
    Hooks,
    Policy,
    SinkRun,
    changes_as_dicts,
    converge,
)
from obsctl.reconcile.desired import Desired, DesiredStates, Loader, Renderer, RoutesInPlace
from obsctl.reconcile.plan import Change
from obsctl.reconcile.routes_in_place import config_in_place
from obsctl.reconcile.status import Recorder, RoundReport, SinkReport, StatusBook
from obsctl.reconcile.tracing import ErrorHook, TracedSink
from obsctl.render.options import HeldRoutes
from obsctl.sinks.base import Sink
from obsctl.sources.base import CatalogSource, ChangeTrackingSource

__all__ = ["ErrorHook", "Loader", "LoopConfig", "Reconciler", "Recorder", "Renderer", "RoundReport", "SinkReport",
           "TracedSink"]

log = logging.getLogger("obsctl.reconcile")

@dataclass
class LoopConfig:
    """Plain values the loop needs (the service derives them from settings)."""

    resync_seconds: float = 60.0
    max_delete_fraction: float = 0.5
    allow_mass_delete: bool = False
    max_parallelism: int = 8  # a sink opts in to parallel writes in its contract
    selection: frozenset[Kind] = ALL_KINDS  # the `outputs` setting: nothing outside it is written or pruned
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=3, base_delay=0.2, max_delay=5.0))
    backoff_base: float = 1.0  # seconds before the first round-level retry of a temporary failure
    backoff_max: float = 300.0
    debounce_seconds: float = 0.05  # coalesce bursts of wake-ups
    # a service absent from the catalog is deleted only after this long AND this many complete reads
    deletion_grace_seconds: float = 0.0
    deletion_reads: int = 1


class Reconciler:
    """Runs rounds on demand (`run_once`) or forever on a thread (`start`/`stop`)."""

    def __init__(self, source: CatalogSource, load: Loader, render: Renderer, sinks: Sequence[Sink], *,
                 config: LoopConfig | None = None, recorder: Recorder | None = None,
                 is_leader: Callable[[], bool] = lambda: True, tracer: trace.Tracer | None = None,
                 on_error: ErrorHook | None = None, on_round: Callable[[RoundReport], None] | None = None,
                 clock: Callable[[], float] = time.time,
                 hold_routes: Callable[[tuple[HeldRoutes, ...]], None] | None = None) -> None:
        self.source = source
        self.config = config or LoopConfig()
        self._tracer = tracer or trace.get_tracer("obsctl.reconcile")
        self.sinks: list[TracedSink] = [TracedSink(s, self._tracer, on_error) for s in sinks]
        self._recorder = recorder
        self._book = StatusBook(recorder, self.config.backoff_base, self.config.backoff_max)
        self._is_leader = is_leader
        self._on_round = on_round
        self._clock = clock
        self._lock = threading.RLock()
        self._round_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsettled = False  # a full round's garbage is not collected yet (see run)
        self._pending_reasons: list[str] = []
        self._full_requested = False
        # `hold_routes`: the renderer's (IncrementalRenderer.hold_routes): a team whose routing is lost with no last
        # good Group (after a restart) keeps its part of the Alertmanager config in place
        routes = RoutesInPlace(lambda: config_in_place(self.sinks), hold_routes) if hold_routes is not None else None
        self._states = DesiredStates(load, render, grace_seconds=self.config.deletion_grace_seconds,
                                     grace_reads=self.config.deletion_reads, tracer=self._tracer, routes=routes)
        self._baseline_services: int | None = None
        self._catalog_failures = 0
        self._catalog_retry_at: float | None = None
        self._last_deep: dict[str, float] = {}  # sink name -> monotonic time of its last deep listing
        # the desired state (and its protected and frozen owners) every sink was last converged to in full:
        # an event round plans only what differs from it
        self._converged: tuple[DesiredState, frozenset[str], frozenset[str]] | None = None
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
            self._converged = None
            self._book.load(self._recorder.load_statuses())
            baseline = self._recorder.get_meta("baseline_services")
            self._states.restore(self._recorder)
            with self._lock:
                self._baseline_services = int(baseline) if isinstance(baseline, int) else None

    # -- waking ------------------------------------------------------------------------------

    def wake(self, reason: str = "event", full: bool = False) -> None:
        """Ask for a round soon (events never act on their own: the round reads what changed, and a
        `full` one, like the periodic resync, reads and checks everything)."""
        with self._lock:
            self._pending_reasons.append(reason)
            self._full_requested = self._full_requested or full
        self._wake.set()

    def queue_depth(self) -> int:
        """Wake-ups not yet served plus artifacts waiting for a retry."""
        with self._lock:
            pending = len(self._pending_reasons)
        return pending + self._book.waiting()

    @property
    def catalog(self) -> Catalog | None:
        """The catalog of the last successful load and render (None before the first one)."""
        return self._states.catalog

    def desired_state(self) -> DesiredState | None:
        """The desired state of the last render (None before the first)."""
        return self._states.desired_state

    def forget(self, key: str) -> None:
        """A service removed on purpose (`namespace/name`): never carry it forward or keep it for a grace."""
        self._states.forget(key)

    def snapshot(self) -> list[ArtifactStatus]:
        """A copy of every artifact status."""
        return self._book.snapshot()

    @property
    def statuses(self) -> dict[tuple[str, str], ArtifactStatus]:
        """Every artifact status by (sink, artifact id) (the live table: read, do not write)."""
        return self._book.statuses

    # -- desired state -----------------------------------------------------------------------

    def _desired(self, files: list[SourceFile], complete: bool) -> Desired:
        known = {owner_key(owner) for owner in self._book.owners()}
        return self._states.build(files, complete, known, self._clock())

    def adopt_targets(self) -> None:
        """The state store was empty (new, or lost): at the next round, every owner the targets hold
        that the catalog lacks (a registration lost with the database) is held, not pruned, until it
        is registered again or `release_held` is called."""
        self._states.adopt_targets()

    def release_held(self) -> list[str]:
        """Let the held owners go (they are pruned after the usual grace); the list released."""
        return self._states.release_held(self._recorder)

    def _held(self, d: Desired, full: bool, now: float) -> frozenset[str]:
        def listing() -> ConvergeReport:
            return converge(d.desired, self.sinks, self._policy(False, d.protected, apply=False),
                            replace(self._hooks(full, now), deep=lambda _sink: False))

        return self._states.held(d, listing, self._recorder)

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
            if self._recorder is not None and report.leader:  # a follower never overwrites the leader's record
                try:
                    self._recorder.set_meta("last_round", report.as_dict())
                except Exception:
                    log.exception("could not record the round")
            if self._on_round is not None:
                self._on_round(report)
            log.info("reconcile round", extra={"fields": {
                "full": full, "reason": reason, "duration_s": round(report.duration, 4), "planned": report.planned,
                "complete": report.complete, "services": report.services,
                "sinks": {s.name: s.summary for s in report.sinks}, "catalog_error": report.catalog_error,
                "prune_refused": report.prune_refused, "error": report.error}})
        if report.complete:
            if not self.ready.is_set() and self._unsettled and threading.current_thread() is self._thread:
                self._settle()  # the start-up round's garbage: collected before the first event can wait for it
            self.ready.set()  # after the round's span ended: whoever waits for readiness sees the whole trace
        return report

    def _round(self, report: RoundReport, full: bool) -> None:
        report.leader = self._is_leader()
        if not report.leader:
            return
        with self._tracer.start_as_current_span("catalog.fetch"):
            try:
                # an event round re-reads what the source knows changed; a full resync reads everything
                src = self.source
                fetched = src.fetch_changed() if not full and isinstance(src, ChangeTrackingSource) else src.fetch()
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
        report.isolated, report.absent = d.isolated, d.grace_left
        self._states.commit_absence(d, self._recorder)
        prune = d.complete  # the source listed every file and every error names its entity (nothing hidden)
        # the shrink guard counts what was read: services kept only by the grace period are missing
        refusal = self._catalog_refusal(report.services - d.grace_carried) if prune else ""
        if refusal:
            # A catalog that suddenly lost most of its services is not trusted for anything: writing
            # the rest would rewrite shared artifacts (team dashboards, routes) without the missing ones.
            report.prune_refused.append(refusal)
            report.prune = False
            return
        report.prune = prune
        self._states.accept(d)
        now, started = self._clock(), time.monotonic()
        protected = d.protected | self._held(d, full, now)
        report.held_owners = self._states.held_owners
        recorded: dict[str, SinkReport] = {}

        def applied(run: SinkRun) -> None:  # statuses land as soon as the sink's writes did
            recorded[run.name] = self._book.record(run, now)

        hooks = replace(self._hooks(full, now), applied=applied)
        scope = None if full else self._changed_since_converged(d, protected)
        report.planned = len(scope) if scope is not None else None
        self._converged = None
        result = converge(d.desired, self.sinks, self._policy(prune, protected, frozen=d.frozen, scope=scope), hooks)
        for run in result.runs:
            if run.deep and run.listed:
                self._last_deep[run.name] = started
            if not run.listed:
                recorded[run.name] = self._book.record(run, now)
            if run.name in recorded:
                report.sinks.append(recorded[run.name])
        if result.stopped:  # lost the lock mid-round: stopped writing
            report.leader = False
            report.error = "leadership lost during the round"
            return
        report.prune_refused.extend(result.prune_refused)
        # The shrink baseline moves only on a clean, pruning round: a refused shrink stays refused.
        if prune and result.complete and not result.prune_refused:
            self._converged = (d.desired, protected, d.frozen)
            self._baseline_services = report.services
            if self._recorder is not None:
                self._recorder.set_meta("baseline_services", report.services)

    def _changed_since_converged(self, d: Desired, protected: frozenset[str]) -> frozenset[str] | None:
        """Artifact ids that may differ from what the sinks were last converged to: those rendered anew,
        those no longer desired, and those not settled (failed, held, pending). None: plan everything
        (no clean converge to compare with, or the protected or frozen owners changed)."""
        last = self._converged
        if last is None or last[1] != protected or last[2] != d.frozen:
            return None
        before = last[0]
        changed = {aid for aid, art in d.desired.items() if (was := before.get(aid)) is not art and was != art}
        changed.update(aid for aid in before if aid not in d.desired)
        changed |= self._book.unsettled()
        return frozenset(changed)

    def _policy(self, prune: bool, protected: frozenset[str], apply: bool = True,
                frozen: frozenset[str] = frozenset(), scope: frozenset[str] | None = None) -> Policy:
        c = self.config
        return Policy(selection=c.selection, prune=prune, protected=protected, frozen_owners=frozen,
                      max_delete_fraction=c.max_delete_fraction, allow_mass_delete=c.allow_mass_delete,
                      apply=apply, max_parallelism=c.max_parallelism,
                      retry=replace(c.retry, sleep=self._interruptible_sleep), scope=scope)

    def _hooks(self, full: bool, now: float) -> Hooks:
        def owner_of(sink: Sink, aid: str) -> str:
            return self._book.owner_of(sink.name, aid)

        def hold(sink: Sink, change: Change) -> bool:
            return self._book.hold(change, sink.name, full, now)

        def proceed() -> bool:
            return self._is_leader()

        @contextlib.contextmanager
        def apply_scope(sink: Sink, writes: int) -> Iterator[None]:
            with self._tracer.start_as_current_span("sink.apply") as span:
                span.set_attribute("obsctl.sink", sink.name)
                span.set_attribute("obsctl.writes", writes)
                yield

        return Hooks(deep=lambda sink: self._choose_depth(sink, full), owner_of=owner_of, hold=hold,
                     proceed=proceed, apply_scope=apply_scope)

    def _interruptible_sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _choose_depth(self, sink: Sink, full: bool) -> bool:
        """Deep on a full round when the sink's last deep listing is old enough (one-depth sinks: always)."""
        every = sink.contract.deep_every_seconds
        if every is None:
            return True
        last = self._last_deep.get(sink.name)
        return full and (last is None or time.monotonic() - last >= every)

    # -- dry run -----------------------------------------------------------------------------

    def plan(self) -> dict[str, Any]:
        """What a round would do now, per sink, without writing (diffs included); fast listings."""
        out: dict[str, Any] = {"catalog": {}, "sinks": {}}
        try:
            fetched = self.source.fetch()
        except (TemporaryError, PermanentError) as exc:
            out["catalog"] = {"ok": False, "error": str(exc)}
            return out
        with self._round_lock:  # sinks remember what they listed: never interleave with a round's writes
            d = self._desired(fetched.files, fetched.complete)
            out["catalog"] = {"ok": True, "complete": fetched.complete, "services": len(d.catalog.services),
                              "skipped": d.skipped, "carried_forward": d.carried, "problems": d.problems}
            refusal = self._catalog_refusal(len(d.catalog.services) - d.grace_carried) if fetched.complete else ""
            hooks = replace(self._hooks(False, self._clock()), deep=lambda _sink: False)
            result = converge(d.desired, self.sinks, self._policy(d.complete and not refusal, d.protected,
                                                                  apply=False, frozen=d.frozen), hooks)
        for run in result.runs:
            if not run.listed:
                out["sinks"][run.name] = {"error": run.error}
                continue
            out["sinks"][run.name] = {"summary": run.plan.summary(), "prune_refused": refusal or run.prune_refused,
                                      "changes": changes_as_dicts(run.plan)}
        return out

    # -- the loop ----------------------------------------------------------------------------

    def _seconds_to_next(self, next_full: float) -> float:
        """Seconds until the next full resync, artifact retry, catalog retry or end of a deletion grace."""
        mono, now = time.monotonic(), self._clock()
        wait = next_full - mono
        retry_at = self._book.next_retry_at()
        if retry_at is not None:
            wait = min(wait, retry_at - now)
        # a service whose deletion grace ends: read again then (and a second later, for the second read)
        for since in self._states.absences():
            wait = min(wait, max(since + self.config.deletion_grace_seconds - now, 1.0))
        if self._catalog_retry_at is not None:
            wait = min(wait, self._catalog_retry_at - mono)
        return max(0.0, wait)

    def run(self) -> None:
        """Rounds until stop(): at start, on wake-ups, at retry times, and a full resync periodically.

        A catalog event waiting when a periodic resync falls due is served first by its own (short)
        round, once per resync: the resync follows right after, so it is never starved. What a full
        round leaves is frozen out of the cyclic collector's walks; its garbage is collected when no
        event waits (an event does not wait behind a collection of the whole heap).
        """
        next_full = 0.0
        reason = "start"
        deferred = False  # the due resync already let an event round go first
        while not self._stop.is_set():
            now = time.monotonic()
            self._wake.clear()
            with self._lock:
                events = bool(self._pending_reasons) and self.rounds > 0
                self._pending_reasons.clear()
                due = now >= next_full
                full = self._full_requested or (due and (deferred or not events))
                deferred = due and not full
                if full:
                    self._full_requested = False
            if full:
                gc.unfreeze()
                self._unsettled = True
            self.run_once(full=full, reason=reason)
            if full:
                # the period runs from the end of a full round: one that took longer than the period (the start-up
                # round at 10,000 services) is not followed at once by another that every event would wait behind
                next_full = time.monotonic() + self.config.resync_seconds
                # What a full round leaves (catalog, rendered artifacts, statuses) lives until the next one: the
                # cyclic collector need not walk it on every event round (at 10,000 services a walk of the heap
                # costs an event round more than its work). With no event waiting, `_settle` below collects its
                # garbage and freezes the rest; an event waiting goes first over the heap frozen as it is, and the
                # collection follows that round. Unfrozen, and so collectable, at the next full round.
                if self._wake.is_set():
                    gc.freeze()
            if self._unsettled and not self._wake.is_set():
                self._settle()
            woke = self._wake.wait(self._seconds_to_next(next_full))
            if self._stop.is_set():
                break
            if woke and self.config.debounce_seconds > 0:
                self._stop.wait(self.config.debounce_seconds)
            with self._lock:
                reasons = sorted(set(self._pending_reasons))
            reason = ",".join(reasons) if reasons else ("resync" if time.monotonic() >= next_full else "retry")

    def _settle(self) -> None:
        """Collect the last full round's cyclic garbage and freeze what is left (see `run`)."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._unsettled = False

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
        gc.unfreeze()

    @property
    def stopping(self) -> threading.Event:
        """Set once stop() was called."""
        return self._stop
