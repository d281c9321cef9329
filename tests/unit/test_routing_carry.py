"""A team that loses its routing while `obsctl serve` runs keeps its last good route.

A team's Group going invalid (a broken document, a routing annotation that is no longer a valid id)
is reported as an error on the Group (file, entity, field) and the Alertmanager config keeps routing
the team's alerts where they went before; a valid team whose receivers are gone is the routing
check's error on its services, and its route stays too. Every other team follows the catalog.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
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


def _one_off(tmp_path: Path, settings: Settings) -> Callable[[list[SourceFile]], LoadResult]:
    """A one-off `render --out` of a catalog's files (each call replaces the catalog) into tmp_path/out."""
    templates = load_templates(settings)
    catalog, out = tmp_path / "catalog", tmp_path / "out"

    def converge(files: list[SourceFile]) -> LoadResult:
        shutil.rmtree(catalog, ignore_errors=True)
        for f in files:
            (catalog / f.path).parent.mkdir(parents=True, exist_ok=True)
            (catalog / f.path).write_bytes(f.data)
        result, _run = converge_path(catalog, settings, templates, [directory_sink(settings, out)])
        return result

    return converge


def _config_doc(tmp_path: Path) -> dict[str, Any]:
    [config] = (tmp_path / "out").rglob("alertmanager*.y*ml")
    doc: dict[str, Any] = yaml.safe_load(config.read_bytes())
    return doc


def _team_part(doc: dict[str, Any], team: str) -> tuple[list[Any], list[Any]]:
    """A team's routes and the receivers they name, as the config has them."""
    mine = [r for r in doc["route"]["routes"] if r["matchers"] == [f'team="{team}"']]
    names: set[str] = set()
    todo = list(mine)
    while todo:
        route = todo.pop()
        names.add(route["receiver"])
        todo.extend(route.get("routes", []))
    return mine, [r for r in doc["receivers"] if r["name"] in names - {"obsctl-default"}]


def _routing_keys(doc: dict[str, Any], team: str) -> list[str]:
    routes, receivers = _team_part(doc, team)
    by_name = {r["name"]: r for r in receivers}
    return [c.get("routing_key_file") or c.get("url") for route in routes for sub in route.get("routes", [])
            if sub["matchers"] == ['obsctl_severity="page"']
            for c in by_name[sub["receiver"]].get("pagerduty_configs", []) + by_name[sub["receiver"]].get(
                "webhook_configs", [])]


def _more_teams(files: list[SourceFile], *extra: tuple[dict[str, Any], dict[str, Any]]) -> list[SourceFile]:
    """The files with more (Group, Component) pairs, each in its own file."""
    return [*files, *(SourceFile(f"more/{g['metadata']['name']}.yaml", yaml.safe_dump_all([g, c]).encode())
                      for g, c in extra)]


@pytest.mark.parametrize("default_page", [False, True], ids=["no-default-page", "default-page"])
@pytest.mark.parametrize("broken", sorted(BROKEN_GROUPS))
def test_a_one_off_render_holds_only_the_route_of_the_team_whose_routing_is_lost(
        tmp_path: Path, broken: str, default_page: bool) -> None:
    """`render --out`/`apply` have no memory of the last good Group: the config in place has the team's last good
    route and receivers, so those are kept as they are there (byte for byte) and every other team follows the
    catalog in the same run: another team's new PagerDuty service, a new team's route. A new team with no receiver
    is held the same way (it had no route: it gets none). A Group file that is not YAML hides what it held: the
    whole config is kept as it is until it parses."""
    converge = _one_off(tmp_path, _settings(default_page))
    converge(_files(_group("team-a", "PAAA")))
    before = _config_doc(tmp_path)
    assert _routing_keys(before, "team-a") == ["/keys/PAAA"]

    bare = {**_group("team-d", "x"), "metadata": {"name": "team-d"}}  # valid, no receiver of its own
    result = converge(_more_teams(_files(BROKEN_GROUPS[broken], team_b_id="PBNEW"),
                                  (_group("team-c", "PCCC"), _component("new", "team-c")),
                                  (bare, _component("lonely", "team-d"))))
    after = _config_doc(tmp_path)
    if broken == "not yaml":
        # which services and teams that file held is unknown (the read is incomplete): the whole config is kept
        assert after == before
        [kept] = [p for p in result.problems if p.field == "routing"]
        assert kept.file.endswith("teams/a.yaml") and kept.severity is Severity.WARNING
        assert "kept as it is (not written): this catalog read is incomplete" in kept.message
        converge(_files(_group("team-a", "PAFIX"), team_b_id="PBNEW"))
        assert _routing_keys(_config_doc(tmp_path), "team-a") == ["/keys/PAFIX"]
        assert _routing_keys(_config_doc(tmp_path), "team-b") == ["/keys/PBNEW"]
        return
    assert _team_part(after, "team-a") == _team_part(before, "team-a"), "team-a keeps its route as it was"
    assert _routing_keys(after, "team-b") == ["/keys/PBNEW"], "another team's change is taken"
    assert _routing_keys(after, "team-c") == ["/keys/PCCC"], "a new team gets its route"
    if default_page:  # team-d routes to the platform's default
        assert _routing_keys(after, "team-d") == [f"{HOOK}/default-page"]
    else:  # team-d's services have no destination: held, and it had no route in place
        assert _team_part(after, "team-d") == ([], [])
    warned = {p.entity: p for p in result.problems if p.field == "routing"}
    assert set(warned) == {"group:default/team-a"} | ({"group:default/team-d"} if not default_page else set())
    warning = warned["group:default/team-a"]
    assert warning.file.endswith("teams/a.yaml") and warning.severity is Severity.WARNING
    assert "route and receivers are kept as the Alertmanager config in place has them" in warning.message
    if not default_page:  # nothing of team-d's was in place, and nothing of it is kept: the warning says so
        assert warned["group:default/team-d"].message == (
            "the Alertmanager config in place has no route for this team, so it gets none (this read renders no "
            "service of it): its alerts go to the default receiver obsctl-default: this team's routing is lost in "
            "this catalog read (see its errors)")

    # fixed: the Group's routing is taken again
    converge(_files(_group("team-a", "PAFIX"), team_b_id="PBNEW"))
    assert _routing_keys(_config_doc(tmp_path), "team-a") == ["/keys/PAFIX"]


