"""Composition shared by the CLI and the service: settings -> templates, options, catalog, sinks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from obsctl.config import Settings
from obsctl.model.artifact import DesiredState
from obsctl.render import render_all
from obsctl.render.options import ReceiverSpec, RenderOptions, TeamRouting
from obsctl.sources.directory import read_directory, read_template_tree
from obsctl.spec.load import LoadResult, SourceFile, load_catalog
from obsctl.spec.templates import Templates, parse_templates


def load_templates(settings: Settings) -> Templates:
    """The platform data folders, parsed."""
    return parse_templates(read_template_tree(settings.templates_dir))


def _routing(page: list[object], ticket: list[object]) -> TeamRouting:
    def conv(items: list[object]) -> tuple[ReceiverSpec, ...]:
        return tuple(ReceiverSpec(r.name, r.type, tuple(sorted(r.settings.items())))  # type: ignore[attr-defined]
                     for r in items)
    return TeamRouting(conv(page), conv(ticket))


def render_options(settings: Settings) -> RenderOptions:
    """Plain values for the renderers."""
    teams = tuple(sorted((name, _routing(list(t.page), list(t.ticket)))
                         for name, t in settings.alerting.teams.items()))
    return RenderOptions(
        grafana_url=settings.grafana.public_url.rstrip("/"),
        prometheus_url=settings.prometheus.public_url.rstrip("/"),
        environment=settings.environment,
        teams=teams,
        default_routing=_routing(list(settings.alerting.default.page), list(settings.alerting.default.ticket)),
        collector=tuple(sorted(settings.collector.items())),
    )


@dataclass
class Rendered:
    """A loaded catalog and what it renders to."""

    load: LoadResult
    desired: DesiredState


def load_path(path: Path, settings: Settings, templates: Templates) -> LoadResult:
    """Load a catalog directory (or file)."""
    return load_catalog(read_directory(path, settings.catalog.globs), templates)


def render_files(files: list[SourceFile], settings: Settings, templates: Templates,
                 only: list[str] | None = None) -> Rendered:
    """Load and render catalog files."""
    result = load_catalog(files, templates)
    return Rendered(result, render_all(result.catalog, templates, render_options(settings), only))
