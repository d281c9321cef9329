"""Artifacts: what renderers produce and sinks store, identified by kind and key."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property


class Kind(str, Enum):
    """Every artifact kind obsctl renders."""

    PROMETHEUS_RULES = "prometheus-rules"
    PROMETHEUS_RULE_CRD = "prometheus-rule-crd"
    RULER_GROUP = "ruler-group"
    ALERTMANAGER_CONFIG = "alertmanager-config"
    GRAFANA_FOLDER = "grafana-folder"
    GRAFANA_DASHBOARD = "grafana-dashboard"
    GRAFANA_PROVIDER = "grafana-provider"
    GRAFANA_DASHBOARD_CRD = "grafana-dashboard-crd"
    GRAFANA_FOLDER_CRD = "grafana-folder-crd"
    COLLECTOR_AGENT = "collector-agent"
    COLLECTOR_GATEWAY = "collector-gateway"
    COLLECTOR_CRD = "collector-crd"


@dataclass(frozen=True)
class Artifact:
    """One rendered object, byte-exact.

    `key` is unique within `kind` and derived from catalog identity; `path` is where it lives
    under an output directory; `owner` is the entity ref (or team ref) it was rendered for.
    """

    kind: Kind
    key: str
    path: str
    body: bytes
    owner: str

    @property
    def id(self) -> str:
        """The artifact's identity across plan and sinks."""
        return f"{self.kind.value}/{self.key}"

    @cached_property
    def digest(self) -> str:
        """sha256 of the body, the unit of change detection (hashed once: plans ask for it often)."""
        return hashlib.sha256(self.body).hexdigest()


@dataclass(frozen=True, slots=True)
class Observed:
    """An artifact as a sink found it: its normalised body (for diffs) and digest.

    `owner` is the entity (or team) ref the sink recorded with it (a manifest entry, a group name);
    empty when the backend keeps no such mark. Carry-forward of an entity with spec errors uses it.
    `body` is None when the listing did not read it (a sink that trusts its index of digests):
    `content()` reads it then, through `read`, only when someone needs it (a diff).
    """

    id: str
    body: bytes | None
    digest: str
    drifted: bool = False  # edited outside obsctl since obsctl last wrote it
    owner: str = ""
    read: Callable[[], bytes] | None = field(default=None, repr=False, compare=False)

    def content(self) -> bytes:
        """The body as the sink holds it: as listed, else read now (b"" when neither is possible)."""
        if self.body is not None:
            return self.body
        return self.read() if self.read is not None else b""


@dataclass(frozen=True, slots=True)
class Staged:
    """A change planned (and its body written aside, ready to be put in place) where the artifact was rendered:
    what the parent of a streamed render keeps of it instead of the body."""

    path: str  # the artifact's path
    digest: str
    owner: str
    target: str = ""  # where the sink puts it (its own layout of the path)
    token: str = ""  # the sink's handle on the staged body ("" when not staged: a dry run, or it failed)
    error: str = ""  # why staging failed (the artifact is then not written)
    temporary: bool = False  # that failure was temporary (a timeout)
    diff: str | None = None  # the unified diff of an update, when asked for


def kind_of(artifact_id: str) -> Kind | None:
    """The kind an artifact id (`<kind>/<key>`) names, or None for an id of no known kind."""
    try:
        return Kind(artifact_id.split("/", 1)[0])
    except ValueError:
        return None


DesiredState = dict[str, Artifact]


def desired_state(artifacts: list[Artifact]) -> DesiredState:
    """Index artifacts by id; two artifacts with one id is a renderer bug."""
    out: DesiredState = {}
    for art in artifacts:
        if art.id in out:
            raise ValueError(f"two artifacts share the id {art.id}")
        out[art.id] = art
    return dict(sorted(out.items()))
