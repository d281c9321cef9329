"""Per-service rendering: the streamed, multi-process render gives exactly the whole-catalog render,
problems are collected per service, and the cheap PromQL check agrees with the parser."""

from __future__ import annotations

from typing import Any

import promql_parser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.common import synthetic_catalog, templates
from obsctl.errors import Problem, SpecError
from obsctl.model.artifact import Kind
from obsctl.render import RenderContext, render_all, render_chunks, render_service, render_shared
from obsctl.render.options import RenderOptions
from obsctl.render.promql import parse_error, shape
from tests.support.catalogs import with_unrenderable

TEMPLATES = templates()
EVERYTHING = RenderOptions(outputs=frozenset(Kind))


@pytest.mark.parametrize("workers", [1, 2])
def test_streamed_render_is_the_whole_render(workers: int) -> None:
    catalog = synthetic_catalog(130, 7)
    whole = render_all(catalog, TEMPLATES, EVERYTHING)
    streamed = [a for chunk in render_chunks(catalog, TEMPLATES, EVERYTHING, workers=workers, chunk=40)
                for a in chunk]
    assert len(streamed) == len(whole)
    assert {a.id: a.body for a in streamed} == {k: a.body for k, a in whole.items()}
    assert all(a.digest == whole[a.id].digest for a in streamed)
    serial = [a.id for chunk in render_chunks(catalog, TEMPLATES, EVERYTHING, workers=1) for a in chunk]
    assert [a.id for a in streamed] == serial  # per-team shared parts spread over the workers keep their order


def test_a_failing_team_part_fails_the_streamed_render_as_the_serial_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from obsctl.render import collectors

    catalog = synthetic_catalog(130, 7)
    teams = sorted({s.team for s in catalog.services}, key=str)
    real = collectors.gateway_config

    def failing(team: Any, *args: Any) -> Any:
        if team in (teams[2], teams[5]):
            raise SpecError([Problem("collectors/gateway.yaml", 0, str(team), "", "refused")])
        return real(team, *args)

    monkeypatch.setattr(collectors, "gateway_config", failing)  # the forked workers inherit it
    found = []
    for workers in (1, 2):
        with pytest.raises(SpecError) as err:
            for _ in render_chunks(catalog, TEMPLATES, EVERYTHING, workers=workers, chunk=40):
                pass
        found.append(err.value.problems)
    assert found[0] == found[1] and [p.entity for p in found[0]] == [str(teams[2])]


def test_service_and_shared_parts_make_the_whole() -> None:
    catalog = synthetic_catalog(45, 3)
    ctx = RenderContext.of(catalog, TEMPLATES, EVERYTHING)
    parts = []
    summaries = []
    for svc in catalog.services:
        arts, summary = render_service(svc, ctx)
        assert {a.owner for a in arts} == {str(svc.ref)}
        parts += arts
        summaries.append(summary)
    parts += render_shared(summaries, ctx)
    assert {a.id: a.body for a in parts} == {k: a.body for k, a in render_all(catalog, TEMPLATES, EVERYTHING).items()}


def test_problems_of_every_bad_service_come_together() -> None:
    broken, services = with_unrenderable(250, 5, (3, 180))
    with pytest.raises(SpecError) as whole:
        render_all(broken, TEMPLATES, RenderOptions())
    with pytest.raises(SpecError) as streamed:
        for _ in render_chunks(broken, TEMPLATES, RenderOptions(), workers=2, chunk=50):
            pass
    for exc in (whole.value, streamed.value):
        assert {p.entity for p in exc.problems} == {str(services[3].ref), str(services[180].ref)}


def _parses(expr: str) -> bool:
    try:
        promql_parser.parse(expr)
    except ValueError:
        return False
    return True


_PIECES = st.sampled_from(['x', '{', '}', 'a="b"', 'a!="c d"', 'a=~"("', ',', '"', '="', "'q'", '`r`', '#c\n',
                           ' ', '(', ')', 'sum', 'rate', '[5m]', ' / ', '=', '\\', 'f("a=", "b")', '"="', '1'])


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=12).map("".join))
def test_the_shape_check_agrees_with_the_parser(expr: str) -> None:
    assert (parse_error(expr) is None) == _parses(expr)
    assert (parse_error(expr) is None) == (parse_error(expr + "") is None)


def test_shapes_share_one_parse_across_services() -> None:
    one = 'sum(rate(m{service="a",namespace="default",code=~"5.."}[5m]))'
    two = 'sum(rate(m{service="b-2",namespace="other",code=~"5.."}[5m]))'
    assert shape(one) == shape(two)
    assert shape('m{a=~"x"}') == 'm{a=~"x"}'  # regex values are part of the shape
    assert shape("m{a='x'}") == "m{a='x'}"  # other quoting: left as it is


def test_chunks_shrink_to_their_byte_budget_and_still_make_the_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    import obsctl.render as render

    catalog = synthetic_catalog(130, 4)
    whole = render_all(catalog, TEMPLATES, EVERYTHING)
    monkeypatch.setattr(render, "CHUNK_BYTES", 1)  # every chunk drawn after the first result: one service
    chunks = list(render_chunks(catalog, TEMPLATES, EVERYTHING, workers=2, chunk=20))
    owners = [len({a.owner for a in chunk}) for chunk in chunks[:-1]]  # the last one: the shared artifacts
    # two chunks per worker, a fifth of `chunk` each, were in flight before the first came back
    assert owners == [4] * 4 + [1] * 114
    assert {a.id: a.body for chunk in chunks for a in chunk} == {k: a.body for k, a in whole.items()}
