"""An agent config substituted into its shape's YAML is byte for byte the one built and checked per service.

`obsctl.render.collectors` builds and checks one agent config (and operator manifest) per set of non-identity
values with stand-ins for the service's strings, and substitutes each service's strings as YAML scalars.
These tests render both ways (the substitution, and `agent_config` + `_dump` per service, as before) over
hostile catalogs, over template edits that put a catalog string where the check reads it, and show the
collector model's verdict really ignores an attribute action's value.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obsctl.errors import SpecError
from obsctl.model.artifact import Kind
from obsctl.model.entities import SLO, AvailabilitySLI, Catalog, EntityRef, LatencySLI, Service
from obsctl.model.otelcol import validate_collector_config
from obsctl.render import collectors
from obsctl.render.options import RenderOptions
from obsctl.sources.directory import read_template_tree
from obsctl.spec.templates import parse_templates
from tests.support.shapes import substituted_and_built

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = parse_templates(read_template_tree(ROOT))
ALL = RenderOptions(outputs=frozenset(Kind))

_TEXT = st.lists(st.sampled_from(['"', "\\", "$", "${env:X}", "$$", "'", ": ", " #", "#", "-", "?", "~", "null", "true",
                                  "1", "0x1", "1e3", "&a", "*a", "!t", "|", ">", "{", "[", "é", "☃", "\u2028", "\t",
                                  "\n", "\r", " ", "a", ".", "_", "/", "@{team}"]), max_size=6).map("".join)
_NAME = st.one_of(st.from_regex(r"\A[a-z][a-z0-9-]{0,15}\Z"), _TEXT.filter(bool))


@st.composite
def _catalog(draw: st.DrawFn) -> Catalog:
    services = []
    for i in range(draw(st.integers(1, 8))):
        latency = [SLO("latency", 0.99, LatencySLI(draw(st.sampled_from([0.1, 0.25]))))]
        slos = (SLO("availability", 0.999, AvailabilitySLI()), *(latency if draw(st.booleans()) else []))
        team = EntityRef("group", "default", draw(st.sampled_from(["team-a", "team-b"])))
        namespace = draw(st.sampled_from(["default", "ns-1", draw(_NAME)]))
        services.append(Service(EntityRef("component", namespace, f"{draw(_NAME)}{i}"), team, slos,
                                tier=draw(st.integers(1, 3)), environment=draw(st.sampled_from(["production", "staging",
                                                                                                draw(_TEXT)]))))
    return Catalog(tuple(services))


_both = functools.partial(substituted_and_built, collectors, "_agent_bodies")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(catalog=_catalog(), every_kind=st.booleans())
def test_substituted_agents_equal_built_ones(catalog: Catalog, every_kind: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    fast, slow, _ = _both(catalog, TEMPLATES, ALL if every_kind else RenderOptions(), monkeypatch)
    assert fast == slow


def test_ordinary_agents_are_substituted_and_read_back(monkeypatch: pytest.MonkeyPatch) -> None:
    services = tuple(Service(EntityRef("component", "default", name), EntityRef("group", "default", "team-a"),
                             (SLO("availability", 0.999, AvailabilitySLI()),))
                     for name in ("svc-1", "svc-2", "123", "true", 'we"ird: #x'))
    fast, slow, ctx = _both(Catalog(services), TEMPLATES, ALL, monkeypatch)
    assert fast == slow
    shapes = ctx.memo["collectors.agents"]
    assert len(shapes) == 1 and all(s is not None for s in shapes.values())
    names = [yaml.safe_load(arts[0][2])["processors"]["resource"]["attributes"][0]["value"] for arts in fast]
    assert names == [s.name for s in services]


@pytest.mark.parametrize(("edit", "some_fail"), [
    # a catalog string in an endpoint: the check reads it
    (lambda s: s.replace('endpoint: "@{gateway_endpoint}"', 'endpoint: "@{service_name}"'), True),
    # ... inside a longer string (not a whole scalar)
    (lambda s: s.replace('value: "@{service_name}"', 'value: "svc/@{service_name}"'), False),
    # ... as a key of an action (an empty key is refused)
    (lambda s: s.replace("{key: team, value:", "{key: \"@{service_name}\", value:"), True),
])
def test_template_edits_that_read_catalog_strings_are_built_per_service(edit: Any, some_fail: bool,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    files = read_template_tree(ROOT)
    files["collectors/agent.yaml"] = edit(files["collectors/agent.yaml"].decode()).encode()
    templates = parse_templates(files)
    assert not collectors._opaque_in(templates.collectors.agent)
    services = tuple(Service(EntityRef("component", "default", name), EntityRef("group", "default", "team-a"),
                             (SLO("availability", 0.999, AvailabilitySLI()),)) for name in ("svc-1", "a:b:c", ""))
    fast, slow, _ = _both(Catalog(services), templates, ALL, monkeypatch)
    assert fast == slow
    assert any(not isinstance(r[0], tuple) for r in slow if r) is some_fail  # problems, not artifacts


@pytest.mark.parametrize("first_refused", [False, True])
def test_each_teams_gateway_endpoint_is_checked(first_refused: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole agent check runs once per set of shaping values; the gateway endpoint (a team's, standing only in
    the exporter's body) is checked per team through that body. A team whose endpoint the check refuses gets the
    ordinary path's problems, whichever team's config was checked whole."""
    teams = ["host-a:4317", "no-port", "host-b:4317", "[::1", "host-c:4317"]
    if first_refused:
        teams.insert(0, teams.pop(1))
    options = RenderOptions(collector={"gateway_endpoint": "@{team}"})
    services = tuple(Service(EntityRef("component", "default", f"svc-{i}-{j}"), EntityRef("group", "default", team),
                             (SLO("availability", 0.999, AvailabilitySLI()),
                              SLO("latency", 0.99, LatencySLI(0.1 + 0.15 * j))))
                     for i, team in enumerate(teams) for j in range(2))
    fast, slow, ctx = _both(Catalog(services), TEMPLATES, options, monkeypatch)
    assert fast == slow
    refused = [svc.team.name for svc, out in zip(services, fast, strict=True) if not isinstance(out[0], tuple)]
    assert sorted(set(refused)) == ["[::1", "no-port"] and len(refused) == 4
    assert len(ctx.memo["collectors.agent.passed"]) == 2  # passed whole once per latency threshold, not once per team


