"""A service dashboard substituted into its shape's JSON is byte for byte the dashboard built for the service.

`obsctl.render.dashboards` builds one dashboard per shape with stand-ins for the service's strings and
substitutes each service's strings into that JSON (obsctl.render.symbolic). These tests build every
dashboard both ways (the substitution, and `_build` + the checks per service, as before) over random
catalogs with hostile strings, over library edits that put a catalog string where it cannot be substituted,
and check that the substitution is really what ran for ordinary services.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obsctl.errors import SpecError
from obsctl.model.artifact import Kind
from obsctl.model.entities import (
    SLO,
    AvailabilitySLI,
    Catalog,
    EntityRef,
    EventsSLI,
    LatencySLI,
    Links,
    Protocol,
    Runtime,
    Service,
    Team,
)
from obsctl.render import dashboards, symbolic
from obsctl.render.context import RenderContext
from obsctl.render.options import RenderOptions
from obsctl.sources.directory import read_template_tree
from obsctl.spec.templates import parse_templates
from tests.support.shapes import substituted_and_built

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = parse_templates(read_template_tree(ROOT))
OPTIONS = RenderOptions(outputs=frozenset(Kind), prometheus_url="https://prom.example", catalog_url="https://bs.example",
                        traces_datasource_uid="tempo", logs_datasource_uid="loki")

# Strings that stress every step between a catalog value and the JSON: quotes, backslashes, Grafana
# variables, PromQL syntax, brackets, whitespace runs, control characters, non-ASCII, long and empty text.
_NASTY = st.sampled_from(['"', "\\", "$", "${environment}", "$datasource", "[[x]]", "{", "}", "]", "[", "  ", "\t",
                          "\n", "\x00", "\u2028", "é", "☃", "@{service}", "{{window}}", "=~", ") or vector(1)", "#",
                          "'", "`", "a", "Z", "-", ".", "_", "0", " ", "<b>", "%", "/"])
_TEXT = st.lists(_NASTY, max_size=8).map("".join)
_NAME = st.one_of(st.from_regex(r"\A[a-z][a-z0-9-]{0,20}\Z"), _TEXT.filter(bool))
_LONG = st.one_of(_TEXT, st.integers(150, 260).map(lambda n: "t" * n), st.integers(150, 260).map(lambda n: "w " * n))
_URL = st.sampled_from(["", "https://runbooks.example/x", "javascript:alert(1)", "https://a.example/q?x=1&y=\\2",
                        "http://h.example/ü"])

_SLOS = (
    SLO("availability", 0.999, AvailabilitySLI()),
    SLO("latency", 0.99, LatencySLI(0.25), period_days=28),
    SLO("jobs", 0.995, EventsSLI('sum(rate(jobs_total{job="x"}[{{window}}]))',
                                  error_query='sum(rate(jobs_total{job="x",r="failed"}[{{window}}]))'), period_days=7),
)


@st.composite
def _service(draw: st.DrawFn, i: int) -> Service:
    slos = tuple(replace(s, name=draw(st.sampled_from([s.name, "x", draw(_NAME)])), description=draw(_LONG))
                 for s in _SLOS[:draw(st.integers(0, 3))])
    namespace = draw(st.sampled_from(["default", "ns-1", draw(_NAME)]))
    return Service(EntityRef("component", namespace, f"{draw(_NAME)}-{i}"),
                   EntityRef("group", "default", draw(st.sampled_from(["team-a", "team-b", draw(_NAME)]))), slos,
                   tier=draw(st.integers(1, 3)), protocol=draw(st.sampled_from(list(Protocol))),
                   runtime=draw(st.sampled_from(list(Runtime))), system=draw(_TEXT), title=draw(_LONG),
                   description=draw(_LONG),
                   links=Links(runbook=draw(_URL), source=draw(_URL), catalog=draw(_URL)))


@st.composite
def _catalog(draw: st.DrawFn) -> Catalog:
    services = tuple(draw(_service(i)) for i in range(draw(st.integers(1, 8))))
    teams = tuple(Team(ref, title=draw(_LONG)) for ref in {s.team for s in services})
    return Catalog(services, teams)


_both = functools.partial(substituted_and_built, dashboards, "_compile")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(catalog=_catalog(), all_links=st.booleans())
def test_substituted_dashboards_equal_built_ones(catalog: Catalog, all_links: bool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    fast, slow, _ = _both(catalog, TEMPLATES, OPTIONS if all_links else RenderOptions(outputs=frozenset(Kind)),
                          monkeypatch)
    assert fast == slow


def _plain(i: int, **kw: Any) -> Service:
    return Service(EntityRef("component", "default", f"svc-{i}"), EntityRef("group", "default", "team-a"), _SLOS,
                   title=f"Service {i}", **kw)


def test_ordinary_services_share_one_shape_and_are_substituted(monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = Catalog(tuple(_plain(i) for i in range(5)), (Team(EntityRef("group", "default", "team-a")),))
    fast, slow, ctx = _both(catalog, TEMPLATES, OPTIONS, monkeypatch)
    assert fast == slow
    shapes = ctx.memo["dashboards.shapes"]
    assert len(shapes) == 1 and all(isinstance(c, dashboards._Compiled) for c in shapes.values())
    compiled = next(iter(shapes.values()))
    # the names are substituted into queries (inside equality matchers), the titles into cleaned text
    assert compiled.query_slots and compiled.recording.limits
    built = []
    monkeypatch.setattr(dashboards, "_build", lambda *a: built.append(a) or pytest.fail("built per service"))
    dashboards.render_service(_plain(99), ctx)
    assert built == []


@pytest.mark.parametrize("edit", [
    # a catalog string in a regex matcher: its content would decide whether the query parses
    lambda s: s.replace("@{selector}}[$__rate_interval]", '@{selector},x=~"@{service}"}[$__rate_interval]', 1),
    # ... as a threshold (a number read from it)
    lambda s: s.replace("  title: Request rate\n", "  title: Request rate\n  thresholds: [{color: green, value: 0}, "
                                                 "{color: red, value: '@{service}'}]\n", 1),
    # ... as a threshold colour (a sort key)
    lambda s: s.replace("  title: Request rate\n", "  title: Request rate\n  thresholds: [{color: green, value: 0}, "
                                                 "{color: '@{service}', value: 1}, {color: blue, value: 1}]\n", 1),
    # ... outside any string of a query
    lambda s: s.replace("@{selector}}[$__rate_interval]", "@{selector}}[$__rate_interval]) + @{tier} * 0 + (1", 1),
    # a long template around a catalog string: cleaning may cut it
    lambda s: s.replace("title: Request rate", "title: Request rate " + "y" * 190 + " @{service_title}", 1),
])
def test_library_edits_that_read_catalog_strings_are_built_per_service(edit: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    files = read_template_tree(ROOT)
    files[dashboards.PANELS] = edit(files[dashboards.PANELS].decode()).encode()
    templates = parse_templates(files)
    names = ["svc-1", "x" * 50, 'a"b', "1e3", "red", "c(d", "   "]
    catalog = Catalog(tuple(replace(_plain(i), ref=EntityRef("component", "default", n), title=n)
                            for i, n in enumerate(names)), (Team(EntityRef("group", "default", "team-a")),))
    fast, slow, _ = _both(catalog, templates, OPTIONS, monkeypatch)
    assert fast == slow


def test_cleaning_limits_are_checked_per_service(monkeypatch: pytest.MonkeyPatch) -> None:
    files = read_template_tree(ROOT)
    files[dashboards.PANELS] = files[dashboards.PANELS].decode().replace(
        "title: Request rate", "title: Request rate " + "y" * 150 + " @{service}", 1).encode()
    templates = parse_templates(files)
    services = [replace(_plain(i), ref=EntityRef("component", "default", "n" * k)) for i, k in enumerate((5, 40, 60))]
    catalog = Catalog(tuple(services), (Team(EntityRef("group", "default", "team-a")),))
    fast, slow, ctx = _both(catalog, templates, OPTIONS, monkeypatch)
    assert fast == slow
    compiled = next(iter(ctx.memo["dashboards.shapes"].values()))
    assert isinstance(compiled, dashboards._Compiled)
    assert [compiled.accepts(dashboards._strings_of(s, ctx.team, dashboards._links_of(s, OPTIONS)).flat())
            for s in services] == [True, False, False]


def test_stand_ins_survive_every_escaping_and_are_cut_back_out() -> None:
    from obsctl.model.escape import promql, url

    s = symbolic.sentinel(7)
    assert promql.grafana_string_body(s) == url.component(s) == " ".join(s.split()) == s
    assert symbolic.json_inner(s) == s.encode()
    template = symbolic.Template.of(f'{{"a": "x{s}y", "b": "{symbolic.sentinel(2)}"}}'.encode())
    assert template.slots == (7, 2)
    assert template.fill([b""] * 2 + [b"TWO"] + [b""] * 4 + [b'q\\"']) == b'{"a": "xq\\"y", "b": "TWO"}'


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(_NAME, min_size=1, max_size=6, unique=True), titles=st.lists(_LONG, min_size=6, max_size=6),
       namespace=st.sampled_from(["default", "ns-é", '"q"', "a b"]))
def test_substituted_team_overviews_equal_built_ones(names: list[str], titles: list[str], namespace: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    teams = tuple(Team(EntityRef("group", namespace, n), title=t) for n, t in zip(names, titles, strict=False))
    catalog = Catalog((), teams)
    refs = tuple(t.ref for t in teams)

    def shared(compile_board: Any) -> Any:
        with monkeypatch.context() as m:
            if compile_board is not None:
                m.setattr(dashboards, "_compile_board", compile_board)
            try:
                return [(a.id, a.body) for a in dashboards.render_shared(refs, RenderContext.of(catalog, TEMPLATES,
                                                                                                 OPTIONS))]
            except SpecError as exc:
                return exc.problems

    compiled: list[Any] = []

    def spy(*a: Any) -> Any:
        compiled.append(real(*a))
        return compiled[-1]

    real = dashboards._compile_board
    assert shared(spy) == shared(lambda *_a: None)
    assert any(isinstance(c, dashboards._Compiled) for c in compiled)  # the team overview shape was substituted
