"""Self-observability: prometheus-client metrics on a registry per service instance."""

from __future__ import annotations

import math
import time
from collections import Counter as Tally
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from obsctl.model.status import ArtifactState, ArtifactStatus
from obsctl.reconcile.loop import RoundReport

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServiceMetrics:
    """Every metric `obsctl serve` exposes at /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reconcile_duration = Histogram(
            "obsctl_reconcile_duration_seconds", "Duration of reconcile rounds.", ["result"],
            buckets=DURATION_BUCKETS, registry=r)
        self.rounds = Counter("obsctl_reconcile_rounds", "Reconcile rounds by result.", ["result"], registry=r)
        self.queue_depth = Gauge("obsctl_reconcile_queue_depth",
                                 "Wake-ups not yet served plus artifacts waiting for a retry.", registry=r)
        self.artifacts = Gauge("obsctl_artifacts", "Artifacts by sink and last state.", ["sink", "state"],
                               registry=r)
        self.sink_errors = Counter("obsctl_sink_errors", "Failed sink calls by sink and error class.",
                                   ["sink", "class"], registry=r)
        self.catalog_errors = Counter("obsctl_catalog_errors", "Failed catalog reads.", registry=r)
        self.catalog_age = Gauge("obsctl_catalog_age_seconds",
                                 "Seconds since the catalog was last read successfully (NaN: never).", registry=r)
        self.catalog_services = Gauge("obsctl_catalog_services", "Services in the last catalog read.", registry=r)
        self.prune_refused = Gauge("obsctl_prune_refused",
                                   "1 while a mass deletion is being refused.", registry=r)
        self.isolated = Gauge("obsctl_isolated_services",
                              "Services (or teams) that did not render and keep their last good artifacts.", registry=r)
        self.in_grace = Gauge("obsctl_absent_services_in_grace",
                              "Services missing from the catalog, kept until their deletion grace ends.", registry=r)
        self.leader = Gauge("obsctl_leader", "1 when this replica holds the leader lock.", registry=r)
        self.ready = Gauge("obsctl_ready", "1 after the first complete reconcile.", registry=r)
        self.backend_stale = Gauge("obsctl_backend_stale",
                                   "1 while a backend runs an older config than obsctl wrote (its last reload "
                                   "failed; retried every round).", ["sink"], registry=r)

    def bind(self, queue_depth: Callable[[], int], last_catalog_ok: Callable[[], float | None],
             is_leader: Callable[[], bool], ready: Callable[[], bool]) -> None:
        """Gauges computed at scrape time."""
        self.queue_depth.set_function(lambda: float(queue_depth()))

        def age() -> float:
            at = last_catalog_ok()
            return math.nan if at is None else max(0.0, time.time() - at)

        self.catalog_age.set_function(age)
        self.leader.set_function(lambda: 1.0 if is_leader() else 0.0)
        self.ready.set_function(lambda: 1.0 if ready() else 0.0)

    def sink_error(self, sink: str, cls: str) -> None:
        """Count one failed sink call."""
        self.sink_errors.labels(sink=sink, **{"class": cls}).inc()

    def observe_round(self, report: RoundReport, statuses: list[ArtifactStatus]) -> None:
        """Record a finished round."""
        if not report.leader:
            return
        result = "ok" if report.complete else ("error" if report.error or not report.catalog_ok else "partial")
        self.reconcile_duration.labels(result=result).observe(report.duration)
        self.rounds.labels(result=result).inc()
        if not report.catalog_ok:
            self.catalog_errors.inc()
            return
        self.catalog_services.set(report.services)
        self.isolated.set(len(report.isolated))
        self.in_grace.set(len(report.absent))
        self.prune_refused.set(1 if report.prune_refused else 0)
        for s in report.sinks:
            if not s.listed:
                self.sink_error(s.name, "list")
            self.backend_stale.labels(sink=s.name).set(1 if s.stale else 0)
        counts = Tally((st.sink, st.state.value) for st in statuses)
        sinks = {st.sink for st in statuses} | {s.name for s in report.sinks}
        for sink in sinks:
            for state in ArtifactState:
                self.artifacts.labels(sink=sink, state=state.value).set(counts.get((sink, state.value), 0))