@pytest.mark.parametrize(("build", "setting"), [(collectors.gateway_config, "logs_endpoint"),
                                              (collectors.gateway_config, "health_endpoint"),
                                              (collectors.sampler_config, "traces_endpoint")])
@pytest.mark.parametrize("first_refused", [False, True])
def test_each_teams_gateway_and_sampler_are_checked(build: Any, setting: str, first_refused: bool) -> None:
    """A render checks a team's gateway and sampler whole once per set of shaping values, and a team's own values
    through the bodies holding them: every team gets the config or the problems of a check of its own."""
    teams = ["host-a:4317", "no-port", "", "[::1", "host-b:4317"]
    if first_refused:
        teams.insert(0, teams.pop(2))
    options = RenderOptions(collector=((setting, "@{team}"),))

    def outcome(team: str, memo: dict[str, Any] | None) -> Any:
        try:
            return build(EntityRef("group", "default", team), TEMPLATES, options, memo)
        except SpecError as exc:
            return exc.problems

    memo: dict[str, Any] = {}
    remembered = [outcome(team, memo) for team in teams]
    assert remembered == [outcome(team, None) for team in teams]
    assert any(isinstance(r, list) for r in remembered) and any(isinstance(r, dict) for r in remembered)
    assert len(memo[f"collectors.{build.__name__.split('_')[0]}.passed"]) == 1


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(_TEXT, st.integers(), st.floats(allow_nan=False), st.booleans()), min_size=4,
                       max_size=4))
def test_the_collector_model_ignores_what_an_attribute_action_sets(values: list[Any]) -> None:
    svc = Service(EntityRef("component", "default", "svc"), EntityRef("group", "default", "team-a"),
                  (SLO("availability", 0.999, AvailabilitySLI()),))
    config = collectors.agent_config(svc, TEMPLATES, RenderOptions())
    for action, value in zip(config["processors"]["resource"]["attributes"], values, strict=False):
        action["value"] = value
    assert validate_collector_config(config) == []
    config["processors"]["resource"]["attributes"][0]["value"] = None  # only "set or not" counts
    assert validate_collector_config(config) != []
