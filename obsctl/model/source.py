"""A catalog document as a source hands it to the loaders."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceFile:
    """A catalog document's bytes and where they came from."""

    path: str
    data: bytes
