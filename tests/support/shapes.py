"""Renders a catalog twice, by per-shape substitution and built service by service, for equality tests."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from obsctl.errors import SpecError
from obsctl.model.entities import Catalog
from obsctl.render.context import RenderContext
from obsctl.render.options import RenderOptions
from obsctl.spec.templates import Templates


def substituted_and_built(renderer: ModuleType, shape_compiler: str, catalog: Catalog, templates: Templates,
                          options: RenderOptions, monkeypatch: pytest.MonkeyPatch,
                          ) -> tuple[list[Any], list[Any], RenderContext]:
    """Every service's artifacts (or its problems) from `renderer.render_service`: first as rendered,
    then with `renderer.<shape_compiler>` answering None, which makes every shape build per service."""
    ctx = RenderContext.of(catalog, templates, options)

    def each(context: RenderContext) -> list[Any]:
        out: list[Any] = []
        for svc in catalog.services:
            try:
                out.append([(a.id, a.path, a.body) for a in renderer.render_service(svc, context)])
            except SpecError as exc:
                out.append(exc.problems)
        return out

    substituted = each(ctx)
    with monkeypatch.context() as m:
        m.setattr(renderer, shape_compiler, lambda *_a: None)
        built = each(RenderContext.of(catalog, templates, options))
    return substituted, built, ctx
