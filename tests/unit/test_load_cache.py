"""A serve round loads the whole catalog again: unchanged files are not parsed again, and a load from
the parse cache is the same load (services, teams, problems) as a fresh one."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from obsctl.sources.directory import read_template_tree
from obsctl.spec import load as load_module
from obsctl.spec.load import CatalogLoader, SourceFile, load_catalog
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


# -- the incremental loader: loading again only what changed equals a fresh load ---------------------

_TEAMS = ["team-a", "team-b", "team-c"]


def _component(name: str, owner: str, objective: str, tier: str) -> str:
    return (f"apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n  annotations:\n"
            f"    obsctl.dev/availability: \"{objective}\"\n    obsctl.dev/tier: \"{tier}\"\nspec:\n"
            f"  type: service\n  lifecycle: production\n  owner: {owner}\n")


def _native(name: str, owner: str, tier: str) -> str:
    return (f"apiVersion: obsctl.dev/v1\nkind: Service\nmetadata: {{name: {name}}}\n"
            f"spec: {{owner: {owner}, tier: {tier}}}\n")


def _group(name: str, title: str) -> str:
    return (f"apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {{name: {name}}}\n"
            f"spec: {{type: team, profile: {{displayName: {title}}}, children: []}}\n")


def _sloth(name: str, objective: str) -> str:
    return (f"version: prometheus/v1\nservice: {name}\nlabels: {{owner: team-a}}\nslos:\n  - name: requests\n"
            f"    objective: {objective}\n    sli:\n      events:\n"
            f"        error_query: 'sum(rate(http_requests_total{{job=\"{name}\",code=~\"5..\"}}[{{{{.window}}}}]))'\n"
            f"        total_query: 'sum(rate(http_requests_total{{job=\"{name}\"}}[{{{{.window}}}}]))'\n"
            f"    alerting:\n      page_alert: {{disable: true}}\n      ticket_alert: {{disable: true}}\n")


def _openslo(rnd: random.Random, name: str) -> str:
    """An OpenSLO SLI or SLO (an SLO refers to an SLI by name, often in another file)."""
    sli = rnd.choice(["sli-1", "sli-2"])
    if rnd.random() < 0.5:
        return (f"apiVersion: openslo/v1\nkind: SLI\nmetadata: {{name: {sli}}}\nspec:\n  ratioMetric:\n"
                f"    counter: true\n    good: {{metricSource: {{type: Prometheus, spec: {{query: "
                f"'sum(rate(ok_total[{{{{window}}}}]))'}}}}}}\n    total: {{metricSource: {{type: Prometheus, spec: "
                f"{{query: '{rnd.choice(['sum(rate(all_total[{{window}}]))', 'sum(('])}'}}}}}}\n")
    return (f"apiVersion: openslo/v1\nkind: SLO\nmetadata: {{name: slo-{rnd.randrange(3)}}}\nspec:\n"
            f"  service: {name}\n  indicatorRef: {sli}\n  budgetingMethod: Occurrences\n"
            f"  timeWindow: [{{duration: 30d, isRolling: true}}]\n  objectives: [{{target: 0.99}}]\n")


def _random_doc(rnd: random.Random) -> str:
    name = rnd.choice(["a", "b", "c", "d", "e", "f"])  # few names: duplicates across files are common
    owner = rnd.choice([*_TEAMS, "team-z", "bad owner!"])
    pick = rnd.random()
    if pick < 0.4:
        return _component(name, owner, rnd.choice(["99.9", "99.5", "abc", "101"]), rnd.choice(["1", "2", "9"]))
    if pick < 0.6:
        return _native(name, owner, rnd.choice(["1", "3", "x"]))
    if pick < 0.75:
        return _group(rnd.choice([*_TEAMS, "team-z"]), rnd.choice(["One", "Two"]))
    if pick < 0.85:
        return _sloth(name, rnd.choice(["99.9", "99", "150"]))
    if pick < 0.88:
        return _openslo(rnd, name)
    if pick < 0.94:
        return rnd.choice(["kind: [unclosed\n", "- just a list\n", "apiVersion: nope/v1\nkind: Thing\n",
                           "apiVersion: backstage.io/v1alpha1\nkind: System\nmetadata: {name: sys}\n"])
    return _component(name, owner, "99.9", "1") + "metadata: {name: dup}\n"  # a duplicate key


def _random_file(rnd: random.Random) -> bytes:
    return "---\n".join(_random_doc(rnd) for _ in range(rnd.choice([1, 1, 1, 2, 3]))).encode()


@pytest.mark.parametrize("seed", range(6))
def test_loading_again_what_changed_equals_a_fresh_load(seed: int) -> None:
    rnd = random.Random(seed)
    files = {f"f{i}.yaml": _random_file(rnd) for i in range(8)}
    files["teams.yaml"] = "---\n".join(_group(t, "T") for t in _TEAMS).encode()
    loader = CatalogLoader(TEMPLATES)
    for step in range(40):
        op = rnd.random()
        path = rnd.choice(sorted(files))
        if op < 0.45:
            files[path] = _random_file(rnd)
        elif op < 0.65:
            files[f"n{rnd.randrange(20)}.yaml"] = _random_file(rnd)
        elif op < 0.85 and len(files) > 3:
            del files[path]
        elif op < 0.95:
            files["teams.yaml"] = "---\n".join(_group(t, rnd.choice(["T", "U"])) for t in _TEAMS
                                                if rnd.random() < 0.8).encode()
        sources = [SourceFile(p, data) for p, data in rnd.sample(sorted(files.items()), len(files))]
        got = loader.load(sources)
        if step % 10 == 0:
            load_module._PARSED.clear()
            load_module._ASSEMBLED.clear()
        expected = load_catalog(sources, TEMPLATES)
        assert got == expected, f"step {step}"
        for svc in got.catalog.services:
            assert loader.service(svc.ref) is svc


def test_only_the_changed_files_and_their_services_are_loaded_again() -> None:
    files = {f"s{i}.yaml": _component(f"s{i}", "team-a", "99.9", "1").encode() for i in range(50)}
    files["teams.yaml"] = _group("team-a", "A").encode()
    loader = CatalogLoader(TEMPLATES)
    first = loader.load([SourceFile(p, d) for p, d in files.items()])
    assert loader.changed_refs is None and len(first.catalog.services) == 50
    files["s7.yaml"] = _component("s7", "team-a", "99.5", "1").encode()
    files["s8.yaml"] = _native("s3", "team-a", "2").encode()  # s8's file now adds to s3 (and s8 is gone)
    again = loader.load([SourceFile(p, d) for p, d in files.items()])
    assert {r.name for r in loader.changed_refs or ()} == {"s3", "s7", "s8"}
    assert loader.changed_teams == frozenset()
    assert again == load_catalog([SourceFile(p, d) for p, d in files.items()], TEMPLATES)
    kept = {s.name: s for s in first.catalog.services}
    assert all(s is kept[s.name] for s in again.catalog.services if s.name not in {"s3", "s7"})
    assert loader.load([SourceFile(p, d) for p, d in files.items()]) is again  # nothing changed
    assert loader.changed_refs == frozenset()


@pytest.mark.parametrize("seed", range(3))
def test_the_routing_check_of_what_changed_equals_a_whole_check(seed: int) -> None:
    from obsctl.app import RoutingCheck, check_routing, render_options
    from obsctl.config import load_settings

    # team-a has receivers; the default route has none: every other team's alerts have no destination
    settings = load_settings(alerting={"teams": {"team-a": {"page": [{"name": "pa", "type": "webhook",
                                                                      "settings": {"url": "http://x/"}}],
                                                            "ticket": [{"name": "ta", "type": "webhook",
                                                                        "settings": {"url": "http://x/"}}]}}})
    options = render_options(settings)
    rnd = random.Random(seed)
    files = {f"f{i}.yaml": _random_file(rnd) for i in range(8)}
    loader, check = CatalogLoader(TEMPLATES), RoutingCheck(TEMPLATES, options)
    saw_problems = False
    for _ in range(30):
        path = rnd.choice(sorted(files))
        if rnd.random() < 0.7:
            files[path] = _random_file(rnd)
        elif len(files) > 3:
            del files[path]
        sources = [SourceFile(p, data) for p, data in sorted(files.items())]
        got = check.check(loader.load(sources), loader)
        expected = check_routing(load_catalog(sources, TEMPLATES), TEMPLATES, options)
        assert got == expected
        saw_problems = saw_problems or any(p.field.startswith("routing.") for p in got.problems)
    assert saw_problems  # the check had something to find
