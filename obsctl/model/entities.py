"""The validated domain model every loader maps into and every renderer reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property

from obsctl.model.windows import AlertTier


class Protocol(str, Enum):
    """How a service is called; decides the default SLI queries."""

    HTTP = "http"
    GRPC = "grpc"


class Runtime(str, Enum):
    """The language runtime, for runtime dashboard panels."""

    PYTHON = "python"
    JVM = "jvm"
    GO = "go"
    NODEJS = "nodejs"
    OTHER = "other"


class BudgetingMethod(str, Enum):
    """How the SLI is counted over the period (OpenSLO's budgetingMethod)."""

    OCCURRENCES = "occurrences"
    TIMESLICES = "timeslices"


@dataclass(frozen=True)
class EntityRef:
    """A Backstage-style entity reference: kind:namespace/name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, text: str, default_kind: str, default_namespace: str = "default") -> EntityRef:
        """Parse `kind:ns/name`, `ns/name` or `name`, filling in defaults (kind is lower-cased)."""
        kind, _, rest = text.partition(":") if ":" in text else (default_kind, "", text)
        namespace, _, name = rest.rpartition("/")
        return cls(kind.lower(), namespace or default_namespace, name)


@dataclass(frozen=True)
class Origin:
    """Where a model object came from: for error messages and status."""

    file: str
    line: int = 0
    format: str = ""


@dataclass(frozen=True)
class AvailabilitySLI:
    """Ratio of requests that did not fail, from the protocol's default metrics."""

    kind: str = "availability"


@dataclass(frozen=True)
class LatencySLI:
    """Ratio of requests served faster than a threshold, from a duration histogram."""

    threshold_seconds: float
    native: bool = False  # a Prometheus native histogram (histogram_fraction) instead of classic buckets
    kind: str = "latency"


@dataclass(frozen=True)
class EventsSLI:
    """Custom events: PromQL for bad (or good) and total events, with `{{window}}` in each.

    `error_ratio_query` instead is a ratio already computed (Sloth's raw SLI): every series and every
    step weighs the same, as there are no event counts.
    """

    total_query: str
    error_query: str | None = None
    good_query: str | None = None
    error_ratio_query: str | None = None
    kind: str = "events"


SLI = AvailabilitySLI | LatencySLI | EventsSLI


@dataclass(frozen=True)
class AlertPolicy:
    """Which alerts an SLO gets and what they carry."""

    page: bool = True
    ticket: bool = True
    tiers: tuple[str, ...] | None = None  # None: every tier of the window table
    min_events: float | None = None  # events per long window needed before a tier fires
    no_data: bool = True
    budget_exhausted: bool = False
    name: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    page_labels: tuple[tuple[str, str], ...] = ()
    ticket_labels: tuple[tuple[str, str], ...] = ()
    page_annotations: tuple[tuple[str, str], ...] = ()
    ticket_annotations: tuple[tuple[str, str], ...] = ()
    # Tiers a spec describes that no row of the window table matches (an OpenSLO burn-rate condition).
    custom_tiers: tuple[AlertTier, ...] = ()


@dataclass(frozen=True)
class SLO:
    """One service level objective of a service."""

    name: str
    objective: float  # a ratio in (0, 1), e.g. 0.999
    sli: SLI
    period_days: int = 30
    budgeting: BudgetingMethod = BudgetingMethod.OCCURRENCES
    timeslice_seconds: float = 60.0
    timeslice_target: float = 0.95  # a slice is good when its success ratio reaches this
    description: str = ""
    alerting: AlertPolicy = field(default_factory=AlertPolicy)
    labels: tuple[tuple[str, str], ...] = ()  # on every recorded series and alert of the SLO
    group_by: tuple[str, ...] = ()  # the SLI's grouping labels: each group burns and alerts on its own

    @property
    def error_budget(self) -> float:
        """The fraction of events (or slices) allowed to fail."""
        return 1.0 - self.objective

    @property
    def objective_percent(self) -> str:
        """The objective as a percent string without float noise: 99.9."""
        return f"{self.objective * 100:.6f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Links:
    """Where a person goes from an alert or dashboard."""

    runbook: str = ""
    source: str = ""
    catalog: str = ""
    dashboard: str = ""


@dataclass(frozen=True)
class Team:
    """An owning team (a Backstage Group)."""

    ref: EntityRef
    title: str = ""
    pagerduty_service_id: str = ""
    opsgenie_team: str = ""
    slack_channel: str = ""
    origin: Origin = field(default_factory=lambda: Origin(""))

    @property
    def name(self) -> str:
        """The team's name, used in labels, folders and routes."""
        return self.ref.name


@dataclass(frozen=True)
class Service:
    """A service in the catalog with everything needed to observe and page it."""

    ref: EntityRef
    team: EntityRef
    slos: tuple[SLO, ...]
    tier: int = 2
    protocol: Protocol = Protocol.HTTP
    runtime: Runtime = Runtime.OTHER
    lifecycle: str = "production"
    paging: str = "page"  # page, ticket or none: from the lifecycle's policy or the entity's override
    system: str = ""
    environment: str = "production"
    title: str = ""
    description: str = ""
    links: Links = field(default_factory=Links)
    labels: tuple[tuple[str, str], ...] = ()
    pagerduty_service_id: str = ""
    depends_on: tuple[EntityRef, ...] = ()  # spec.dependsOn: Components or Resources this service needs
    latency_buckets: tuple[float, ...] = ()
    origin: Origin = field(default_factory=lambda: Origin(""))

    @property
    def name(self) -> str:
        """The service's name (metadata.name)."""
        return self.ref.name

    @property
    def namespace(self) -> str:
        """The catalog namespace."""
        return self.ref.namespace


@dataclass(frozen=True)
class Catalog:
    """Everything loaded and valid: what renderers consume."""

    services: tuple[Service, ...]
    teams: tuple[Team, ...] = ()

    def team(self, ref: EntityRef) -> Team | None:
        """The team with that ref, if the catalog knows it (the first, when two share a ref)."""
        return self._teams_by_ref.get(ref)

    @cached_property
    def _teams_by_ref(self) -> dict[EntityRef, Team]:
        found: dict[EntityRef, Team] = {}
        for team in self.teams:
            found.setdefault(team.ref, team)
        return found

    def teams_in_use(self) -> tuple[EntityRef, ...]:
        """Every team that owns at least one service, sorted."""
        return tuple(sorted({s.team for s in self.services}, key=str))
