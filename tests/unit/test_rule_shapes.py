"""Rule text from per-shape text (obsctl.render.rule_shapes) equals the dict -> YAML path byte for byte.

Random services, SLOs, policies and options, with catalog values drawn both from names that fill
by text and from hostile ones (quotes, braces, newlines, YAML look-alikes, our own token syntax)
that must take the dict path; every output form (rule file, PrometheusRule, ruler group) compared.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obsctl.errors import SpecError
from obsctl.model.artifact import Artifact, Kind
from obsctl.model.entities import (
    SLO,
    AlertPolicy,
    AvailabilitySLI,
    BudgetingMethod,
    Catalog,
    EntityRef,
    EventsSLI,
    LatencySLI,
    Links,
    Protocol,
    Service,
)
from obsctl.render import rule_shapes, rules
from obsctl.render.context import RenderContext
from obsctl.render.options import RenderOptions
from tests.support.slo_promtool import repo_templates

TEMPLATES = repo_templates()
EVERY_FORM = frozenset({Kind.PROMETHEUS_RULES, Kind.PROMETHEUS_RULE_CRD, Kind.RULER_GROUP})

INERT_NAMES = ["checkout", "a", "svc-00001", "x.y", "a_b", "Zebra", "zq9", "team-search", "default", "production"]
HOSTILE_NAMES = ["1", "123", "true", "null", "yes", "1e3", "0x1f", "2001-12-14", "n-", "-n", "a:b", "a b", 'q"x',
                 "{{ .Value }}", "é", "Zq~n", "Zq~d0x", "a~b", "x\ny", "#c"]
# mostly names that fill by text (a service takes the dict path when any of its names does not)
NAMES = st.sampled_from(INERT_NAMES * 8 + HOSTILE_NAMES)
TEXTS = st.sampled_from(["", "checkout", "team-search", "production", "a: b", "a #b", '{"x"}', "Zq~m", "=~",
                         "line\nbreak"])
QUERIES = st.sampled_from([
    'rate(jobs_total{job="svc-1"}[{{window}}])', "sum(rate(x[{{window}}])) # c",
    "rate(a[{{window}}]) + rate(b[{{window}}])",
    'rate(x{a="b: c"}[{{window}}])', "rate(x[5m])", "rate(Zq~n[{{window}}])", 'rate(x{y=~"a|b"}[{{window}}])',
    "rate(x[{{window}}]) )"])


@st.composite
def _slo(draw: st.DrawFn) -> SLO:
    kind = draw(st.sampled_from(["availability", "latency", "events", "ratio", "good"]))
    if kind == "availability":
        sli: Any = AvailabilitySLI()
    elif kind == "latency":
        sli = LatencySLI(draw(st.sampled_from([0.1, 0.25, 0.3, 1.0])), native=draw(st.booleans()))
    elif kind == "events":
        sli = EventsSLI(total_query=draw(QUERIES), error_query=draw(QUERIES))
    elif kind == "ratio":
        sli = EventsSLI(total_query=draw(QUERIES), error_ratio_query=draw(QUERIES))
    else:
        sli = EventsSLI(total_query=draw(QUERIES), good_query=draw(QUERIES))
    labels = tuple(draw(st.lists(st.tuples(st.sampled_from(["owner", "team", "service", "tier", "env"]), NAMES),
                                 max_size=2, unique_by=lambda kv: kv[0])))
    policy = AlertPolicy(
        page=draw(st.booleans()), ticket=draw(st.booleans()),
        tiers=draw(st.sampled_from([None, ("page-fast",), ("page-fast", "ticket-slow")])),
        min_events=draw(st.sampled_from([None, 50.0])), no_data=draw(st.booleans()),
        budget_exhausted=draw(st.booleans()), name=draw(st.sampled_from([None, "CheckoutBurn"])),
        labels=tuple(draw(st.lists(st.tuples(st.sampled_from(["routing_key", "team"]), NAMES), max_size=1))),
        annotations=tuple(draw(st.lists(st.tuples(st.just("note"), TEXTS), max_size=1))))
    return SLO(name=draw(st.sampled_from(["availability", "latency", "jobs", "a b"])),
               objective=draw(st.sampled_from([0.999, 0.995, 0.99])), sli=sli,
               period_days=draw(st.sampled_from([7, 28, 30, 90])),
               budgeting=draw(st.sampled_from(list(BudgetingMethod))), alerting=policy, labels=labels,
               group_by=draw(st.sampled_from([(), ("route",), ("namespace",)])))


@st.composite
def _service(draw: st.DrawFn) -> Service:
    slos = draw(st.lists(_slo(), min_size=1, max_size=3, unique_by=lambda s: s.name))
    return Service(
        ref=EntityRef("component", draw(NAMES), draw(NAMES)), team=EntityRef("group", draw(NAMES), draw(NAMES)),
        slos=tuple(slos), tier=draw(st.sampled_from([1, 2, 3])), protocol=draw(st.sampled_from(list(Protocol))),
        environment=draw(st.sampled_from(["production", "", "staging", "a b", "Zq~e"])),
        links=Links(runbook=draw(st.sampled_from(["", "https://runbooks.example/x", "https://r.example/#a",
                                                  "https://r.example/{{x}}", "https://r~x"]))),
        depends_on=draw(st.sampled_from([(), (EntityRef("component", "default", "db"),)])),
        latency_buckets=draw(st.sampled_from([(), (0.1, 0.5, 1.0)])))


def _render(services: list[Service], options: RenderOptions, shaped: bool) -> list[Artifact] | str:
    ctx = RenderContext.of(Catalog(services=tuple(services)), TEMPLATES, options)
    saved = rules._shaped_texts
    if not shaped:
        rules._shaped_texts = lambda svc, ctx, forms: None  # type: ignore[assignment]
    try:
        return [a for svc in services for a in rules.render_service(svc, ctx)]
    except (SpecError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        rules._shaped_texts = saved


@st.composite
def _services(draw: st.DrawFn) -> list[Service]:
    """A few services, and variants of them that differ only in the values tokens stand for (so they
    share shapes: the first of a shape is checked when the shape is built, the others are not)."""
    services = []
    for base in draw(st.lists(_service(), min_size=1, max_size=2)):
        services.append(base)
        for _ in range(draw(st.integers(1, 4))):
            services.append(replace(
                base, ref=EntityRef("component", draw(NAMES), draw(NAMES)),
                team=EntityRef("group", draw(NAMES), draw(NAMES)),
                environment=draw(st.sampled_from(["production", "", "staging", "a b", "Zq~e", "checkout"])),
                links=Links(runbook=draw(st.sampled_from(["", "https://runbooks.example/y", "https://r.example/#b"])))))
    return services


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(services=_services(),
       grafana=st.sampled_from(["", "https://grafana.example/"]), environment=st.sampled_from(["production", ""]),
       outputs=st.sets(st.sampled_from(sorted(EVERY_FORM)), min_size=1))
def test_shaped_rule_text_equals_the_dict_path(services: list[Service], grafana: str, environment: str,
                                               outputs: set[Kind]) -> None:
    options = RenderOptions(outputs=frozenset(outputs), grafana_url=grafana, environment=environment)
    fast = _render(services, options, shaped=True)
    slow = _render(services, options, shaped=False)
    if isinstance(slow, str) or isinstance(fast, str):
        assert fast == slow
        return
    assert [(a.kind, a.key, a.path, a.owner) for a in fast] == [(a.kind, a.key, a.path, a.owner) for a in slow]
    for got, want in zip(fast, slow, strict=True):
        assert got.body == want.body, got.path


def test_inert_values_share_one_shape_per_slo_kind() -> None:
    """Services that differ only in their names share one shape, built when a second service needs it;
    hostile names take the dict path."""
    options = RenderOptions(outputs=EVERY_FORM, grafana_url="https://grafana.example")
    slo = SLO("availability", 0.999, AvailabilitySLI())
    services = [Service(ref=EntityRef("component", "default", f"svc-{i}"), team=EntityRef("group", "default", "t"),
                        slos=(slo,)) for i in range(5)]
    ctx = RenderContext.of(Catalog(services=tuple(services)), TEMPLATES, options)
    cache = rules._shape_cache(ctx)
    assert cache.texts(services[0], slo) is None  # a shape no second service shares is never built
    for svc in services[1:]:
        assert cache.texts(svc, slo) is not None
    assert len(cache.shapes) == 1
    hostile = Service(ref=EntityRef("component", "default", 'a"b'), team=EntityRef("group", "default", "t"),
                      slos=(slo,))
    assert cache.texts(hostile, slo) is None


@pytest.mark.parametrize("value", ["checkout", "a.b", "x_1", "Zq9"])
def test_inert_names(value: str) -> None:
    assert rule_shapes.inert(value)


@pytest.mark.parametrize("value", ["", "true", "123", "a b", "a:b", "-a", "a-", 'a"', "a~b", "é", "null", "1.5"])
def test_not_inert_names(value: str) -> None:
    assert not rule_shapes.inert(value)


def _every_kind_of_slo() -> tuple[SLO, ...]:
    labelled = AlertPolicy(budget_exhausted=True, min_events=50.0, labels=(("team", "team-search"),))
    return (SLO("availability", 0.999, AvailabilitySLI(), labels=(("owner", "shop"),), alerting=labelled),
            SLO("latency", 0.99, LatencySLI(0.25), budgeting=BudgetingMethod.TIMESLICES, group_by=("route",)),
            SLO("jobs", 0.995, EventsSLI(total_query='rate(jobs_total{job="x"}[{{window}}])',
                                         error_query='rate(jobs_total{job="x",r="f"}[{{window}}])'), period_days=28))


@pytest.mark.parametrize("field", ["name", "namespace", "team", "team_namespace", "environment", "runbook"])
@pytest.mark.parametrize("value", INERT_NAMES + HOSTILE_NAMES + ["https://r.example/#a", "https://r.example/{{x}}"])
def test_each_value_in_each_place_after_a_shape_is_built(field: str, value: str) -> None:
    """Two services build (and check) the shapes; a third one differing in one value fills them."""
    first = Service(ref=EntityRef("component", "default", "checkout"), team=EntityRef("group", "default", "payments"),
                    slos=_every_kind_of_slo(), links=Links(runbook="https://runbooks.example/checkout"))
    second = {
        "name": replace(first, ref=EntityRef("component", "default", value)),
        "namespace": replace(first, ref=EntityRef("component", value, "checkout")),
        "team": replace(first, team=EntityRef("group", "default", value)),
        "team_namespace": replace(first, team=EntityRef("group", value, "payments")),
        "environment": replace(first, environment=value),
        "runbook": replace(first, links=Links(runbook=value)),
    }[field]
    builder = replace(first, ref=EntityRef("component", "default", "orders"))  # a shape is built on its 2nd use
    options = RenderOptions(outputs=EVERY_FORM, grafana_url="https://grafana.example")
    fast = _render([first, builder, second], options, shaped=True)
    slow = _render([first, builder, second], options, shaped=False)
    assert fast == slow


def test_every_kind_of_slo_fills_from_its_shape() -> None:
    """No shape of a well-formed catalog is left unusable by its check (the dict path would hide it)."""
    options = RenderOptions(outputs=EVERY_FORM, grafana_url="https://grafana.example")
    services = [Service(ref=EntityRef("component", "default", f"svc-{i}"), team=EntityRef("group", "default", "t"),
                        slos=_every_kind_of_slo(), links=Links(runbook=f"https://runbooks.example/{i}"))
                for i in range(3)]
    ctx = RenderContext.of(Catalog(services=tuple(services)), TEMPLATES, options)
    for svc in services:
        rules.render_service(svc, ctx)
    shapes = rules._shape_cache(ctx).shapes
    assert len(shapes) == 3 and all(shape is not None for shape in shapes.values())
