"""The catalog source protocol: fetch every catalog document with its origin, and (optionally) watch."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from obsctl.errors import TemporaryError
from obsctl.model.source import SourceFile

Wake = Callable[[str], None]


@dataclass(frozen=True)
class FetchResult:
    """What a source read. `complete` is False when some documents may be missing (never prune then)."""

    files: list[SourceFile] = field(default_factory=list)
    complete: bool = True


@runtime_checkable
class CatalogSource(Protocol):
    """Somewhere catalog documents come from."""

    name: str

    def fetch(self) -> FetchResult:
        """Every document now. Raises TemporaryError when the source cannot be read (an outage)."""
        ...


@runtime_checkable
class ChangeTrackingSource(Protocol):
    """A source that can answer a read from what it read before plus what it knows changed since."""

    def fetch_changed(self) -> FetchResult:
        """What `fetch` would answer now, re-reading only what changed (it may read everything)."""
        ...


@runtime_checkable
class WatchableSource(Protocol):
    """A source that can tell when it changed (the loop still resyncs on its own)."""

    def watch(self, wake: Wake, stop: threading.Event) -> None:
        """Block until `stop` is set, calling wake(reason) whenever the source may have changed."""
        ...


class CombinedSource:
    """Several sources read as one catalog: any outage fails the whole read.

    A partial catalog would re-render shared artifacts (team dashboards, Alertmanager routes)
    without the missing services, so one failing source means no writes at all this round.
    """

    name = "combined"

    def __init__(self, sources: Sequence[CatalogSource]) -> None:
        self.sources = list(sources)

    def fetch(self) -> FetchResult:
        """Concatenate every source's files; complete only if all are."""
        return self._fetch(changed=False)

    def fetch_changed(self) -> FetchResult:
        """As `fetch`, each source re-reading only what it knows changed (when it can tell)."""
        return self._fetch(changed=True)

    def _fetch(self, changed: bool) -> FetchResult:
        files: list[SourceFile] = []
        complete = True
        for src in self.sources:
            try:
                got = src.fetch_changed() if changed and isinstance(src, ChangeTrackingSource) else src.fetch()
            except TemporaryError as exc:
                raise TemporaryError(f"{src.name}: {exc}", exc.retry_after) from exc
            files.extend(got.files)
            complete = complete and got.complete
        return FetchResult(files, complete)

    def watch(self, wake: Wake, stop: threading.Event) -> None:
        """Watch every watchable source, each on its own thread, until stop."""
        threads = [threading.Thread(target=src.watch, args=(wake, stop), name=f"watch-{src.name}", daemon=True)
                   for src in self.sources if isinstance(src, WatchableSource)]
        for t in threads:
            t.start()
        stop.wait()
        for t in threads:
            t.join(timeout=5)