def test_a_held_teams_lines_are_written_again_byte_for_byte(tmp_path: Path) -> None:
    """The held team's route and receivers are the same lines as the config in place, while another team's change
    is taken in the same run: the config is byte for byte what the catalog with team-a's last good Group gives."""
    converge = _one_off(tmp_path, _settings(default_page=False))
    converge(_files(_group("team-a", "PAAA")))
    [config] = (tmp_path / "out").rglob("alertmanager*.y*ml")
    before = config.read_bytes()
    converge(_files(BROKEN_GROUPS["invalid pagerduty id"], team_b_id="PBNEW"))
    assert config.read_bytes() != before  # team-b's change landed: not the whole config held
    (tmp_path / "ref").mkdir()
    _one_off(tmp_path / "ref", _settings(default_page=False))(_files(_group("team-a", "PAAA"), team_b_id="PBNEW"))
    [expected] = (tmp_path / "ref" / "out").rglob("alertmanager*.y*ml")
    assert config.read_bytes() == expected.read_bytes()


def test_a_config_in_place_that_cannot_be_read_is_kept_whole(tmp_path: Path) -> None:
    """Never drop a held team's route on an incomplete read: a config in place that is not a config obsctl can
    read (edited by hand into something else) is neither written nor pruned, as before."""
    converge = _one_off(tmp_path, _settings(default_page=True))
    converge(_files(_group("team-a", "PAAA")))
    [config] = (tmp_path / "out").rglob("alertmanager*.y*ml")
    config.write_bytes(b"route: [not, a, config\n")
    result = converge(_files(BROKEN_GROUPS["invalid pagerduty id"], team_b_id="PBNEW"))
    assert config.read_bytes() == b"route: [not, a, config\n"
    [warning] = [p for p in result.problems if p.field == "routing"]
    assert "the Alertmanager config is kept as it is (not written: the Alertmanager config in place is not a YAML " \
        "config with a route obsctl can read)" in warning.message, warning.message


@pytest.mark.parametrize("value", ["2024-01-01", "!!binary aGk=", "!!set {a: null}"])
def test_a_held_part_the_writer_cannot_write_again_keeps_the_config_whole(tmp_path: Path, value: str) -> None:
    """A value edited by hand into the held team's lines that the YAML loader reads as something the writer cannot
    emit (a date, bytes, a set) makes the config in place unreadable: kept whole with its warning, never a crash."""
    converge = _one_off(tmp_path, _settings(default_page=True))
    converge(_files(_group("team-a", "PAAA")))
    [config] = (tmp_path / "out").rglob("alertmanager*.y*ml")
    edited = config.read_bytes().replace(b"routing_key_file: /keys/PAAA",
                                         b"routing_key_file: /keys/PAAA\n    details: {since: " + value.encode() + b"}")
    config.write_bytes(edited)
    result = converge(_files(BROKEN_GROUPS["invalid pagerduty id"], team_b_id="PBNEW"))
    assert config.read_bytes() == edited
    [warning] = [p for p in result.problems if p.field == "routing"]
    assert "the Alertmanager config is kept as it is (not written: the Alertmanager config in place has lines of " \
        "group:default/team-a that cannot be written again" in warning.message, warning.message


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


