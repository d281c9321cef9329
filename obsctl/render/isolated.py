"""Render a catalog with every service in its own try: one service that fails to render, or whose
artifacts would land where another owner's are, is a located failure of that service alone.

Two names may normalise into one identifier (`search.api` and `search-api` into one Grafana uid,
`team.a` and `team-a` into one team folder): the first owner in ref order keeps the identifier and
the other is failed with a message naming both, so neither silently overwrites the other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from obsctl.errors import SpecError
from obsctl.model.artifact import Artifact, DesiredState
from obsctl.model.entities import Catalog
from obsctl.model.platform import Templates
from obsctl.model.status import owner_key
from obsctl.render import render_service, render_shared
from obsctl.render.context import RenderContext, ServiceSummary
from obsctl.render.options import RenderOptions

log = logging.getLogger("obsctl.render")


@dataclass(frozen=True)
class RenderFailure:
    """Why one owner (a service, or a team for its shared artifacts) rendered nothing this time."""

    owner: str  # entity ref
    error: str


@dataclass
class IsolatedRender:
    """The artifacts of every service that rendered, and the failure of every one that did not."""

    desired: DesiredState
    failures: dict[str, RenderFailure] = field(default_factory=dict)  # owner key (namespace/name) -> failure


class _Claims:
    """Who holds each artifact id and path."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.paths: dict[str, str] = {}

    def conflict(self, artifacts: Sequence[Artifact], owner: str) -> str:
        for art in artifacts:
            for table, value, what in ((self.ids, art.id, "id"), (self.paths, art.path, "path")):
                held = table.get(value)
                if held is not None and held != owner:
                    return (f"its {art.kind.value} {what} {value!r} collides with that of {held} (the names "
                            "normalise to one identifier); rename one of them")
        return ""

    def take(self, artifacts: Sequence[Artifact], owner: str) -> None:
        for art in artifacts:
            self.ids[art.id] = owner
            self.paths[art.path] = owner


def render_isolated(catalog: Catalog, templates: Templates, options: RenderOptions,
                    only: Sequence[str] | None = None) -> IsolatedRender:
    """Every service rendered alone; failures and collisions isolated; shared artifacts from the rest.

    A failure of the shared renderers as a whole (a platform bug, not an input) still raises.
    """
    ctx = RenderContext.of(catalog, templates, options, list(only) if only else None)
    rendered: list[tuple[str, Sequence[Artifact], ServiceSummary]] = []
    failures: dict[str, RenderFailure] = {}
    for svc in sorted(catalog.services, key=lambda s: str(s.ref)):
        try:
            artifacts, summary = render_service(svc, ctx)
        except Exception as exc:
            failures[owner_key(str(svc.ref))] = failure_of(str(svc.ref), exc)
            continue
        rendered.append((str(svc.ref), artifacts, summary))
    return assemble(rendered, failures, lambda summaries: render_shared(summaries, ctx))


def failure_of(owner: str, exc: Exception) -> RenderFailure:
    """The located failure of one owner's render."""
    if isinstance(exc, SpecError):
        return RenderFailure(owner, "; ".join(f"{p.field + ': ' if p.field else ''}{p.message}"
                                              for p in exc.problems) or str(exc))
    log.warning("%s does not render: %s: %s", owner, type(exc).__name__, exc)
    return RenderFailure(owner, f"does not render: {type(exc).__name__}: {exc}")


SharedRenderer = Callable[[Sequence[ServiceSummary]], Sequence[Artifact]]


def assemble(rendered: Sequence[tuple[str, Sequence[Artifact], ServiceSummary]],
             failures: dict[str, RenderFailure], shared_of: SharedRenderer) -> IsolatedRender:
    """The desired state from each service's artifacts (in ref order) and the shared artifacts of
    those that fit: an owner whose identifiers collide with an earlier owner's is failed instead."""
    claims = _Claims()
    out: dict[str, Artifact] = {}
    summaries: list[ServiceSummary] = []
    for owner, artifacts, summary in rendered:
        clash = claims.conflict(artifacts, owner)
        if clash:
            failures[owner_key(owner)] = RenderFailure(owner, clash)
            continue
        claims.take(artifacts, owner)
        out.update((a.id, a) for a in artifacts)
        summaries.append(summary)
    shared, bad = _shared(summaries, shared_of, claims)
    if bad:
        # a team whose shared artifacts collide with another owner's: its services go too (their
        # dashboards would land in the other team's folder), and the shared artifacts are redone
        for summary in summaries:
            if str(summary.team) in bad:
                for aid in [aid for aid, a in out.items() if a.owner == summary.ref]:
                    del out[aid]
                failures[owner_key(summary.ref)] = RenderFailure(summary.ref, f"its team {summary.team}: "
                                                                              f"{bad[str(summary.team)]}")
        summaries = [s for s in summaries if str(s.team) not in bad]
        for owner, clash in bad.items():
            failures[owner_key(owner)] = RenderFailure(owner, clash)
        shared, still = _shared(summaries, shared_of, claims)
        shared = [a for a in shared if a.owner not in still]
    out.update((a.id, a) for a in shared)
    return IsolatedRender(dict(sorted(out.items())), failures)


def _shared(summaries: Sequence[ServiceSummary], shared_of: SharedRenderer, claims: _Claims
            ) -> tuple[list[Artifact], dict[str, str]]:
    """The shared artifacts that fit, and the owners among them that collide (owner -> why)."""
    local = _Claims()
    local.ids, local.paths = dict(claims.ids), dict(claims.paths)
    by_owner: dict[str, list[Artifact]] = {}
    for art in shared_of(summaries):
        by_owner.setdefault(art.owner, []).append(art)
    bad: dict[str, str] = {}
    kept: list[Artifact] = []
    for owner, artifacts in sorted(by_owner.items()):
        clash = local.conflict(artifacts, owner)
        if clash:
            bad[owner] = clash
            continue
        local.take(artifacts, owner)
        kept.extend(artifacts)
    return kept, bad
