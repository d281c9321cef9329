"""Incremental rendering equals a full render, byte for byte, over random sequences of catalog edits,
and re-renders only the services whose inputs changed."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.common import synthetic_catalog, templates
from obsctl.errors import SpecError
from obsctl.model.artifact import Kind
from obsctl.model.entities import Catalog, EntityRef, EventsSLI, LatencySLI, Protocol, Runtime, Team
from obsctl.render import render_all
from obsctl.render.incremental import IncrementalRenderer
from obsctl.render.options import CatalogIntegration, ReceiverSpec, RenderOptions, TeamRouting

TEMPLATES = templates()
OPTIONS = RenderOptions(outputs=frozenset(Kind))
BASE = synthetic_catalog(16, 11)


def _edit(catalog: Catalog, op: str, i: int, j: int) -> Catalog:
    services = list(catalog.services)
    teams = list(catalog.teams)
    if not services:
        return catalog
    k = i % len(services)
    svc = services[k]
    if op == "objective":
        slo = svc.slos[0]
        services[k] = replace(svc, slos=(replace(slo, objective=0.99 if slo.objective != 0.99 else 0.995),
                                         *svc.slos[1:]))
    elif op == "move":
        services[k] = replace(svc, team=teams[j % len(teams)].ref if teams else svc.team)
    elif op == "new-team":
        ref = EntityRef("group", "default", f"team-new-{j}")
        teams.append(Team(ref, title=f"New {j}"))
        services[k] = replace(svc, team=ref)
    elif op == "retitle-team" and teams:
        t = j % len(teams)
        teams[t] = replace(teams[t], title=f"Retitled {j}")
    elif op == "drop-team" and teams:
        teams.pop(j % len(teams))
    elif op == "remove":
        services.pop(k)
    elif op == "add":
        services.append(replace(svc, ref=EntityRef("component", "default", f"copy-{j}-{svc.name}")))
    elif op == "title":
        services[k] = replace(svc, title=f"Title {j}")
    elif op == "latency":  # what a team-level artifact must not read from its services (or it goes stale)
        slos = tuple(replace(s, sli=LatencySLI((j % 7 + 1) / 10)) if isinstance(s.sli, LatencySLI) else s
                     for s in svc.slos)
        services[k] = replace(svc, slos=slos)
    elif op == "runtime":
        services[k] = replace(svc, runtime=list(Runtime)[j % len(Runtime)], protocol=list(Protocol)[j % 2])
    elif op == "page-id":  # its own PagerDuty service: a receiver and a sub-route of its team's route
        services[k] = replace(svc, pagerduty_service_id="" if svc.pagerduty_service_id else f"P{j}")
    elif op == "team-routing" and teams:  # the Group's annotations: where its team's alerts go
        t = j % len(teams)
        teams[t] = replace(teams[t], pagerduty_service_id="" if teams[t].pagerduty_service_id else f"PT{j}",
                           slack_channel=f"chan-{j}" if j % 2 else "")
    elif op == "depends":  # a dependency (a cycle now and then): the dependency inhibitions
        other = services[j % len(services)]
        services[k] = replace(svc, depends_on=() if svc.depends_on else (other.ref,))
    elif op == "move-many" and teams:  # a team edit that moves several services at once
        target = teams[j % len(teams)].ref
        services = [replace(s, team=target) if n % 3 == i % 3 else s for n, s in enumerate(services)]
    seen: set[EntityRef] = set()
    unique = []
    for s in services:
        if s.ref not in seen:
            seen.add(s.ref)
            unique.append(s)
    team_seen: set[EntityRef] = set()
    unique_teams = []
    for t in teams:
        if t.ref not in team_seen:
            team_seen.add(t.ref)
            unique_teams.append(t)
    return Catalog(tuple(unique), tuple(unique_teams))


ROUTING_OPS = ["page-id", "team-routing", "depends", "move-many"]
_OPS = st.tuples(st.sampled_from(["objective", "move", "new-team", "retitle-team", "drop-team", "remove", "add",
                                  "title", "latency", "runtime", *ROUTING_OPS]), st.integers(0, 100),
                 st.integers(0, 100))
# routing that reads what the edits change: Group and Component PagerDuty ids, Slack channels, team settings
_HOOK = ReceiverSpec("hook", "webhook", (("url", "http://127.0.0.1:9/hook"),))
ROUTED = replace(OPTIONS, default_routing=TeamRouting(ticket=(_HOOK,)),
                 teams=(("team-0001", TeamRouting(page=(_HOOK,))),),
                 catalog_integrations=(
                     CatalogIntegration("pagerduty", ("page",), (("routing_key_file", "/etc/am/pd/{service_id}"),)),
                     CatalogIntegration("slack", ("page", "ticket"), (("api_url_file", "/etc/am/slack"),))))


@settings(max_examples=20, deadline=None)
@given(st.lists(_OPS, min_size=1, max_size=6))
def test_incremental_render_equals_full_render(ops: list[tuple[str, int, int]]) -> None:
    for options in (OPTIONS, ROUTED):
        inc = IncrementalRenderer(TEMPLATES, options)
        catalog = BASE
        inc(catalog)
        for op, i, j in ops:
            catalog = _edit(catalog, op, i, j)
            got = inc(catalog)
            want = render_all(catalog, TEMPLATES, options)
            assert list(got) == list(want)
            assert all(got[k].body == want[k].body for k in want)


def test_the_routing_tree_joined_from_team_parts_is_the_whole_tree_dumped() -> None:
    """render_pieces writes, byte for byte, what dumping teams_config writes (the one routing path)."""
    from obsctl.model import conventions as cv
    from obsctl.render import routes
    from obsctl.render.context import RenderContext, summary_of
    from obsctl.render.yamlout import dump_yaml

    catalog = BASE
    seen = b""
    for n, (op, i, j) in enumerate([("page-id", 1, 3), ("team-routing", 0, 1), ("depends", 2, 5), ("depends", 5, 2),
                                    ("depends", 7, 7), ("page-id", 9, 2), ("team-routing", 0, 4), ("move-many", 1, 0),
                                    ("drop-team", 0, 1), ("new-team", 3, 8)]):
        catalog = _edit(catalog, op, i, j)
        for options in (OPTIONS, ROUTED):
            ctx = RenderContext.of(catalog, TEMPLATES, options)
            summaries = [summary_of(s, TEMPLATES) for s in catalog.services]
            whole = dump_yaml(routes.teams_config(summaries, ctx), header=cv.FILE_HEADER.format(owner="the catalog"))
            [joined] = routes.render_summaries(summaries, ctx)
            assert joined.body == whole, (n, op)
            seen += whole
    # the edits reached every kind of route the parts hold
    assert b"webhook_configs" in seen and b"pagerduty_configs" in seen and b"slack_configs" in seen
    assert b"obsctl_depends_on=~" in seen


def test_a_team_held_from_the_config_in_place_is_written_again_byte_for_byte() -> None:
    """A team whose part is taken from the config in place (routes_in_place) is re-emitted as it was there, in its
    place: with that part held, whether its services are still rendered or only bring their dependencies, the
    config is the same bytes as the config it was taken from."""
    import dataclasses

    from obsctl.reconcile.routes_in_place import team_parts
    from obsctl.render import routes
    from obsctl.render.context import RenderContext, summary_of, teams_in_use

    catalog = BASE
    checked = 0
    for op, i, j in [("page-id", 1, 3), ("team-routing", 0, 1), ("depends", 2, 5), ("depends", 5, 2),
                     ("new-team", 3, 8)]:
        catalog = _edit(catalog, op, i, j)
        for options in (OPTIONS, ROUTED):
            summaries = [summary_of(s, TEMPLATES) for s in catalog.services]
            [whole] = routes.render_summaries(summaries, RenderContext.of(catalog, TEMPLATES, options))
            for team in teams_in_use(summaries):
                parts = team_parts(whole.body, [team])
                assert parts is not None and parts[team][0], team
                mine = [s for s in summaries if s.team == team]
                others = [s for s in summaries if s.team != team]
                for rendered, held in ((summaries, ()), (others, mine)):
                    ctx = RenderContext.of(catalog, TEMPLATES, dataclasses.replace(
                        options, held_routes=(routes.held_part(team, *parts[team], held),)))
                    [again] = routes.render_summaries(rendered, ctx)
                    assert again.body == whole.body, (op, team)
                    checked += 1
    assert checked > 20


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([*ROUTING_OPS, "move", "remove", "add", "drop-team", "new-team"]),
                          st.integers(0, 100), st.integers(0, 100)), min_size=1, max_size=8))
def test_incremental_routing_tree_equals_a_full_render(ops: list[tuple[str, int, int]]) -> None:
    """Team edits that move services between teams and change where their alerts go: the routing tree a
    long-lived renderer patches team by team equals the one a full render builds."""
    inc = IncrementalRenderer(TEMPLATES, ROUTED, only=["alertmanager", "dashboards"])
    catalog = BASE
    inc.isolated(catalog)
    for op, i, j in ops:
        catalog = _edit(catalog, op, i, j)
        got = inc.isolated(catalog).desired
        want = render_all(catalog, TEMPLATES, ROUTED, only=["alertmanager", "dashboards"])
        assert list(got) == list(want)
        assert all(got[k].body == want[k].body for k in want)


def test_one_changed_service_renders_one_service() -> None:
    inc = IncrementalRenderer(TEMPLATES, OPTIONS)
    inc(BASE)
    assert inc.stats.rendered == len(BASE.services) and inc.stats.shared_rebuilt
    inc(BASE)
    assert inc.stats.rendered == 0 and inc.stats.reused == len(BASE.services) and not inc.stats.shared_rebuilt
    changed = _edit(BASE, "objective", 5, 0)
    inc(changed)
    assert inc.stats.rendered == 1 and not inc.stats.shared_rebuilt
    retitled = _edit(changed, "retitle-team", 0, 0)  # team-0000: the title on its services' dashboards
    inc(retitled)
    assert inc.stats.rendered == sum(1 for s in BASE.services if s.team == BASE.teams[0].ref)
    assert inc.stats.shared_rebuilt


def test_a_bad_service_raises_and_leaves_the_cache_as_it_was() -> None:
    inc = IncrementalRenderer(TEMPLATES, OPTIONS)
    before = inc(BASE)
    svc = BASE.services[3]
    bad = replace(svc.slos[2], sli=EventsSLI(total_query="rate(x[{{window}}])", error_query="rate(x{[{{window}}])"))
    broken = Catalog(tuple(replace(s, slos=(*s.slos[:2], bad)) if s is svc else s for s in BASE.services), BASE.teams)
    with pytest.raises(SpecError) as exc:
        inc(broken)
    assert {p.entity for p in exc.value.problems} == {str(svc.ref)}
    after = inc(BASE)
    assert inc.stats.rendered == 0 and {k: a.body for k, a in after.items()} == {k: a.body for k, a in before.items()}


def _edit_isolated(catalog: Catalog, op: str, i: int, j: int) -> Catalog:
    """_edit, plus services whose names normalise onto another's identifiers (collisions) and their removal."""
    services = list(catalog.services)
    if op == "collide" and services:
        svc = services[i % len(services)]
        twin = replace(svc, ref=EntityRef("component", "default", svc.name.replace("-", ".", 1)))
        if twin.ref != svc.ref and all(s.ref != twin.ref for s in services):
            return Catalog((*services, twin), catalog.teams)
        return catalog
    if op == "uncollide":
        return Catalog(tuple(s for s in services if "." not in s.name), catalog.teams)
    return _edit(catalog, op, i, j)