@pytest.mark.parametrize("default_page", [False, True], ids=["no-default-page", "default-page"])
@pytest.mark.parametrize("broken", sorted(BROKEN_GROUPS))
def test_serve_restarted_while_a_team_is_invalid_keeps_its_route_from_the_config_in_place(
        tmp_path: Path, broken: str, default_page: bool) -> None:
    """The last good Group lives in serve's memory only: after a restart the Alertmanager config in place is the
    team's last good route, so a fresh loop keeps that team's part of it, round after round, while the other teams
    follow the catalog; once the Group is fixed, its routing is taken. A file that does not parse hides what it held:
    the whole config is kept as it is until it parses."""
    from obsctl.reconcile.loop import LoopConfig, Reconciler
    from obsctl.sinks.files import FilesSink
    from tests.unit.test_loop import NO_RETRY, MemSource

    settings = _settings(default_page)
    templates = load_templates(settings)

    def started(files: list[SourceFile]) -> tuple[MemSource, Reconciler]:
        """A new serve process (nothing in memory) over the same output directory."""
        source = MemSource({f.path: f.data for f in files})
        renderer = catalog_renderer(settings, templates)
        sink = FilesSink(tmp_path / "out", {Kind.PROMETHEUS_RULES, Kind.ALERTMANAGER_CONFIG})
        return source, Reconciler(source, catalog_loader(templates, settings), renderer, [sink],
                                  config=LoopConfig(retry=NO_RETRY), hold_routes=renderer.hold_routes)

    _source, first = started(_files(_group("team-a", "PAAA")))
    assert not first.run_once().problems
    before = _config_doc(tmp_path)
    assert _routing_keys(before, "team-a") == ["/keys/PAAA"]

    # team-a's Group broke while serve was down; team-b moved to another PagerDuty service and team-c is new; so is
    # team-d, with no receiver of its own (routed to the platform's default page receiver, if any)
    bare = {**_group("team-d", "x"), "metadata": {"name": "team-d"}}
    source, second = started(_more_teams(_files(BROKEN_GROUPS[broken], team_b_id="PBNEW"),
                                         (_group("team-c", "PCCC"), _component("new", "team-c")),
                                         (bare, _component("lonely", "team-d"))))
    for _round in range(2):  # and every round after (the config in place is now what this loop wrote)
        report = second.run_once()
        after = _config_doc(tmp_path)
        if broken == "not yaml":  # what that file held is unknown since the start: the config is kept as it is
            assert after == before
            assert any("teams/a.yaml does not parse" in c for c in report.carried), report.carried
            continue
        assert _team_part(after, "team-a") == _team_part(before, "team-a"), "team-a keeps its route as it was"
        assert _routing_keys(after, "team-b") == ["/keys/PBNEW"] and _routing_keys(after, "team-c") == ["/keys/PCCC"]
        assert any(c.startswith("group:default/team-a") and "config in place" in c for c in report.carried), \
            report.carried
        assert report.problems
        team_d = [c for c in report.carried if c.startswith("group:default/team-d")]
        if default_page:
            assert team_d == []
        else:  # its services have no destination: its routing is lost, and the config in place has nothing of it
            assert _team_part(after, "team-d") == ([], [])
            assert team_d == ["group:default/team-d (its routing: the Alertmanager config in place has no route for "
                              "this team, so it gets none (this read renders no service of it): its alerts go to the "
                              "default receiver obsctl-default)"], team_d

    source.docs["teams/a.yaml"] = yaml.safe_dump(_group("team-a", "PAFIX")).encode()
    second.run_once()
    assert _routing_keys(_config_doc(tmp_path), "team-a") == ["/keys/PAFIX"]
    assert _routing_keys(_config_doc(tmp_path), "team-b") == ["/keys/PBNEW"]


SERVE_EDITS: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "not yaml": (lambda _b: b"route: [edited by hand\n",
                 "the Alertmanager config in place is not a YAML config with a route obsctl can read"),
    "shared receiver": (lambda b: _share_team_b(b),  # noqa: PLW0108 - defined further down
                        "group:default/team-a's route in the Alertmanager config in place names receivers that are "
                        "not its own or may be another team's, which would be defined twice beside the teams the "
                        "catalog routes: obsctl-team-b-page"),
}


@pytest.mark.parametrize("edit", sorted(SERVE_EDITS))
def test_serve_restarted_with_a_config_in_place_it_cannot_read_keeps_the_config_whole(tmp_path: Path,
                                                                                       edit: str) -> None:
    """No team part is taken from an incomplete read: a config in place that cannot be read back (or whose held part
    cannot be kept beside the others) is kept as it is (neither written nor pruned) while a team's routing is lost
    and no last good Group is known; the round's report says why, naming the team and the receivers."""
    from obsctl.reconcile.loop import LoopConfig, Reconciler
    from obsctl.sinks.files import FilesSink
    from tests.unit.test_loop import NO_RETRY, MemSource

    settings = _settings(default_page=True)
    templates = load_templates(settings)
    sink = FilesSink(tmp_path / "out", {Kind.PROMETHEUS_RULES, Kind.ALERTMANAGER_CONFIG})
    renderer = catalog_renderer(settings, templates)
    first = Reconciler(MemSource({f.path: f.data for f in _files(_group("team-a", "PAAA"))}),
                       catalog_loader(templates, settings), renderer, [sink], config=LoopConfig(retry=NO_RETRY),
                       hold_routes=renderer.hold_routes)
    first.run_once()
    [config] = (tmp_path / "out").rglob("alertmanager*.y*ml")
    change, why = SERVE_EDITS[edit]
    edited = change(config.read_bytes())
    config.write_bytes(edited)
    renderer = catalog_renderer(settings, templates)
    files = _files(BROKEN_GROUPS["invalid pagerduty id"], team_b_id="PBNEW")
    second = Reconciler(MemSource({f.path: f.data for f in files}), catalog_loader(templates, settings), renderer,
                        [FilesSink(tmp_path / "out", {Kind.PROMETHEUS_RULES, Kind.ALERTMANAGER_CONFIG})],
                        config=LoopConfig(retry=NO_RETRY), hold_routes=renderer.hold_routes)
    report = second.run_once()
    assert config.read_bytes() == edited
    [carried] = [c for c in report.carried if c.startswith("the Alertmanager config")]
    assert why in carried and carried.endswith("it is kept as it is)"), carried


