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


def _fresh(files: list[SourceFile]) -> object:
    load_module._PARSED.clear()
    load_module._ASSEMBLED.clear()
    return load_catalog(files, TEMPLATES)


def test_validated_documents_and_services_are_reused_and_equal_a_fresh_load() -> None:
    bad = _svc("c").replace(b'"99.9"', b'"abc"')  # a spec error in one document: skipped, located
    native = (b"apiVersion: obsctl.dev/v1\nkind: Service\nmetadata: {name: n}\n"
              b"spec: {owner: team-b, tier: 2}\n")  # team-b is not in the catalog: a warning
    files = [SourceFile("teams.yaml", TEAM), SourceFile("a.yaml", _svc("a")), SourceFile("c.yaml", bad),
             SourceFile("n.yaml", native)]
    fresh = _fresh(files)
    first = load_catalog(files, TEMPLATES)
    again = load_catalog(files, TEMPLATES)
    assert first == fresh == again
    assert again.skipped and any("team-b" in p.message for p in again.problems)
    # the same Service objects: an unchanged document is neither validated nor assembled again
    assert all(x is y for x, y in zip(first.catalog.services, again.catalog.services, strict=True))
    # a team that appears changes what the services owned by it are told, without their files changing
    team_b = TEAM.replace(b"team-a", b"team-b")
    with_b = [*files, SourceFile("team-b.yaml", team_b)]
    assert load_catalog(with_b, TEMPLATES) == _fresh(with_b)
    assert not any("team-b" in p.message and "not found" in p.message for p in load_catalog(with_b, TEMPLATES).problems)
    # an edit is seen; the other services stay the same objects
    edited = [files[0], SourceFile("a.yaml", _svc("a", "99.5")), *files[2:]]
    expected = _fresh(edited)
    before = {s.name: s for s in load_catalog(files, TEMPLATES).catalog.services}
    after = load_catalog(edited, TEMPLATES)
    assert after == expected
    by_name = {s.name: s for s in after.catalog.services}
    assert by_name["a"].slos[0].objective == 0.995 and by_name["n"] is before["n"]