_ISOLATED_OPS = st.tuples(st.sampled_from(["objective", "move", "new-team", "retitle-team", "remove", "add", "title",
                                           "collide", "uncollide", *ROUTING_OPS]), st.integers(0, 100),
                          st.integers(0, 100))


@settings(max_examples=20, deadline=None)
@given(st.lists(_ISOLATED_OPS, min_size=1, max_size=6))
def test_incremental_isolated_render_equals_a_full_isolated_render(ops: list[tuple[str, int, int]]) -> None:
    """What serve renders (every service in its own try, collisions isolated) equals render_isolated."""
    from obsctl.render.isolated import render_isolated

    inc = IncrementalRenderer(TEMPLATES, ROUTED, pack=True)  # as serve holds them: bodies compressed
    catalog = BASE
    inc.isolated(catalog)
    for n, (op, i, j) in enumerate(ops):
        catalog = _edit_isolated(catalog, op, i, j)
        if n % 3 == 2:  # a whole render in between (admission's): the next isolated render diffs its own last one
            inc(Catalog(tuple(s for s in catalog.services if "." not in s.name), catalog.teams))
        got = inc.isolated(catalog)
        want = render_isolated(catalog, TEMPLATES, ROUTED)
        assert list(got.desired) == list(want.desired)
        assert all(got.desired[k].body == want.desired[k].body for k in want.desired)
        assert got.failures == want.failures