def test_a_group_deleted_on_purpose_from_a_file_with_an_error_on_another_entity_loses_its_route() -> None:
    """A Backstage all.yaml: an error on one Component of the file is that Component's alone; it does not make the
    file's Group and service deleted on purpose 'invalid' (carried, their route kept, until the file is clean). An
    error that names no entity (a Group document with no name) still keeps the last good Group."""
    settings = _settings(default_page=False)
    templates = load_templates(settings)
    states = DesiredStates(catalog_loader(templates, settings), catalog_renderer(settings, templates))

    def all_yaml(*docs: dict[str, Any]) -> list[SourceFile]:
        return [SourceFile("all.yaml", yaml.safe_dump_all(list(docs)).encode())]

    bad = {**_component("bad", "team-a"),
           "metadata": {"name": "bad", "annotations": {"obsctl.dev/availability": "99.9",
                                                       "pagerduty.com/service-id": "not an id!"}}}
    first = states.build(all_yaml(_group("team-a", "PAAA"), _group("team-b", "PBBB"),
                                  _component("pay", "team-a"), _component("search", "team-b")), True, (), 0.0)
    states.accept(first)
    assert _page_route(first, "team-b") == ["/keys/PBBB"]

    # team-b and its service leave on purpose; another Component of the file has an error
    second = states.build(all_yaml(_group("team-a", "PAAA"), _component("pay", "team-a"), bad), True, (), 1.0)
    states.accept(second)
    assert any("component:default/bad" in p for p in second.problems), second.problems
    doc = yaml.safe_load(next(a.body for a in second.desired.values() if a.kind is Kind.ALERTMANAGER_CONFIG))
    assert ['team="team-b"'] not in [r["matchers"] for r in doc["route"]["routes"]], "team-b's route is gone"
    assert _page_route(second, "team-a") == ["/keys/PAAA"]
    assert not any("team-b" in c for c in second.carried), second.carried
    assert "default/search" not in second.last_good, "its service, deleted from the file too, is not carried"

    # an error that may be team-a's Group (a Group document with no name) keeps team-a's last good route
    nameless = {**_group("team-a", "PANEW"), "metadata": {"annotations": {"pagerduty.com/service-id": "PANEW"}}}
    third = states.build(all_yaml(nameless, _component("pay", "team-a")), True, (), 2.0)
    assert _page_route(third, "team-a") == ["/keys/PAAA"], third.problems


@pytest.mark.parametrize("how", ["one-off", "serve restarted"])
def test_a_held_teams_services_keep_their_dependency_inhibitions(tmp_path: Path, how: str) -> None:
    """team-a's services are held back (its Group broke and no default page receiver): its database is still a
    dependency of team-b's service, so the rule that mutes team-b's pages while the database pages stays."""
    from obsctl.reconcile.loop import LoopConfig, Reconciler
    from obsctl.sinks.files import FilesSink
    from tests.unit.test_loop import NO_RETRY, MemSource

    settings = _settings(default_page=False)
    one_off = _one_off(tmp_path, settings)

    def converge(files: list[SourceFile]) -> list[str]:
        """The skipped entities of a one-off run, or of a new serve loop's first round."""
        if how == "one-off":
            return one_off(files).skipped
        templates = load_templates(settings)
        renderer = catalog_renderer(settings, templates)
        loop = Reconciler(MemSource({f.path: f.data for f in files}), catalog_loader(templates, settings), renderer,
                          [FilesSink(tmp_path / "out", {Kind.PROMETHEUS_RULES, Kind.ALERTMANAGER_CONFIG})],
                          config=LoopConfig(retry=NO_RETRY), hold_routes=renderer.hold_routes)
        return loop.run_once().skipped

    def files(team_a: Any) -> list[SourceFile]:
        app = _component("app", "team-b")
        app["spec"]["dependsOn"] = ["component:db"]
        return [SourceFile("teams/a.yaml", (team_a if isinstance(team_a, str) else yaml.safe_dump(team_a)).encode()),
                SourceFile("teams/b.yaml", yaml.safe_dump(_group("team-b", "PBBB")).encode()),
                SourceFile("services.yaml", yaml.safe_dump_all([_component("db", "team-a"), app]).encode())]

    def muted_by(doc: dict[str, Any]) -> list[list[str]]:
        return [r["source_matchers"] for r in doc["inhibit_rules"]
                if 'obsctl_depends_on=~".*\\\\|default/db\\\\|.*"' in r["target_matchers"]]

    converge(files(_group("team-a", "PAAA")))
    before = _config_doc(tmp_path)
    assert muted_by(before) == [['obsctl_severity="page"', 'catalog_namespace="default"', 'service="db"']]
    assert "component:default/db" in converge(files(BROKEN_GROUPS["invalid pagerduty id"]))
    after = _config_doc(tmp_path)
    assert muted_by(after) == muted_by(before)
    assert _team_part(after, "team-a") == _team_part(before, "team-a")


