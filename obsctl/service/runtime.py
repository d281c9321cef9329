"""Everything `obsctl serve` runs, built from settings: store, leader election, sources and
watchers, sinks, the reconcile loop, metrics, traces. `start()` and `stop()` bracket its life."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from obsctl import app
from obsctl.config import Settings
from obsctl.errors import TemporaryError
from obsctl.model.artifact import Artifact
from obsctl.model.status import ArtifactStatus
from obsctl.reconcile.loop import LoopConfig, Reconciler, RoundReport
from obsctl.render.incremental import IncrementalRenderer
from obsctl.service.auth import Tokens, load_tokens
from obsctl.service.metrics import ServiceMetrics
from obsctl.sinks.base import ListsScoped, Observed, Reloads, Sink, SinkContract
from obsctl.sources.base import CombinedSource
from obsctl.spec.templates import Templates
from obsctl.store.leader import AlwaysLeader, Elector, PostgresLeader
from obsctl.store.state import StateStore, sqlite_path

log = logging.getLogger("obsctl.service")

FAILING_ROUNDS = 3  # consecutive failed rounds before /readyz says not ready


def make_tracer(otlp_endpoint: str, exporter: SpanExporter | None = None) -> tuple[trace.Tracer, TracerProvider]:
    """A tracer for reconcile rounds and sink calls; spans leave the process only when an OTLP
    endpoint (or an exporter, in tests) is given."""
    provider = TracerProvider(resource=Resource.create({"service.name": "obsctl"}))
    if exporter is None and otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = otlp_endpoint.rstrip("/")
        exporter = OTLPSpanExporter(endpoint=endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces")
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    return provider.get_tracer("obsctl"), provider


def _where(sink: Sink) -> str:
    """A sink's directory or URL, for the banner (never a credential)."""
    return sink.location


class FencedSink:
    """A sink that refuses every write once this replica is no longer the leader (a lost or expired
    lease), so a deposed leader stops writing at its next artifact, not at the end of its round."""

    def __init__(self, inner: Sink, is_leader: Callable[[], bool]) -> None:
        self.inner = inner
        self.name = inner.name
        self.kinds = inner.kinds
        self._is_leader = is_leader

    @property
    def contract(self) -> SinkContract:
        """The inner sink's contract."""
        return self.inner.contract

    @property
    def location(self) -> str:
        """The inner sink's location."""
        return self.inner.location

    def _fence(self) -> None:
        if not self._is_leader():
            raise TemporaryError("not the leader any more: write refused")

    def prepare(self, desired: Iterable[Artifact]) -> None:
        """The inner sink's preparation (no write)."""
        self.inner.prepare(desired)

    def list_owned(self, deep: bool = True) -> Mapping[str, Observed]:
        """The inner sink's listing (reads are not fenced)."""
        return self.inner.list_owned(deep)

    def list_scoped(self, scope: Collection[str], deep: bool = False) -> Mapping[str, Observed]:
        """The inner sink's scoped listing, or its whole listing when it has none."""
        if isinstance(self.inner, ListsScoped):
            return self.inner.list_scoped(scope, deep)
        return self.inner.list_owned(deep)

    def put(self, artifact: Artifact) -> None:
        """Write, only while leading."""
        self._fence()
        self.inner.put(artifact)

    def delete(self, observed: Observed) -> None:
        """Delete, only while leading."""
        self._fence()
        self.inner.delete(observed)

    def finish(self) -> None:
        """Finish (a reload or an index write), only while leading."""
        self._fence()
        self.inner.finish()

    def stale(self) -> str:
        """The wrapped sink's stale state (a failed reload), "" for a sink without reloads."""
        return self.inner.stale() if isinstance(self.inner, Reloads) else ""


