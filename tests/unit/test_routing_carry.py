"""A team that loses its routing while `obsctl serve` runs keeps its last good route.

A team's Group going invalid (a broken document, a routing annotation that is no longer a valid id)
is reported as an error on the Group (file, entity, field) and the Alertmanager config keeps routing
the team's alerts where they went before; a valid team whose receivers are gone is the routing
check's error on its services, and its route stays too. Every other team follows the catalog.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsctl.app import catalog_loader, catalog_renderer, converge_path, directory_sink, load_templates
from obsctl.config import Settings, load_settings
from obsctl.errors import Severity
from obsctl.model.artifact import Kind
from obsctl.model.source import SourceFile
from obsctl.reconcile.desired import Desired, DesiredStates
from obsctl.spec.load import LoadResult

HOOK = "http://127.0.0.1:9"


def _settings(default_page: bool) -> Settings:
    default: dict[str, Any] = {"ticket": [{"name": "t", "type": "webhook", "settings": {"url": f"{HOOK}/ticket"}}]}
    if default_page:
        default["page"] = [{"name": "p", "type": "webhook", "settings": {"url": f"{HOOK}/default-page"}}]
    return load_settings(None, alerting={
        "catalog": {"pagerduty": {"severities": ["page"], "settings": {"routing_key_file": "/keys/{service_id}"}}},
        "default": default})


def _group(name: str, service_id: str) -> dict[str, Any]:
    return {"apiVersion": "backstage.io/v1alpha1", "kind": "Group",
            "metadata": {"name": name, "annotations": {"pagerduty.com/service-id": service_id}},
            "spec": {"type": "team"}}


def _component(name: str, owner: str) -> dict[str, Any]:
    return {"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": {"name": name, "annotations": {"obsctl.dev/availability": "99.9"}},
            "spec": {"type": "service", "lifecycle": "production", "owner": owner}}


def _files(team_a: Any, team_b_id: str = "PBBB") -> list[SourceFile]:
    team_a_text = team_a if isinstance(team_a, str) else yaml.safe_dump(team_a)
    return [SourceFile("teams/a.yaml", team_a_text.encode()),
            SourceFile("teams/b.yaml", yaml.safe_dump(_group("team-b", team_b_id)).encode()),
            SourceFile("services.yaml", yaml.safe_dump_all([_component("pay", "team-a"),
                                                            _component("search", "team-b")]).encode())]


def _page_route(d: Desired, team: str) -> list[str]:
    """The PagerDuty routing keys the team's page alerts reach."""
    [body] = [a.body for a in d.desired.values() if a.kind is Kind.ALERTMANAGER_CONFIG]
    doc = yaml.safe_load(body)
    receivers = {r["name"]: r for r in doc["receivers"]}
    [route] = [r for r in doc["route"]["routes"] if r["matchers"] == [f'team="{team}"']]
    out = []
    for sub in route.get("routes", []):
        if sub["matchers"] == ['obsctl_severity="page"']:
            rec = receivers[sub["receiver"]]
            out += [c["routing_key_file"] for c in rec.get("pagerduty_configs", [])]
            out += [c["url"] for c in rec.get("webhook_configs", [])]
    return out


BROKEN_GROUPS = {
    "invalid pagerduty id": yaml.safe_dump(_group("team-a", "not an id!")),
    "invalid document": yaml.safe_dump({**_group("team-a", "PAAA"), "spec": ["not", "a", "mapping"]}),
    "not yaml": "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: team-a\n",
}


@pytest.mark.parametrize("default_page", [False, True], ids=["no-default-page", "default-page"])
@pytest.mark.parametrize("broken", sorted(BROKEN_GROUPS))
def test_an_invalid_team_keeps_its_last_good_route_and_is_reported(broken: str, default_page: bool) -> None:
    settings = _settings(default_page)
    templates = load_templates(settings)
    states = DesiredStates(catalog_loader(templates, settings), catalog_renderer(settings, templates))
    first = states.build(_files(_group("team-a", "PAAA")), True, (), 0.0)
    states.accept(first)
    assert _page_route(first, "team-a") == ["/keys/PAAA"]

    # team-a's Group breaks; team-b moves to another PagerDuty service in the same round
    second = states.build(_files(BROKEN_GROUPS[broken], team_b_id="PBNEW"), True, (), 1.0)
    states.accept(second)
    assert _page_route(second, "team-a") == ["/keys/PAAA"], "team-a's pages must keep their last good route"
    assert _page_route(second, "team-b") == ["/keys/PBNEW"], "the other team follows the catalog"
    assert any("teams/a.yaml" in p for p in second.problems), second.problems
    if broken != "not yaml":
        [problem] = [p for p in second.problems if "group:default/team-a" in p]
        assert "teams/a.yaml" in problem
    assert any("group:default/team-a" in c for c in second.carried), second.carried

    # fixed: the Group's new routing is taken
    third = states.build(_files(_group("team-a", "PAFIX")), True, (), 2.0)
    assert _page_route(third, "team-a") == ["/keys/PAFIX"]
    assert not third.problems


