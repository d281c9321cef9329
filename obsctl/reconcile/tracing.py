"""Tracing of sink calls: a span per list, put, delete and finish, errors counted by class."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping

from opentelemetry import trace

from obsctl.errors import PermanentError, TemporaryError
from obsctl.model.artifact import Artifact, Observed
from obsctl.sinks.base import ListsScoped, Reloads, Sink, SinkContract

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

    @property
    def location(self) -> str:
        """The wrapped sink's location."""
        return self.inner.location

    @property
    def contract(self) -> SinkContract:
        """The wrapped sink's contract."""
        return self.inner.contract

    def prepare(self, desired: Iterable[Artifact]) -> None:
        """Prepare, untraced (no I/O)."""
        self.inner.prepare(desired)

    def list_owned(self, deep: bool = True) -> Mapping[str, Observed]:
        """List, traced."""
        with self._span("list_owned"):
            return self.inner.list_owned(deep)

    def list_scoped(self, scope: Collection[str], deep: bool = False) -> Mapping[str, Observed]:
        """List (only `scope` read when the wrapped sink can), traced."""
        with self._span("list_owned"):
            if isinstance(self.inner, ListsScoped):
                return self.inner.list_scoped(scope, deep)
            return self.inner.list_owned(deep)

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

    def stale(self) -> str:
        """The wrapped sink's stale state (Reloads), "" for a sink without reloads."""
        return self.inner.stale() if isinstance(self.inner, Reloads) else ""
