"""The sink protocol: one backend each; what it lists (and how deep), how parallel, what it prepares."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from obsctl.model.artifact import Artifact, Kind, Observed, Staged

__all__ = ["ListsScoped", "Observed", "Reloads", "Sink", "SinkContract", "StagesWrites", "url_location"]


def url_location(url: str) -> str:
    """A backend URL as a sink's location: without userinfo (never a credential in a banner or log)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


@dataclass(frozen=True)
class SinkContract:
    """What a sink promises the converge function, declared once per sink.

    `parallelism`: how many puts/deletes may run at once (1: the sink is not thread-safe).
    `deep_every_seconds`: None when the sink lists at one depth only; otherwise it can also list
    fast (from a cheap index) and a full round lists deep when its last deep listing is at least
    this old (0: on every full round). Grafana's fast listing is one search of its folders; the
    files sink's stats every owned file and hashes only those whose stat moved.
    """

    parallelism: int = 1
    deep_every_seconds: float | None = None


@runtime_checkable
class Sink(Protocol):
    """A backend obsctl writes artifacts to."""

    name: str
    kinds: frozenset[Kind]

    @property
    def contract(self) -> SinkContract:
        """How this sink lists and writes."""
        ...

    @property
    def location(self) -> str:
        """Where it writes, for people (a directory or a URL without credentials)."""
        ...

    def prepare(self, desired: Iterable[Artifact]) -> None:
        """Learn the desired state of this sink's kinds before listing (e.g. Grafana's folder titles)."""
        ...

    def list_owned(self, deep: bool = True) -> Mapping[str, Observed]:
        """Everything obsctl owns here, by artifact id. Raises TemporaryError when the read is incomplete.

        `deep=False` allows a sink with two depths to answer from its cheap index (see SinkContract).
        An Observed may come without its body (None) when the sink trusts its index of digests:
        plans compare digests and read a body (`Observed.content()`) only for a diff.
        """
        ...

    def put(self, artifact: Artifact) -> None:
        """Create or replace one artifact."""
        ...

    def delete(self, observed: Observed) -> None:
        """Remove one owned artifact."""
        ...

    def finish(self) -> None:
        """Called once after a batch of writes (reload a server, write an index)."""
        ...


@runtime_checkable
class ListsScoped(Protocol):
    """A sink that can list everything it owns while reading its backend only for some artifacts.

    `list_scoped(scope, deep)` answers like `list_owned(deep)` for the ids in `scope`; every other owned
    artifact comes as the sink's index last knew it (not read now: its body is None, its drift not
    checked). Serve's event rounds use it: they plan only the artifacts that may have changed (the
    scope) and only count the rest (the mass-delete guard), so reading those would be wasted work.
    """

    def list_scoped(self, scope: Collection[str], deep: bool = False) -> Mapping[str, Observed]:
        """Everything owned; only the artifacts in `scope` read from the backend."""
        ...


@runtime_checkable
class Reloads(Protocol):
    """A sink whose backend loads what was written only when told to (Prometheus, Alertmanager reloads).

    Reloads are level-triggered: while `stale()` says the last reload failed, every apply (even one
    with nothing to write) calls `finish()`, which reloads again, until one succeeds.
    """

    def stale(self) -> str:
        """Why the backend runs an older config than the files (its last reload's error), or "" when it does not."""
        ...


@runtime_checkable
class StagesWrites(Protocol):
    """A sink whose plan and writes can be prepared where the artifacts are rendered (a forked render worker),
    so their bodies never travel to the process that converges.

    The converging process calls `begin_staging` once before the fork (its answer is the listing: every
    owned artifact, bodies not read); a worker calls `observe` (what a deep listing would find under that
    id, given the body obsctl would write) and, for a change, `stage` (the body written aside, checked as
    `put` would check it). Back in the converging process, after the whole catalog rendered and the plan
    passed its guards, `commit` puts a staged body in place with the ownership protocol of `put`;
    `end_staging` drops what was not committed. Nothing staged is visible in the backend before `commit`.
    Such a sink needs no `prepare`.
    """

    def begin_staging(self) -> Mapping[str, Observed]:
        """Everything owned (no body read); raises like `list_owned` when the records cannot be read."""
        ...

    def observe(self, artifact: Artifact) -> Observed | None:
        """What a deep listing finds under artifact.id, or None when it is not owned (called in a worker)."""
        ...

    def stage(self, artifact: Artifact) -> Staged:
        """Write the body aside, checked; raises PermanentError/TemporaryError like `put` (called in a worker)."""
        ...

    def start_flush(self) -> None:
        """Begin putting what was staged on disk, without waiting (a head start for the commit, which still makes
        sure of it, and fails every staged item with an error this flush met): called once the workers are done
        staging and a commit is expected."""
        ...

    def commit(self, artifact_id: str, staged: Staged) -> None:
        """Put a staged body in place."""
        ...

    def commit_many(self, items: Sequence[tuple[str, Staged]]) -> list[Exception | None]:
        """Put staged bodies in place (as `commit` each, cheaper); the error of each item, None when in place."""
        ...

    def end_staging(self) -> None:
        """Drop whatever was staged and not committed."""
        ...