def test_a_valid_team_whose_receivers_go_keeps_its_route_and_its_services_are_errors() -> None:
    settings = _settings(default_page=False)
    templates = load_templates(settings)
    states = DesiredStates(catalog_loader(templates, settings), catalog_renderer(settings, templates))
    first = states.build(_files(_group("team-a", "PAAA")), True, (), 0.0)
    states.accept(first)
    bare = {**_group("team-a", "x"), "metadata": {"name": "team-a"}}  # valid, but no routing annotation
    second = states.build(_files(bare), True, (), 1.0)
    states.accept(second)
    assert _page_route(second, "team-a") == ["/keys/PAAA"]
    [problem] = second.problems
    assert "services.yaml" in problem and "component:default/pay" in problem and "routing.team-a.page" in problem
    assert "page alerts of component:default/pay have no destination" in problem


def test_a_one_off_render_keeps_the_alertmanager_config_while_a_team_is_invalid(tmp_path: Path) -> None:
    """`render --out`/`apply` have no memory of the last good Group: the config in place is the team's last good
    route, so it is neither written nor pruned while some team's routing is lost, with a warning naming the team;
    every other artifact follows the catalog."""
    settings = _settings(default_page=True)
    templates = load_templates(settings)
    catalog, out = tmp_path / "catalog", tmp_path / "out"

    def converge(files: list[SourceFile]) -> LoadResult:
        shutil.rmtree(catalog, ignore_errors=True)
        for f in files:
            (catalog / f.path).parent.mkdir(parents=True, exist_ok=True)
            (catalog / f.path).write_bytes(f.data)
        result, _run = converge_path(catalog, settings, templates, [directory_sink(settings, out)])
        return result

    converge(_files(_group("team-a", "PAAA")))
    [config] = out.rglob("alertmanager*.y*ml")
    before = config.read_bytes()
    assert b"/keys/PAAA" in before
    files = _files(BROKEN_GROUPS["invalid pagerduty id"], team_b_id="PBNEW")
    new = yaml.safe_dump(_component("new", "team-b")).encode()
    files[2] = SourceFile("services.yaml", files[2].data + b"---\n" + new)
    result = converge(files)
    assert config.read_bytes() == before
    assert any(p.name.startswith("new") for p in out.rglob("*.rules.yml")), "the other artifacts follow the catalog"
    [warning] = [p for p in result.problems if p.field == "routing"]
    assert warning.file.endswith("teams/a.yaml")
    assert (warning.entity, warning.severity) == ("group:default/team-a", Severity.WARNING)
    assert "kept as it is" in warning.message
    # fixed: written again
    converge(_files(_group("team-a", "PAFIX"), team_b_id="PBNEW"))
    assert b"/keys/PAFIX" in config.read_bytes() and b"/keys/PBNEW" in config.read_bytes()


def test_the_one_off_warning_names_a_team_in_its_own_namespace() -> None:
    from obsctl.app import check_routing, hold_routes, render_options
    from obsctl.spec.load import load_catalog

    settings = _settings(default_page=False)
    templates = load_templates(settings)
    group = {**_group("team-ns", "x"), "metadata": {"name": "team-ns", "namespace": "payments"}}  # no receivers
    component = _component("pay", "payments/team-ns")
    files = [SourceFile("g.yaml", yaml.safe_dump(group).encode()),
             SourceFile("c.yaml", yaml.safe_dump(component).encode())]
    result = check_routing(load_catalog(files, templates), templates, render_options(settings))
    assert hold_routes(result)
    [warning] = [p for p in result.problems if p.field == "routing"]
    assert (warning.file, warning.entity) == ("c.yaml", "group:payments/team-ns")
