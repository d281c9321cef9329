"""Pure renderers: (catalog, templates, options) -> artifacts. No I/O, no clock, no randomness."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from obsctl.model.artifact import Artifact, DesiredState, desired_state
from obsctl.model.entities import Catalog
from obsctl.render.options import RenderOptions
from obsctl.spec.templates import Templates

Renderer = Callable[[Catalog, Templates, RenderOptions], list[Artifact]]


def renderers() -> dict[str, Renderer]:
    """Every renderer obsctl has, by name. Imported lazily so one module's bug names itself."""
    found: dict[str, Renderer] = {}
    import importlib

    for name, module in (("rules", "obsctl.render.rules"), ("alertmanager", "obsctl.render.routes"),
                         ("dashboards", "obsctl.render.dashboards"), ("collectors", "obsctl.render.collectors")):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        found[name] = mod.render
    return found


def render_all(catalog: Catalog, templates: Templates, options: RenderOptions,
               only: Sequence[str] | None = None) -> DesiredState:
    """Run every renderer (or those named) and index the artifacts by id."""
    artifacts: list[Artifact] = []
    for name, fn in renderers().items():
        if only and name not in only:
            continue
        artifacts.extend(fn(catalog, templates, options))
    return desired_state(artifacts)
