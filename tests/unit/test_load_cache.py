"""A serve round loads the whole catalog again: unchanged files are not parsed again, and a load from
the parse cache is the same load (services, teams, problems) as a fresh one."""

from __future__ import annotations

from pathlib import Path

from obsctl.sources.directory import read_template_tree
from obsctl.spec import load as load_module
from obsctl.spec.load import SourceFile, load_catalog
from obsctl.spec.templates import parse_templates

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = parse_templates(read_template_tree(ROOT))
TEAM = b"apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: team-a}\nspec: {type: team, children: []}\n"


def _svc(name: str, objective: str = "99.9") -> bytes:
    return (f"apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n  annotations:\n"
            f"    obsctl.dev/availability: \"{objective}\"\nspec:\n  type: service\n  lifecycle: production\n"
            f"  owner: team-a\n").encode()


def test_cached_load_equals_a_fresh_load_and_changes_are_seen() -> None:
    files = [SourceFile("teams.yaml", TEAM), SourceFile("a.yaml", _svc("a")),
             SourceFile("b.yaml", _svc("b") + b"metadata: {name: dup}\n")]  # a duplicate key: a problem
    load_module._PARSED.clear()
    fresh = load_catalog(files, TEMPLATES)
    cached = load_catalog(files, TEMPLATES)
    assert fresh == cached and any("duplicate key" in str(p) for p in cached.problems)
    changed = [files[0], SourceFile("a.yaml", _svc("a", "99.5")), files[2]]
    again = load_catalog(changed, TEMPLATES)
    slo = next(s for s in again.catalog.services if s.name == "a").slos[0]
    assert slo.objective == 0.995
    assert load_catalog(changed, TEMPLATES) == again
