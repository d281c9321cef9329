"""Loaders: good documents map into the model; bad ones give exact, located messages."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from obsctl.errors import Severity
from obsctl.model import conventions as cv
from obsctl.model.entities import AvailabilitySLI, BudgetingMethod, EntityRef, EventsSLI, LatencySLI, Protocol, Runtime
from obsctl.sources.directory import read_template_tree
from obsctl.spec.load import LoadResult, SourceFile, load_catalog
from obsctl.spec.templates import Templates, parse_templates

ROOT = Path(__file__).resolve().parents[2]
SLOTH = ROOT / "tests" / "corpus" / "sloth" / "upstream"  # Sloth's own examples (Apache-2.0), see its ORIGIN.md

TEAM = """
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-a}
spec: {type: team, children: []}
"""


@pytest.fixture(scope="module")
def templates() -> Templates:
    return parse_templates(read_template_tree(ROOT))


def load(templates: Templates, *docs: tuple[str, str]) -> LoadResult:
    return load_catalog([SourceFile(name, textwrap.dedent(text).encode()) for name, text in docs], templates)


def component(name: str = "checkout", annotations: str = "", owner: str = "team-a") -> str:
    ann = f"\n  annotations:\n{textwrap.indent(textwrap.dedent(annotations), '    ')}" if annotations else ""
    return (f"apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}{ann}\n"
            f"spec:\n  type: service\n  lifecycle: production\n  owner: {owner}\n")


def messages(result: LoadResult) -> list[str]:
    return [str(p) for p in result.problems]


def test_golden_path_component_gets_tier_defaults(templates: Templates) -> None:
    result = load(templates, ("t.yaml", TEAM), ("c.yaml", component(annotations='obsctl.dev/tier: "3"\n')))
    assert result.problems == []
    (svc,) = result.catalog.services
    assert svc.ref == EntityRef("component", "default", "checkout")
    assert svc.team == EntityRef("group", "default", "team-a")
    assert svc.tier == 3 and svc.protocol is Protocol.HTTP
    avail, latency = svc.slos
    assert isinstance(avail.sli, AvailabilitySLI) and avail.objective == pytest.approx(0.99)
    assert isinstance(latency.sli, LatencySLI) and latency.sli.threshold_seconds == 1.0
    assert latency.objective == pytest.approx(0.95)
    assert avail.period_days == 30


def test_annotations_override_defaults(templates: Templates) -> None:
    ann = """\
    obsctl.dev/availability: "99.95%"
    obsctl.dev/latency: "p99 under 0.5s"
    obsctl.dev/protocol: grpc
    obsctl.dev/runtime: jvm
    obsctl.dev/period: 28d
    obsctl.dev/runbook: https://runbooks.example/checkout
    pagerduty.com/service-id: PABC
    backstage.io/source-location: url:https://git.example/checkout/
    """
    result = load(templates, ("t.yaml", TEAM), ("c.yaml", component(annotations=ann)))
    assert result.errors == []
    (svc,) = result.catalog.services
    assert svc.protocol is Protocol.GRPC and svc.runtime is Runtime.JVM
    assert [s.objective for s in svc.slos] == [pytest.approx(0.9995), pytest.approx(0.99)]
    assert svc.slos[1].sli == LatencySLI(0.5)
    assert {s.period_days for s in svc.slos} == {28}
    assert svc.links.runbook == "https://runbooks.example/checkout"
    assert svc.links.source == "https://git.example/checkout/"
    assert svc.pagerduty_service_id == "PABC"


def test_native_document_attaches_to_component(templates: Templates) -> None:
    doc = """
    apiVersion: obsctl.dev/v1
    kind: Service
    metadata: {name: checkout}
    spec:
      tier: 1
      slos:
        - name: orders
          objective: 99.5
          period: 7d
          budgeting: timeslices
          timeslice: {duration: 5m, target: 90}
          sli:
            events:
              good_query: sum(rate(orders_total{ok="true"}[{{ window }}]))
              total_query: sum(rate(orders_total[{{window}}]))
          alerting: {minEvents: 10, ticket: false, tiers: [page-fast]}
    """
    result = load(templates, ("t.yaml", TEAM), ("c.yaml", component()), ("d.yaml", doc))
    assert result.problems == []
    (svc,) = result.catalog.services
    (slo,) = svc.slos
    assert svc.tier == 1
    assert slo.budgeting is BudgetingMethod.TIMESLICES and slo.timeslice_seconds == 300 and slo.timeslice_target == 0.9
    assert isinstance(slo.sli, EventsSLI)
    assert slo.sli.good_query == 'sum(rate(orders_total{ok="true"}[{{window}}]))'
    assert slo.alerting.min_events == 10 and slo.alerting.tiers == ("page-fast",) and not slo.alerting.ticket


def test_sloth_reference_examples_load(templates: Templates) -> None:
    files = [SourceFile(str(SLOTH / n), (SLOTH / n).read_bytes())
             for n in ("getting-started.yml", "openslo-getting-started.yml")]
    result = load_catalog(files, templates)
    assert result.errors == []
    by_name = {s.name: s for s in result.catalog.services}
    sloth_svc = by_name["myservice"]
    (slo,) = sloth_svc.slos
    assert slo.name == "requests-availability" and slo.objective == pytest.approx(0.999)
    assert isinstance(slo.sli, EventsSLI)
    assert slo.sli.error_query == ('sum(rate(http_request_duration_seconds_count{job="myservice",'
                                   'code=~"(5..|429)"}[{{window}}]))')
    assert slo.alerting.name == "MyServiceHighErrorRate"
    assert dict(slo.alerting.page_labels) == {"routing_key": "myteam", "severity": "pageteam"}
    assert sloth_svc.team.name == "myteam"
    (oslo,) = by_name["my-service"].slos
    assert oslo.objective == pytest.approx(0.999) and oslo.period_days == 30
    assert isinstance(oslo.sli, EventsSLI) and oslo.sli.good_query is not None
    # No alert policy in the OpenSLO spec: recordings and dashboards, no paging (said as a warning).
    assert not oslo.alerting.page and not oslo.alerting.ticket
    assert any(p.severity is Severity.WARNING and "alertPolicies" in p.message for p in result.problems)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: x\n",
         "bad.yaml:4: error: invalid YAML: did not find expected ',' or '}'"),
        (component(annotations='obsctl.dev/tire: "1"\n'),
         "bad.yaml:6: component:default/checkout metadata.annotations.obsctl.dev/tire: error: unknown obsctl "
         "annotation 'obsctl.dev/tire'; did you mean obsctl.dev/tier?"),
        (component(annotations='obsctl.dev/availability: "100"\n'),
         "bad.yaml:6: component:default/checkout metadata.annotations.obsctl.dev/availability: error: objective 100 "
         "must be above 0 and below 100 (percent); 100 leaves no error budget"),
        (component(annotations="obsctl.dev/period: 14d\n"),
         "bad.yaml:6: component:default/checkout metadata.annotations.obsctl.dev/period: error: unknown period "
         "'14d'; known periods: 7d, 28d, 30d, 90d"),
        (component(annotations='obsctl.dev/latency: "fast please"\n'),
         "bad.yaml:6: component:default/checkout metadata.annotations.obsctl.dev/latency: error: latency objective "
         "'fast please' not understood; write it as \"99% < 300ms\""),
        (component(name="Bad Name!"),
         "bad.yaml:4: component:default/Bad Name! metadata.name: error: name 'Bad Name!' is not a valid entity name "
         "(1-63 of [A-Za-z0-9-_.], starting and ending with a letter or digit); nothing obsctl owns is deleted until "
         "it is fixed"),
        (component(annotations='obsctl.dev/protocol: smtp\n'),
         "bad.yaml:6: component:default/checkout metadata.annotations.obsctl.dev/protocol: error: 'smtp' is not one "
         "of http, grpc"),
    ],
    ids=["invalid-yaml", "unknown-annotation", "objective-100", "unknown-period", "bad-latency", "bad-name",
         "bad-protocol"],
)
def test_bad_component_messages(templates: Templates, doc: str, expected: str) -> None:
    result = load(templates, ("t.yaml", TEAM), ("bad.yaml", doc))
    assert expected in messages(result)
    assert result.catalog.services == ()


NATIVE_BAD = """\
apiVersion: obsctl.dev/v1
kind: Service
metadata: {name: checkout}
spec:
  owner: team-a
  slos:
    - name: availability
      objectiv: 99.9
      sli: {availability: {}}
    - name: availability
      objective: 99.9
      sli: {availability: {}}
    - name: custom
      objective: 99
      sli:
        events:
          error_query: sum(rate(errors_total[5m]))
          total_query: sum(rate(requests_total[{{window}}])
    - name: loose
      objective: 90
      sli: {availability: {}}
"""


def test_native_document_reports_every_problem_at_once(templates: Templates) -> None:
    result = load(templates, ("t.yaml", TEAM), ("svc.yaml", NATIVE_BAD))
    got = messages(result)
    expected = [
        "svc.yaml:8: service:default/checkout spec.slos[0].objectiv: error: unknown field 'objectiv'; "
        "did you mean 'objective'?",
        "svc.yaml:7: service:default/checkout spec.slos[0].objective: error: is required",
        "svc.yaml:10: service:default/checkout spec.slos[1].name: error: duplicate SLO name 'availability' "
        "(also at index 0)",
        "svc.yaml:17: service:default/checkout spec.slos[2].sli.events.error_query: error: query lacks the window "
        "placeholder {{window}} (Sloth's {{.window}} works too)",
        "svc.yaml:18: service:default/checkout spec.slos[2].sli.events.total_query: error: query is not valid "
        "PromQL: unclosed left parenthesis",
        "svc.yaml:20: service:default/checkout spec.slos[3].objective: warning: SLO loose: alert tier page-fast "
        "(page) can never fire at objective 90%: it needs an error ratio above 144% (burn 14.4x the 10% budget); "
        "dropped, the SLO's other tiers still alert. It becomes reachable with an objective above 93.06%, or with "
        "a 30d window table whose page-fast tier has a lower burn rate (a smaller budget share over a longer long "
        "window)",
    ]
    for line in expected:
        assert line in got
    assert result.catalog.services == ()
    assert result.skipped == ["component:default/checkout"]


def test_one_bad_entity_never_blocks_the_others(templates: Templates) -> None:
    bad = component(name="broken", annotations='obsctl.dev/availability: "abc"\n')
    result = load(templates, ("t.yaml", TEAM), ("good.yaml", component(name="good")), ("bad.yaml", bad))
    assert [s.name for s in result.catalog.services] == ["good"]
    assert result.skipped == ["component:default/broken"]
    assert any("must be a number, not 'abc'" in m for m in messages(result))


SPECS = {
    "sloth": ("spec.yaml", """
        version: prometheus/v1
        service: checkout
        labels: {owner: team-a}
        slos:
          - name: requests
            objective: 99.5
            sli:
              events:
                error_query: sum(rate(x_total{code=~"5.."}[{{.window}}]))
                total_query: sum(rate(x_total[{{.window}}]))
            alerting: {name: CheckoutErrors}
        """, "the Sloth spec in spec.yaml"),
    "pyrra": ("spec.yaml", """
        apiVersion: pyrra.dev/v1alpha1
        kind: ServiceLevelObjective
        metadata:
          name: requests
          labels: {pyrra.dev/service: checkout, pyrra.dev/team: team-a}
        spec:
          target: "99.5"
          window: 30d
          indicator:
            ratio:
              errors: {metric: 'x_total{code=~"5.."}'}
              total: {metric: x_total}
        """, "the Pyrra spec in spec.yaml"),
    "openslo": ("spec.yaml", """
        apiVersion: openslo/v1
        kind: SLO
        metadata: {name: requests}
        spec:
          service: checkout
          budgetingMethod: Occurrences
          timeWindow: [{duration: 30d, isRolling: true}]
          objectives: [{target: 0.995}]
          indicator:
            metadata: {name: requests-ok}
            spec:
              ratioMetric:
                counter: true
                good: {metricSource: {type: Prometheus, spec: {query: 'sum(rate(x_total{code!~"5.."}[{{window}}]))'}}}
                total: {metricSource: {type: Prometheus, spec: {query: 'sum(rate(x_total[{{window}}]))'}}}
        """, "the OpenSLO spec in spec.yaml"),
    "native": ("spec.yaml", """
        apiVersion: obsctl.dev/v1
        kind: Service
        metadata: {name: checkout}
        spec:
          slos:
            - {name: requests, objective: 99.5, sli: {availability: {}}}
        """, "spec.slos of its obsctl.dev/v1 document in spec.yaml"),
}


@pytest.mark.parametrize("spec", sorted(SPECS))
def test_an_slo_annotation_beside_imported_slos_is_checked_and_said_unused(templates: Templates, spec: str) -> None:
    """A Component whose SLOs come from an imported spec: a bad obsctl.dev/availability is the error it is without
    the spec (the service is held back); a valid one is not used, with a warning naming what wins."""
    file, text, source = SPECS[spec]
    bad = load(templates, ("t.yaml", TEAM), (file, text),
               ("c.yaml", component(annotations='obsctl.dev/availability: "abc"\n')))
    alone = load(templates, ("t.yaml", TEAM), ("c.yaml", component(annotations='obsctl.dev/availability: "abc"\n')))
    assert [str(p) for p in bad.errors] == [str(p) for p in alone.errors] == [
        "c.yaml:6: component:default/checkout metadata.annotations.obsctl.dev/availability: error: "
        "must be a number, not 'abc'"]
    assert bad.catalog.services == () and bad.skipped == ["component:default/checkout"]
    for key, value in (("availability", "100"), ("latency", "99% < 3xs"), ("period", "5d")):
        result = load(templates, ("t.yaml", TEAM), (file, text),
                      ("c.yaml", component(annotations=f'obsctl.dev/{key}: "{value}"\n')))
        assert [(p.file, p.entity, p.field) for p in result.errors] == [
            ("c.yaml", "component:default/checkout", f"metadata.annotations.obsctl.dev/{key}")], key
    good = load(templates, ("t.yaml", TEAM), (file, text),
                ("c.yaml", component(annotations='obsctl.dev/availability: "99.9"\n'
                                                 'obsctl.dev/latency: "99% < 300ms"\nobsctl.dev/period: 7d\n')))
    assert good.errors == []
    (svc,) = good.catalog.services
    assert [(s.name, s.objective, s.period_days) for s in svc.slos] == [("requests", pytest.approx(0.995), 30)]
    assert sorted((p.field, p.message) for p in good.problems if p.file == "c.yaml") == [
        (f"metadata.annotations.obsctl.dev/{key}", f"not used: this service's SLOs come from {source}, which wins "
                                                   f"over obsctl.dev/{key}; set the objective there, or remove the "
                                                   "annotation")
        for key in ("availability", "latency", "period")]


def test_an_annotation_an_obsctl_document_overrides_is_said_unused(templates: Templates) -> None:
    doc = "apiVersion: obsctl.dev/v1\nkind: Service\nmetadata: {name: checkout}\nspec: {tier: 1, runtime: jvm}\n"
    result = load(templates, ("t.yaml", TEAM), ("doc.yaml", doc),
                  ("c.yaml", component(annotations='obsctl.dev/tier: "3"\nobsctl.dev/runtime: jvm\n')))
    assert result.errors == []
    assert result.catalog.services[0].tier == 1
    assert [(p.field, p.message) for p in result.problems] == [
        ("metadata.annotations.obsctl.dev/tier", "not used: spec.tier of its obsctl.dev/v1 document in doc.yaml ('1') "
                                                 "wins over the annotation; set it in one place")]
    # a bad value is the error it is where the annotation is used, though the document's value wins
    for key, value in (("tier", "x"), ("protocol", "smtp"), ("runtime", "cobol"), ("paging", "loud"),
                       ("runbook", "ftp://rb")):
        doc = f"apiVersion: obsctl.dev/v1\nkind: Service\nmetadata: {{name: checkout}}\nspec: {{{key}: ''}}\n"
        doc = doc.replace("''", {"tier": "1", "protocol": "grpc", "runtime": "jvm", "paging": "ticket",
                                 "runbook": "https://rb"}[key])
        bad = component(annotations=f'obsctl.dev/{key}: "{value}"\n')
        beside = load(templates, ("t.yaml", TEAM), ("doc.yaml", doc), ("c.yaml", bad))
        alone = load(templates, ("t.yaml", TEAM), ("c.yaml", bad))
        assert [str(p) for p in beside.errors] == [str(p) for p in alone.errors], key
        assert [(p.file, p.field) for p in beside.errors] == [("c.yaml", f"metadata.annotations.obsctl.dev/{key}")]
        assert beside.catalog.services == ()


def test_a_runbook_that_is_not_http_is_an_error_where_it_is_written(templates: Templates) -> None:
    doc = "apiVersion: obsctl.dev/v1\nkind: Service\nmetadata: {name: checkout}\nspec: {runbook: ftp://rb/x}\n"
    linked = component().replace("  name: checkout\n", "  name: checkout\n  links: [{title: Runbook, url: ftp://rb/y}]\n")
    for files, where in (([("doc.yaml", doc), ("c.yaml", component())],
                          ("doc.yaml", "service:default/checkout", "spec.runbook")),
                         ([("c.yaml", component(annotations="obsctl.dev/runbook: ftp://rb/z\n"))],
                          ("c.yaml", "component:default/checkout", "metadata.annotations.obsctl.dev/runbook")),
                         ([("c.yaml", linked)], ("c.yaml", "component:default/checkout", "metadata.links"))):
        result = load(templates, ("t.yaml", TEAM), *files)
        assert [(p.file, p.entity, p.field) for p in result.errors] == [where]
        assert "is not an http(s) URL" in result.errors[0].message and result.catalog.services == ()


def test_a_latency_buckets_annotation_is_said_unused(templates: Templates) -> None:
    result = load(templates, ("t.yaml", TEAM),
                  ("c.yaml", component(annotations='obsctl.dev/latency-buckets: "0.1,0.3"\n')))
    assert result.errors == [] and result.catalog.services[0].latency_buckets == ()
    assert [(p.field, p.severity) for p in result.problems] == [
        ("metadata.annotations.obsctl.dev/latency-buckets", Severity.WARNING)]


@pytest.mark.parametrize(("namespace", "label"), [("default", "team-ghost"), ("retail", "retail/team-ghost")])
def test_owner_not_found_is_a_warning(templates: Templates, namespace: str, label: str) -> None:
    text = component(owner="team-ghost").replace("  name: checkout\n", f"  name: checkout\n  namespace: {namespace}\n")
    result = load(templates, ("c.yaml", text))
    assert result.errors == []
    assert [p.message for p in result.problems] == [
        f"owner group:{namespace}/team-ghost not found in the catalog; routing uses {label!r} as the team "
        "(its alerts' team label)"]
    (svc,) = result.catalog.services
    assert cv.team_label(svc.team) == label  # the label the rules and routes carry


def test_alias_bomb_and_size_cap_are_refused(templates: Templates) -> None:
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(6))
    result = load(templates, ("bomb.yaml", bomb), ("big.yaml", "x: " + "y" * (1 << 20)))
    got = messages(result)
    assert "bomb.yaml:1: error: document expands to more than 100000 nodes (alias bomb?)" in got
    assert any(m.startswith("big.yaml: error: file is") and "over the 1048576-byte limit" in m for m in got)


def test_duplicate_keys_and_unknown_documents(templates: Templates) -> None:
    result = load(templates, ("x.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"),
                  ("d.yaml", component() + "spec2: 1\nspec2: 2\n"))
    got = messages(result)
    assert ("x.yaml:1: configmap:default/a apiVersion: error: unknown document type (apiVersion 'v1', kind "
            "'ConfigMap'); expected backstage.io/v1alpha1, obsctl.dev/v1, Sloth prometheus/v1 or sloth.slok.dev/v1, "
            "openslo/v1 or pyrra.dev/v1alpha1") in got
    assert "d.yaml:10: spec2: error: duplicate key" in got


def test_sample_catalog_is_valid(templates: Templates) -> None:
    from obsctl.sources.directory import read_directory

    result = load_catalog(read_directory(ROOT / "examples" / "catalog"), templates)
    assert result.errors == []
    assert sorted(s.name for s in result.catalog.services) == [
        "checkout", "inventory", "ledger", "notifications", "search-api"]


@pytest.mark.parametrize("name", ["../../etc", "Bad Name!", "", "x" * 64])
def test_an_obsctl_service_document_name_is_an_entity_name(templates: Templates, name: str) -> None:
    """An obsctl.dev/v1 Service's metadata.name becomes file paths and PromQL: it follows the entity name rules."""
    doc = ("apiVersion: obsctl.dev/v1\nkind: Service\nmetadata:\n  name: " + json.dumps(name) + "\nspec:\n"
           "  owner: team-a\n  slos:\n  - {name: a, objective: 99, sli: {availability: {}}}\n")
    result = load(templates, ("t.yaml", TEAM), ("svc.yaml", doc))
    assert result.catalog.services == ()
    assert [(p.file, p.field) for p in result.errors] == [("svc.yaml", "metadata.name")]