@pytest.mark.parametrize("typo", [{"name": "Pay!"}, {"name": ""}, {"name": "pay", "namespace": "Pay Ns"}],
                         ids=["invalid-name", "empty-name", "invalid-namespace"])
def test_serve_carries_a_service_whose_name_an_edit_made_invalid(typo: dict[str, str]) -> None:
    """A document whose name or namespace is invalid cannot be told from the entity it was: the file's entities are
    carried (their artifacts and routes stay), not deleted after the grace as if they had left the catalog."""
    settings = _settings(default_page=False)
    templates = load_templates(settings)
    states = DesiredStates(catalog_loader(templates, settings), catalog_renderer(settings, templates))
    pay = {**_component("pay", "team-a"),
           "metadata": {"name": "pay", "annotations": {"obsctl.dev/availability": "99.9",
                                                       "pagerduty.com/service-id": "PPAY"}}}
    teams = yaml.safe_dump_all([_group("team-a", "PAAA")]).encode()
    first = states.build([SourceFile("teams.yaml", teams), SourceFile("pay.yaml", yaml.safe_dump(pay).encode())],
                         True, (), 0.0)
    states.accept(first)
    edited = {**pay, "metadata": {**pay["metadata"], **typo}}
    second = states.build([SourceFile("teams.yaml", teams), SourceFile("pay.yaml", yaml.safe_dump(edited).encode())],
                          True, (), 1.0)
    assert any(p.startswith("pay.yaml:") and (" metadata.name" in p or " metadata.namespace" in p)
               for p in second.problems), second.problems
    assert "default/pay" in second.last_good
    assert {a.id for a in first.desired.values()} == {a.id for a in second.desired.values()}
    doc = yaml.safe_load(next(a.body for a in second.desired.values() if a.kind is Kind.ALERTMANAGER_CONFIG))
    assert "obsctl-team-a-page-default-pay" in {r["name"] for r in doc["receivers"]}  # its own PagerDuty route


def _amtool_valid(tmp_path: Path) -> None:
    """The config written is one Alertmanager loads (amtool), each receiver named once."""
    from tests.support.prom import amtool_check_config

    [config] = (tmp_path / "out").rglob("alertmanager*.y*ml")
    names = [r["name"] for r in _config_doc(tmp_path)["receivers"]]
    assert len(names) == len(set(names)), names
    checked = amtool_check_config(config)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_held_team_outside_default_whose_group_is_gone_keeps_one_route(tmp_path: Path) -> None:
    """A team of another namespace whose Group leaves the read while one of its services still routes (its own
    PagerDuty service) and another does not: the team is known by its services' owner ref, so its held route
    replaces its fresh one (one route, each receiver once), and the warning names that team."""
    converge = _one_off(tmp_path, _settings(default_page=False))
    group = {**_group("ops", "PAAA"), "metadata": {"name": "ops", "namespace": "other",
                                                    "annotations": {"pagerduty.com/service-id": "PAAA"}}}

    def component(name: str, own: str = "") -> dict[str, Any]:
        c = _component(name, "group:other/ops")
        c["metadata"]["namespace"] = "other"
        if own:
            c["metadata"]["annotations"]["pagerduty.com/service-id"] = own
        return c

    services = SourceFile("svcs.yaml", yaml.safe_dump_all([component("svc1", "PSVC"), component("svc2")]).encode())
    converge([SourceFile("g.yaml", yaml.safe_dump(group).encode()), services])
    before = _team_part(_config_doc(tmp_path), "ops")
    result = converge([services])  # the Group file removed
    after = _config_doc(tmp_path)
    assert _team_part(after, "ops") == before, "the team's route and receivers are kept as they were"
    _amtool_valid(tmp_path)
    [warning] = [p for p in result.problems if p.field == "routing"]
    assert warning.entity == "group:other/ops"


def test_serve_keeps_the_config_as_it_is_while_a_file_it_never_read_does_not_parse() -> None:
    """After a restart, a service file that does not parse may hold a team's only service or a service with its own
    PagerDuty route: the Alertmanager config is kept as it is (neither written nor pruned) until it parses. With a
    last good model of the file (no restart), its services are carried and the config is rendered with them."""
    settings = _settings(default_page=False)
    templates = load_templates(settings)
    teams = SourceFile("teams.yaml", yaml.safe_dump_all([_group("team-a", "PAAA")]).encode())
    pay = {**_component("pay", "team-a"),
           "metadata": {"name": "pay", "annotations": {"obsctl.dev/availability": "99.9",
                                                       "pagerduty.com/service-id": "PPAY"}}}
    good, broken = SourceFile("pay.yaml", yaml.safe_dump(pay).encode()), SourceFile("pay.yaml", b"kind: [unclosed\n")

    restarted = DesiredStates(catalog_loader(templates, settings), catalog_renderer(settings, templates))
    d = restarted.build([teams, broken], True, (), 0.0)
    assert not d.complete
    assert not any(a.kind is Kind.ALERTMANAGER_CONFIG for a in d.desired.values())
    assert any("pay.yaml does not parse" in c for c in d.carried), d.carried

    running = DesiredStates(catalog_loader(templates, settings), catalog_renderer(settings, templates))
    running.accept(running.build([teams, good], True, (), 0.0))
    d = running.build([teams, broken], True, (), 1.0)
    doc = yaml.safe_load(next(a.body for a in d.desired.values() if a.kind is Kind.ALERTMANAGER_CONFIG))
    assert "obsctl-team-a-page-default-pay" in {r["name"] for r in doc["receivers"]}


