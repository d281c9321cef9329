"""Per-service render isolation: a service that fails to render, or collides with another owner's
identifiers after normalisation, fails alone, located; every other service renders unchanged."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from obsctl import app
from obsctl.config import Settings
from obsctl.model.entities import Catalog, Service
from obsctl.render import render_all
from obsctl.render import rules as rules_renderer
from obsctl.render.incremental import IncrementalRenderer
from obsctl.render.isolated import render_isolated
from obsctl.sources.directory import read_directory
from obsctl.spec.load import SourceFile, load_catalog

SETTINGS = Settings()
TEMPLATES = app.load_templates(SETTINGS)
OPTIONS = app.render_options(SETTINGS)


def doc(name: str, owner: str = "team-x") -> dict[str, Any]:
    return {"apiVersion": "obsctl.dev/v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"owner": owner, "slos": [{"name": "availability", "objective": 99.9,
                                               "sli": {"availability": {}}}]}}


def catalog_with(*docs: dict[str, Any]) -> Catalog:
    files = read_directory(SETTINGS.catalog.path, SETTINGS.catalog.globs)
    files.append(SourceFile("extra.yaml", yaml.safe_dump_all(list(docs)).encode()))
    result = load_catalog(files, TEMPLATES)
    assert not result.errors, result.errors
    return result.catalog


def test_collisions_fail_the_later_owner_only() -> None:
    catalog = catalog_with(doc("search.api", "team-search"), doc("zz", "team.payments"), doc("fine"))
    res = render_isolated(catalog, TEMPLATES, OPTIONS)
    assert set(res.failures) == {"default/search.api", "default/zz", "default/team.payments"}
    assert "component:default/search-api" in res.failures["default/search.api"].error
    assert "group:default/team-payments" in res.failures["default/team.payments"].error
    clean = Catalog(tuple(s for s in catalog.services if s.name not in ("search.api", "zz")), catalog.teams)
    assert res.desired == render_all(clean, TEMPLATES, OPTIONS)  # the others: byte for byte as without them
    with pytest.raises(ValueError, match="share the id"):  # what a whole-catalog render does instead
        render_all(catalog, TEMPLATES, OPTIONS)


def test_a_renderer_crash_fails_that_service_only(monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = catalog_with(doc("boom"), doc("fine"))
    real = rules_renderer.render_service

    def crashing(svc: Service, ctx: Any) -> Any:
        if svc.name == "boom":
            raise OverflowError("cannot convert float infinity to integer")
        return real(svc, ctx)

    monkeypatch.setattr(rules_renderer, "render_service", crashing)
    res = render_isolated(catalog, TEMPLATES, OPTIONS)
    assert list(res.failures) == ["default/boom"]
    assert "OverflowError" in res.failures["default/boom"].error
    assert not any(a.owner == "component:default/boom" for a in res.desired.values())
    assert any(a.owner == "component:default/fine" for a in res.desired.values())


def test_incremental_isolated_render_equals_the_full_one_and_recovers() -> None:
    renderer = IncrementalRenderer(TEMPLATES, OPTIONS)
    clean = catalog_with(doc("fine"))
    assert renderer.isolated(clean).desired == render_all(clean, TEMPLATES, OPTIONS)
    poisoned = catalog_with(doc("search.api", "team-search"), doc("zz", "team.payments"), doc("fine"))
    got = renderer.isolated(poisoned)
    want = render_isolated(poisoned, TEMPLATES, OPTIONS)
    assert got.desired == want.desired and set(got.failures) == set(want.failures)
    assert renderer.stats.reused >= len(clean.services) - 1  # unchanged services (not "fine": it moved) reused
    assert renderer.isolated(clean).desired == render_all(clean, TEMPLATES, OPTIONS)
