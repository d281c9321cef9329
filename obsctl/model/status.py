"""Per-artifact reconcile status, shared by the reconcile loop, the state store and the service."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class ArtifactState(str, Enum):
    """Where one artifact stands in one sink after the last attempt."""

    APPLIED = "applied"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    FAILED_TEMPORARY = "failed-temporary"
    FAILED_PERMANENT = "failed-permanent"
    HELD = "held"  # a known failure waiting for its retry time, a digest change or the next full resync
    PENDING = "pending"  # desired but not attempted (its sink could not be listed)


FAILED_STATES = frozenset({ArtifactState.FAILED_TEMPORARY, ArtifactState.FAILED_PERMANENT, ArtifactState.HELD})


@dataclass(frozen=True)
class ArtifactStatus:
    """The last known outcome of one artifact in one sink.

    `desired_digest` is what obsctl wants there; `applied_digest` is what obsctl last wrote
    successfully. `failures` counts consecutive failures; `next_retry_at` (epoch seconds) is when
    a temporarily failing artifact may be tried again.
    """

    sink: str
    id: str
    owner: str = ""
    path: str = ""
    action: str = ""
    state: ArtifactState = ArtifactState.PENDING
    desired_digest: str = ""
    applied_digest: str = ""
    drifted: bool = False
    error: str = ""
    error_class: str = ""  # temporary | permanent | ""
    failures: int = 0
    next_retry_at: float | None = None
    updated_at: float = 0.0

    @property
    def key(self) -> tuple[str, str]:
        """(sink, artifact id): the identity of a status row."""
        return (self.sink, self.id)


def owner_key(ref: str) -> str:
    """`namespace/name` of an entity ref such as `component:default/checkout` (kind ignored)."""
    rest = ref.split(":", 1)[1] if ":" in ref else ref
    return rest if "/" in rest else f"default/{rest}"
