"""Platform data: what a platform team tunes in alert-rules/, dashboards/ and collectors/, as typed values.

Loaded and validated once (obsctl.spec.templates.parse_templates, from the packaged folders or the
`templates_dir` setting); renderers take these values, never the files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from obsctl.errors import Problem, SpecError
from obsctl.model.windows import WindowTable

DASHBOARD_LAYOUT = "dashboards/layout.yaml"
DASHBOARD_PANELS = "dashboards/panels.yaml"
DASHBOARD_RUNTIMES = "dashboards/runtimes.yaml"
DASHBOARD_DEFAULTS = "dashboards/defaults.yaml"
PANEL_TYPES = ("timeseries", "stat", "table")
PANEL_KEYS = frozenset({"type", "title", "description", "unit", "decimals", "min", "max", "width", "height",
                        "time_from", "targets", "thresholds", "thresholds_style", "options", "custom",
                        "transformations", "overrides"})


@dataclass(frozen=True)
class DashboardLibrary:
    """dashboards/: the layout settings, the rows of the service/team/org dashboards, the panel
    library, the runtime panels and the per-type panel defaults (checked when loaded)."""

    settings: Mapping[str, Any]
    layouts: Mapping[str, Mapping[str, Any]]
    panels: Mapping[str, Mapping[str, Any]]
    runtimes: Mapping[str, Sequence[Mapping[str, Any]]]
    defaults: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class CollectorTemplates:
    """collectors/: the agent, gateway and sampler configs (parsed, placeholders unfilled) and the platform defaults."""

    settings: Mapping[str, Any]
    agent: Mapping[str, Any]
    gateway: Mapping[str, Any]
    sampler: Mapping[str, Any]


PAGING_MODES = ("page", "ticket", "none")  # page: every tier; ticket: ticket tiers only; none: no alert


@dataclass(frozen=True)
class SliShape:
    """How the default SLIs of one protocol read its metrics."""

    selector: str
    count_metric: str
    bucket_metric: str
    error_matcher: str
    buckets: tuple[float, ...]
    environment_label: str = ""  # the SLI only counts series whose label equals the service's environment


@dataclass(frozen=True)
class TierDefaults:
    """Golden-path objectives for one service tier."""

    availability: float  # percent
    latency_percent: float
    latency_threshold_s: float


@dataclass(frozen=True)
class Templates:
    """Everything the platform team tunes without touching Python."""

    windows: Mapping[int, WindowTable]
    tier_defaults: Mapping[int, TierDefaults]
    default_tier: int
    default_period_days: int
    sli_shapes: Mapping[str, SliShape]
    default_owner: str = "group:default/unowned"
    # every YAML file of the folders, parsed once at load (relative path -> document)
    documents: Mapping[str, Any] = field(default_factory=dict)
    # lifecycle -> paging mode (page, ticket, none); `default` for lifecycles not listed
    paging: Mapping[str, str] = field(default_factory=lambda: {"default": "page"})
    collectors: CollectorTemplates = field(default_factory=lambda: CollectorTemplates({}, {}, {}, {}))
    dashboards: DashboardLibrary = field(default_factory=lambda: DashboardLibrary({}, {}, {}, {}, {}))

    def yaml(self, path: str) -> Any:
        """A template document by its path (`dashboards/layout.yaml`); callers must not mutate it."""
        try:
            return self.documents[path]
        except KeyError:
            raise SpecError([Problem(path, 0, "", "", "template file missing")]) from None