def test_a_packed_artifact_reads_and_compares_as_the_artifact() -> None:
    from dataclasses import replace as copy_with

    from obsctl.model.artifact import Artifact
    from obsctl.render.incremental import PackedArtifact

    art = Artifact(Kind.PROMETHEUS_RULES, "default/x", "rules/x.yml", b"groups: []\n" * 200, "component:default/x")
    packed = PackedArtifact.of(art)
    assert packed.body == art.body and packed.digest == art.digest and packed.id == art.id
    assert packed == art and art == packed and hash(packed) == hash(art)
    assert len(packed.__dict__["_packed"]) < len(art.body) // 10
    moved = copy_with(packed, path="elsewhere.yml")  # what the rule-file sink does on put
    assert moved.path == "elsewhere.yml" and moved.body == art.body
    assert packed != copy_with(art, body=b"other\n") and PackedArtifact.of(packed) is packed


@pytest.mark.parametrize("isolated", [False, True], ids=["render", "isolated"])
def test_a_dropped_service_is_not_held_once_its_round_is_done(isolated: bool) -> None:
    """The renderer keeps no part of a round's diff: a removed or re-rendered service's old entry (and the
    bodies it holds) is released when the round ends, not at the next one."""
    import gc
    import weakref

    inc = IncrementalRenderer(TEMPLATES, OPTIONS, pack=True)
    render = inc.isolated if isolated else inc
    render(BASE)
    gone, edited = BASE.services[2], BASE.services[4]
    entries = inc._services.entries
    refs = [weakref.ref(entries[gone.ref]), weakref.ref(entries[edited.ref])]
    del entries
    render(_edit(Catalog(tuple(s for s in BASE.services if s is not gone), BASE.teams), "objective", 3, 0))
    gc.collect()
    assert [r() for r in refs] == [None, None]
