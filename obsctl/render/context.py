"""What every per-service render reads besides the service itself, and what it leaves for the shared artifacts.

A service's artifacts depend on the service, its team's entity (the title on its dashboard), the
platform data (templates) and the render options: `RenderContext` holds exactly those, so a render
of one service never needs the whole catalog. Team- and org-level artifacts (team folders and
overviews, team gateways, the Alertmanager config, the Grafana file provider) are built from the
per-service `ServiceSummary` values and the context alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from obsctl.model.entities import Catalog, EntityRef, Service, Team
from obsctl.model.platform import Templates
from obsctl.render.options import RenderOptions
from obsctl.slo.alerts import severities

# The renderers, by the names `only` selects them with, in the order they run.
RENDERER_NAMES = ("rules", "alertmanager", "dashboards", "collectors")


@dataclass(frozen=True)
class ServiceSummary:
    """What the shared artifacts need to know of one rendered service."""

    ref: str
    team: EntityRef
    entity: EntityRef | None = None  # the service's ref (namespace and name its alerts carry)
    severities: frozenset[str] = frozenset()  # what its alerts can carry (page, ticket)
    pagerduty_service_id: str = ""  # its own PagerDuty service (pagerduty.com/service-id on the Component)
    depends_on: tuple[EntityRef, ...] = ()


@dataclass(frozen=True)
class RenderContext:
    """Templates, options, the catalog's team entities and the selected renderers."""

    templates: Templates
    options: RenderOptions
    teams: Mapping[EntityRef, Team] = field(default_factory=dict)
    renderers: tuple[str, ...] = RENDERER_NAMES
    # Values derived once per context (dashboard and collector shapes...), by name: from the templates, the
    # options and their own keys only, never from the catalog (a renderer may hand them to its next context).
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, catalog: Catalog, templates: Templates, options: RenderOptions,
           only: tuple[str, ...] | list[str] | None = None, memo: dict[str, Any] | None = None) -> RenderContext:
        """The context of a catalog (its teams by ref), with the renderers `only` names (all by default).

        `memo`: the derived values of an earlier context with the same templates and options (they depend on
        nothing else), so a long-lived renderer does not derive them again every round.
        """
        names = tuple(n for n in RENDERER_NAMES if not only or n in only)
        teams: dict[EntityRef, Team] = {}
        for team in catalog.teams:
            teams.setdefault(team.ref, team)  # the first wins, as Catalog.team answers
        return cls(templates, options, teams, names, {} if memo is None else memo)

    def team(self, ref: EntityRef) -> Team | None:
        """The team entity with that ref, if the catalog has it."""
        return self.teams.get(ref)

    def wants(self, renderer: str) -> bool:
        """Whether the named renderer is selected."""
        return renderer in self.renderers


# summary_of by service object: serve checks routing over the whole catalog every round, and the loader
# hands back the same Service objects while their documents are unchanged. The key is the object's id;
# the entry keeps the object (so the id cannot be reused while it is cached) and is checked by identity.
_SUMMARIES: dict[int, tuple[Service, Templates | None, ServiceSummary]] = {}
_SUMMARIES_MAX = 100_000


def summary_of(svc: Service, templates: Templates | None = None) -> ServiceSummary:
    """The summary of a service (what the shared artifacts read); severities need the window tables."""
    hit = _SUMMARIES.get(id(svc))
    if hit is not None and hit[0] is svc and hit[1] is templates:
        return hit[2]
    summary = _summary_of(svc, templates)
    if len(_SUMMARIES) >= _SUMMARIES_MAX:
        _SUMMARIES.clear()
    _SUMMARIES[id(svc)] = (svc, templates, summary)
    return summary


def _summary_of(svc: Service, templates: Templates | None) -> ServiceSummary:
    emitted: set[str] = set()
    if templates is not None:
        for slo in svc.slos:
            table = templates.windows.get(slo.period_days)
            if table is not None:
                emitted |= severities(slo, table)
    return ServiceSummary(str(svc.ref), svc.team, entity=svc.ref, severities=frozenset(emitted),
                          pagerduty_service_id=svc.pagerduty_service_id, depends_on=svc.depends_on)


def teams_in_use(summaries: list[ServiceSummary] | tuple[ServiceSummary, ...]) -> tuple[EntityRef, ...]:
    """Every team that owns at least one of the services, sorted (as `Catalog.teams_in_use`)."""
    return tuple(sorted({s.team for s in summaries}, key=str))


def by_team(summaries: Sequence[ServiceSummary]) -> list[tuple[EntityRef, tuple[ServiceSummary, ...]]]:
    """The summaries grouped by owning team (teams in ref order, each team's services in ref order)."""
    groups: dict[EntityRef, list[ServiceSummary]] = {}
    for svc in sorted(summaries, key=lambda s: s.ref):
        groups.setdefault(svc.team, []).append(svc)
    return [(team, tuple(groups[team])) for team in sorted(groups, key=str)]
