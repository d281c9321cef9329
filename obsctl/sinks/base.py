"""The sink protocol: one backend each; list what obsctl owns there, put, delete."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from obsctl.model.artifact import Artifact, Kind


@dataclass(frozen=True)
class Observed:
    """An artifact as a sink found it: its normalised body (for diffs) and digest."""

    id: str
    body: bytes
    digest: str
    drifted: bool = False  # edited outside obsctl since obsctl last wrote it


@runtime_checkable
class Sink(Protocol):
    """A backend obsctl writes artifacts to."""

    name: str
    kinds: frozenset[Kind]

    def list_owned(self) -> Mapping[str, Observed]:
        """Everything obsctl owns here, by artifact id. Raises TemporaryError when the read is incomplete."""
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