def _share_team_b(body: bytes) -> bytes:
    doc = yaml.safe_load(body)
    for route in doc["route"]["routes"]:
        if route["matchers"] == ['team="team-a"']:
            for sub in route["routes"]:
                sub["receiver"] = sub["receiver"].replace("team-a", "team-b")
    return yaml.safe_dump(doc).encode()


HAND_EDITS: dict[str, Callable[[bytes], bytes]] = {
    # team-a's route names team-b's receivers: held beside team-b's fresh ones, they would be defined twice
    "shared receiver": _share_team_b,
    # valid for Alertmanager, not the form obsctl writes: team-a's route would not be found and be dropped
    "matcher with spaces": lambda b: b.replace(b'team="team-a"', b'team = "team-a"'),
    "match map": lambda b: b.replace(b'- matchers:\n    - team="team-a"', b'- match:\n      team: team-a'),
}


# what the warning says made the whole config be kept, for each hand edit
HAND_EDIT_WHY = {
    "shared receiver": "group:default/team-a's route in the Alertmanager config in place names receivers that are not "
                       "its own or may be another team's, which would be defined twice beside the teams the catalog "
                       "routes: obsctl-team-b-page",
    "matcher with spaces": "group:default/team-a has no route team=\"team-a\" in the Alertmanager config in place, "
                           "and a route there is in a form obsctl does not write, which may be the team's: "
                           "{'matchers': ['team = \"team-a\"']",
    "match map": "group:default/team-a has no route team=\"team-a\" in the Alertmanager config in place, and a "
                 "route there is in a form obsctl does not write, which may be the team's: {'match': {'team': "
                 "'team-a'}",
}


@pytest.mark.parametrize("edit", sorted(HAND_EDITS))
def test_a_hand_edited_team_route_that_cannot_be_held_alone_keeps_the_config_whole(tmp_path: Path, edit: str) -> None:
    """A held team's route edited by hand so its part cannot be kept beside the fresh teams (a receiver it names
    is another team's; its route is in a form obsctl does not write) keeps the whole config as it is, with the
    warning that says so: valid for amtool, and team-a's pages still go where the config in place sends them."""
    from tests.support.prom import amtool_routes_test

    converge = _one_off(tmp_path, _settings(default_page=False))
    converge(_files(_group("team-a", "PAAA")))
    [config] = (tmp_path / "out").rglob("alertmanager*.y*ml")
    edited = HAND_EDITS[edit](config.read_bytes())
    config.write_bytes(edited)
    page = {"team": "team-a", "obsctl_severity": "page", "namespace": "default", "service": "pay"}
    routed = amtool_routes_test(config, page)
    result = converge(_files(BROKEN_GROUPS["invalid pagerduty id"], team_b_id="PBNEW"))
    assert config.read_bytes() == edited
    _amtool_valid(tmp_path)
    assert amtool_routes_test(config, page).stdout == routed.stdout
    assert "obsctl-default" not in routed.stdout
    [warning] = [p for p in result.problems if p.field == "routing"]
    assert warning.message.startswith("the Alertmanager config is kept as it is (not written: ")
    assert HAND_EDIT_WHY[edit] in warning.message, warning.message