@dataclass
class Runtime:
    """The running service's parts."""

    settings: Settings
    span_exporter: SpanExporter | None = None
    store: StateStore = field(init=False)
    elector: Elector = field(init=False)
    templates: Templates = field(init=False)
    source: CombinedSource = field(init=False)
    sinks: list[Sink] = field(init=False)
    reconciler: Reconciler = field(init=False)
    metrics: ServiceMetrics = field(init=False)
    tokens: Tokens = field(init=False)
    tracer_provider: TracerProvider = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.tokens = load_tokens([t.get_secret_value() for t in s.serve.read_tokens],
                                  [t.get_secret_value() for t in s.serve.write_tokens], s.serve.tokens_file,
                                  {team: [t.get_secret_value() for t in toks]
                                   for team, toks in s.serve.team_write_tokens.items()})
        self.store = StateStore(s.state_url)
        if self.store.migrate():
            # a new or lost state database: hold whatever the targets own that the catalog lacks
            self.store.set_meta("adopt_targets", True)
        self._db_identity = self.store.file_identity()
        self._failed_rounds = 0
        self.templates = app.load_templates(s)
        self.metrics = ServiceMetrics()
        tracer, self.tracer_provider = make_tracer(s.serve.otlp_endpoint, self.span_exporter)
        if self.store.is_sqlite:
            self.elector = AlwaysLeader()
        else:
            self.elector = PostgresLeader(s.state_url, key=s.serve.leader_lock_key, on_change=self._leadership,
                                          lease_seconds=s.serve.leader_lease_seconds)
        self.source = app.build_source(s, self.store)
        self.sinks = [FencedSink(sink, self.elector.is_leader) for sink in app.build_sinks(s)]
        # every service rendered in its own try (a failure isolates that service only), re-rendering only the
        # services whose inputs changed
        renderer = IncrementalRenderer(self.templates, app.render_options(s), pack=True)
        self.reconciler = Reconciler(
            self.source, app.catalog_loader(self.templates, s), renderer.isolated, self.sinks,
            config=LoopConfig(resync_seconds=s.serve.resync_seconds, max_delete_fraction=s.serve.max_delete_fraction,
                              deletion_grace_seconds=s.serve.deletion_grace_seconds, deletion_reads=2,
                              allow_mass_delete=s.serve.allow_mass_delete, selection=app.rendered_kinds(s)),
            recorder=self.store, is_leader=self.elector.is_leader, tracer=tracer,
            on_error=self.metrics.sink_error, on_round=self._round_done, hold_routes=renderer.hold_routes)
        self.metrics.bind(self.reconciler.queue_depth, lambda: self.reconciler.last_catalog_ok_at,
                          self.elector.is_leader, self.is_ready)
        self._watch_stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def _leadership(self, leader: bool) -> None:
        if leader:
            # the previous leader's outcomes and baseline are in the store: start from them
            self.reconciler.reload()
            self.reconciler.wake("leadership acquired", full=True)

    def _round_done(self, report: RoundReport) -> None:
        failed = bool(report.error or not report.catalog_ok or any(not s.listed for s in report.sinks))
        self._failed_rounds = self._failed_rounds + 1 if failed else 0
        self.metrics.observe_round(report, self.reconciler.snapshot())

    def state_lost(self) -> bool:
        """True when the SQLite state file was removed or replaced under the running process: writes
        would be answered and then lost on restart."""
        return self._db_identity is not None and self.store.file_identity() != self._db_identity

    def require_writable(self) -> None:
        """Raise TemporaryError (503) when writes must be refused: the state database is lost."""
        if self.state_lost():
            raise TemporaryError("the state database file was removed or replaced while obsctl ran; writes are "
                                 "refused until obsctl restarts and rebuilds its state from the catalog and targets",
                                 retry_after=30)

    def readiness(self) -> tuple[bool, str]:
        """(ready, why not). Leader: after the first complete reconcile, and not while rounds keep
        failing. Follower: when the store answers and a leader has reconciled at least once."""
        if self.state_lost():
            return False, "state database lost"
        if self.elector.is_leader():
            if not self.reconciler.ready.is_set():
                return False, "no complete reconcile yet"
            if self._failed_rounds >= FAILING_ROUNDS:
                return False, f"the last {self._failed_rounds} reconcile rounds failed"
            return True, ""
        if self.store.ping() and self.store.get_meta("last_round") is not None:
            return True, ""
        return False, "no leader has reconciled yet (or the state store is unreachable)"

    def is_ready(self) -> bool:
        """readiness()[0]."""
        return self.readiness()[0]

    def deregistered(self, namespace: str, name: str) -> None:
        """An explicit API delete: its artifacts go at the next round, with no grace period."""
        self.reconciler.forget(f"{namespace}/{name}")
        self.reconciler.wake(f"deregistration {namespace}/{name}")

    def statuses(self) -> list[ArtifactStatus]:
        """Artifact statuses as the leader recorded them (from the store: right on every replica)."""
        return self.store.load_statuses()

    def start(self) -> None:
        """Campaign, watch, reconcile."""
        self.elector.start()
        if self.settings.serve.watch:
            self._watcher = threading.Thread(target=self.source.watch, args=(self.reconciler.wake, self._watch_stop),
                                             name="obsctl-watch", daemon=True)
            self._watcher.start()
        self.reconciler.start()

    def stop(self) -> None:
        """Finish the in-flight round, stop watching, release the leader lock, flush traces."""
        log.info("shutting down: finishing the in-flight reconcile")
        self.reconciler.stop(timeout=120)
        self._watch_stop.set()
        if self._watcher is not None:
            self._watcher.join(10)
        self.elector.stop()
        self.tracer_provider.shutdown()
        self.store.close()
        log.info("stopped")

    def _auth_banner(self) -> str:
        s = self.settings.serve
        if self.tokens.enabled:
            scoped = " (some limited to their teams)" if self.tokens.team_write else ""
            return "bearer tokens (read/write)" + scoped
        if s.allow_unauthenticated_writes:
            return (f"OPEN: no tokens, and serve.allow_unauthenticated_writes lets ANYONE who reaches {s.listen} "
                    "register, change and delete services")
        return ("reads open, writes CLOSED: no token configured (set serve.write_tokens, serve.team_write_tokens "
                "or serve.tokens_file)")

    def describe(self) -> dict[str, str]:
        """Where everything is, for the start-up banner."""
        s = self.settings
        db = sqlite_path(s.state_url)
        listen = s.serve.listen
        return {
            "api": f"http://{listen}/  (OpenAPI: http://{listen}/openapi.json, docs: http://{listen}/docs)",
            "status": f"http://{listen}/status   metrics: http://{listen}/metrics",
            "catalog": ", ".join(src.name for src in self.source.sources) or "(no sources)",
            "state": str(db.resolve()) if db else s.state_url.split("@")[-1],
            "leader": "always (SQLite)" if isinstance(self.elector, AlwaysLeader) else "PostgreSQL advisory lock",
            "sinks": ", ".join(f"{k.name} -> {_where(k)}" for k in self.sinks),
            "auth": self._auth_banner(),
            "traces": f"OTLP/HTTP -> {s.serve.otlp_endpoint}" if s.serve.otlp_endpoint else "off",
        }