def _namespaced(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    """A catalog document moved into `namespace` (a Component's `owner: payments` then names that namespace's)."""
    return {**doc, "metadata": {**doc["metadata"], "namespace": namespace}}


@pytest.mark.parametrize("lost", ["default", "retail"])
def test_a_held_team_keeps_its_part_beside_a_team_of_the_same_name_in_another_namespace(
        tmp_path: Path, lost: str) -> None:
    """group:default/payments and group:retail/payments route apart (team="payments", team="retail/payments"). When
    one's Group breaks, its route and receivers are found by its own key and kept byte for byte, while the other
    one's change is taken in the same run: one config, valid for amtool, each team's pages at its own PagerDuty."""
    converge = _one_off(tmp_path, _settings(default_page=False))

    def files(ids: dict[str, str]) -> list[SourceFile]:
        out = []
        for namespace in ("default", "retail"):
            group = _namespaced(_group("payments", ids[namespace]), namespace)
            out.append(SourceFile(f"{namespace}.yaml", yaml.safe_dump_all(
                [group, _namespaced(_component("checkout", "payments"), namespace)]).encode()))
        return out

    label = {"default": "payments", "retail": "retail/payments"}
    converge(files({"default": "PDEF", "retail": "PRET"}))
    _amtool_valid(tmp_path)
    before = _config_doc(tmp_path)
    assert {ns: _routing_keys(before, label[ns]) for ns in label} == {"default": ["/keys/PDEF"],
                                                                      "retail": ["/keys/PRET"]}
    other = "retail" if lost == "default" else "default"
    result = converge(files({lost: "not an id!", other: "PNEW"}))
    after = _config_doc(tmp_path)
    _amtool_valid(tmp_path)
    assert _team_part(after, label[lost]) == _team_part(before, label[lost]), "the held team's part is kept"
    assert _routing_keys(after, label[lost]) == [f"/keys/{'PDEF' if lost == 'default' else 'PRET'}"]
    assert _routing_keys(after, label[other]) == ["/keys/PNEW"], "the other payments follows the catalog"
    [warning] = [p for p in result.problems if p.field == "routing"]
    assert warning.entity == f"group:{lost}/payments"
    assert "route and receivers are kept as the Alertmanager config in place has them" in warning.message


@pytest.mark.parametrize("listed", [True, False], ids=["source-complete", "source-incomplete"])
def test_serve_routes_a_team_without_a_group_fresh_while_a_file_it_remembers_does_not_parse(
        tmp_path: Path, listed: bool) -> None:
    """Review L2: a file serve remembers stops parsing (the read is not whole), while a team that never had a Group
    (routed by name to the platform default) adds a service with its own PagerDuty service. Serve knows what the
    broken file held (its services are carried, a Group there would be kept): no Group of that team can be hidden,
    so the team is routed from the catalog, not held from the config in place as if its routing were lost. When the
    source did not list every file, a Group it did not list may be the team's: then the team is held as before."""
    from obsctl.reconcile.loop import LoopConfig, Reconciler
    from obsctl.sinks.files import FilesSink
    from tests.unit.test_loop import NO_RETRY, MemSource

    settings = _settings(default_page=True)
    templates = load_templates(settings)
    own = {**_component("gnew", "team-g"),
           "metadata": {"name": "gnew", "annotations": {"obsctl.dev/availability": "99.9",
                                                        "pagerduty.com/service-id": "PGNEW"}}}
    source = MemSource({"teams.yaml": yaml.safe_dump(_group("team-a", "PAAA")).encode(),
                        "a.yaml": yaml.safe_dump(_component("pay", "team-a")).encode(),
                        "g.yaml": yaml.safe_dump(_component("gsvc", "team-g")).encode()})
    renderer = catalog_renderer(settings, templates)
    loop = Reconciler(source, catalog_loader(templates, settings), renderer,
                      [FilesSink(tmp_path / "out", {Kind.PROMETHEUS_RULES, Kind.ALERTMANAGER_CONFIG})],
                      config=LoopConfig(retry=NO_RETRY), hold_routes=renderer.hold_routes)
    loop.run_once()
    assert _routing_keys(_config_doc(tmp_path), "team-g") == [f"{HOOK}/default-page"]

    source.docs["a.yaml"] = b"kind: [unclosed\n"
    source.docs["g.yaml"] = yaml.safe_dump_all([_component("gsvc", "team-g"), own]).encode()
    source.complete = listed
    report = loop.run_once()
    doc = _config_doc(tmp_path)
    if not listed:
        assert "obsctl-team-g-page-default-gnew" not in {r["name"] for r in doc["receivers"]}
        assert any(c.startswith("group:default/team-g (its routing: its route and receivers are kept as the "
                                "Alertmanager config in place has them)") for c in report.carried), report.carried
        return
    assert "obsctl-team-g-page-default-gnew" in {r["name"] for r in doc["receivers"]}, "the new service's own route"
    assert not any("team-g" in c for c in report.carried), report.carried
    assert _routing_keys(doc, "team-a") == ["/keys/PAAA"], "the broken file's team keeps its route"
    assert any("a.yaml" in c or "default/pay" in c for c in report.carried), report.carried
    _amtool_valid(tmp_path)


@pytest.mark.parametrize("with_default", [False, True], ids=["only-retail", "default-too"])
def test_team_settings_keyed_by_a_name_that_is_only_outside_default_are_reported(with_default: bool) -> None:
    """Outside the default namespace a team's settings key is <namespace>/<name>: `alerting.teams.payments` with only
    group:retail/payments in use routes nothing, and `validate`/`render` say so and which key would; with
    group:default/payments in use, the key is that team's and nothing is said."""
    from obsctl.app import check_routing, render_options
    from obsctl.spec.load import load_catalog

    settings = load_settings(None, alerting={
        "default": {"page": [{"name": "p", "type": "webhook", "settings": {"url": f"{HOOK}/p"}}],
                    "ticket": [{"name": "t", "type": "webhook", "settings": {"url": f"{HOOK}/t"}}]},
        "teams": {"payments": {"page": [{"name": "x", "type": "webhook", "settings": {"url": f"{HOOK}/x"}}]}}})
    templates = load_templates(settings)
    docs = [_namespaced(_group("payments", "PRET"), "retail"), _namespaced(_component("till", "payments"), "retail")]
    if with_default:
        docs += [_group("payments", "PDEF"), _component("checkout", "payments")]
    files = [SourceFile("catalog.yaml", yaml.safe_dump_all(docs).encode())]
    result = check_routing(load_catalog(files, templates), templates, render_options(settings))
    said = [p for p in result.problems if p.field == "alerting.teams.payments"]
    if with_default:
        assert said == []
        return
    [warning] = said
    assert (warning.file, warning.entity, warning.severity) == ("catalog.yaml", "group:retail/payments",
                                                                Severity.WARNING)
    assert 'routes none of group:retail/payments' in warning.message and '("retail/payments")' in warning.message


def test_a_service_carried_over_a_config_in_place_that_cannot_be_read_keeps_the_config_whole(tmp_path: Path) -> None:
    """A Component skipped for its own error keeps its rule file in a one-off run; when the config in place cannot be
    read, the routes its alerts follow cannot be taken from it alone: the whole config is kept, with a warning that
    names the service (before, a fresh config without the service's routes was written over it)."""
    converge = _one_off(tmp_path, _settings(default_page=True))
    converge(_files(_group("team-a", "PAAA")))
    [config] = (tmp_path / "out").rglob("alertmanager*.y*ml")
    config.write_bytes(b"route: [not, a, config\n")
    files = _files(_group("team-a", "PAAA"), team_b_id="PBNEW")
    bad = _component("pay", "team-a")
    bad["metadata"]["annotations"]["obsctl.dev/tier"] = "x"
    files[2] = SourceFile("services.yaml", yaml.safe_dump_all([bad, _component("search", "team-b")]).encode())
    result = converge(files)
    assert config.read_bytes() == b"route: [not, a, config\n"
    [warning] = [p for p in result.problems if p.field == "routing"]
    assert warning.entity == "component:default/pay" and warning.severity is Severity.WARNING
    assert "kept as it is (not written: the Alertmanager config in place is not a config obsctl can read" \
        in warning.message and "component:default/pay keeps its last good alerts" in warning.message, warning.message


def test_a_skipped_component_keeps_the_route_of_a_team_it_was_the_only_service_of(tmp_path: Path) -> None:
    """team-a has one service, pay, with no PagerDuty service of its own; pay is skipped for its own error, so its
    rule file (alerts with team="team-a") is kept. The read renders no service for team-a: its route and receivers
    are kept as they are, while team-b's new PagerDuty service lands in the same run (before, team-a's route was
    dropped and pay's pages fell to the root receiver)."""
    settings = _settings(default_page=False)
    converge = _one_off(tmp_path, settings)
    converge(_files(_group("team-a", "PAAA")))
    before = _config_doc(tmp_path)
    files = _files(_group("team-a", "PAAA"), team_b_id="PBNEW")
    bad = _component("pay", "team-a")
    bad["metadata"]["annotations"]["obsctl.dev/tier"] = "x"
    files[2] = SourceFile("services.yaml", yaml.safe_dump_all([bad, _component("search", "team-b")]).encode())
    result = converge(files)
    after = _config_doc(tmp_path)
    team_a = [r for r in before["route"]["routes"] if r["matchers"] == ['team="team-a"']]
    assert team_a and [r for r in after["route"]["routes"] if r["matchers"] == ['team="team-a"']] == team_a
    assert [r for r in after["receivers"] if r["name"].startswith("obsctl-team-a-")] == \
        [r for r in before["receivers"] if r["name"].startswith("obsctl-team-a-")]
    [page_b] = [r for r in after["receivers"] if r["name"] == "obsctl-team-b-page"]
    assert page_b["pagerduty_configs"] == [{"routing_key_file": "/keys/PBNEW"}]
    [warning] = [p for p in result.problems if p.field == "routing"]
    assert warning.entity == "group:default/team-a" and "component:default/pay keeps its last good alerts" \
        in warning.message, warning.message


def test_a_frozen_service_of_a_team_with_no_route_in_place_is_said_to_route_fresh(tmp_path: Path) -> None:
    """A new service whose team the config in place does not route yet loads without one of its SLOs (an error
    there freezes it): nothing of its team is in place to keep, so the team's route and receivers are rendered from
    the catalog, and the routing warning says that (before, it said they were kept as the config in place has
    them)."""
    converge = _one_off(tmp_path, _settings(default_page=False))
    converge(_files(_group("team-a", "PAAA")))
    assert _team_part(_config_doc(tmp_path), "team-c") == ([], [])
    sloth = {"version": "prometheus/v1", "service": "new", "labels": {"owner": "team-c"}, "slos": [
        {"name": name, "objective": objective, "alerting": {"name": name.title()}, "sli": {"events": {
            "error_query": 'sum(rate(x_total{code=~"5.."}[{{.window}}]))',
            "total_query": "sum(rate(x_total[{{.window}}]))"}}}
        for name, objective in (("good", 99.5), ("bad", 200))]}
    files = [*_more_teams(_files(_group("team-a", "PAAA")), (_group("team-c", "PCCC"), _component("new", "team-c"))),
             SourceFile("more/new-slos.yaml", yaml.safe_dump(sloth).encode())]
    result = converge(files)
    assert any(p.entity == "component:default/new" and p.severity is Severity.ERROR for p in result.problems)
    assert _routing_keys(_config_doc(tmp_path), "team-c") == ["/keys/PCCC"], "rendered from the catalog"
    [warning] = [p for p in result.problems if p.field == "routing"]
    assert (warning.entity, warning.severity) == ("group:default/team-c", Severity.WARNING)
    assert warning.message == (
        "the Alertmanager config in place has no route for this team, so its route and receivers are rendered from "
        "this catalog read: component:default/new keeps its last good alerts in this run (see its errors)")
