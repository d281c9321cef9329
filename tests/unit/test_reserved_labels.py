"""A spec's labels cannot take obsctl's routing away: a `team`, `service`, `catalog_namespace`, `slo` or
`environment` label with another value than obsctl's is refused on its field (the SLO is left out alone, the
service keeps its other SLOs), read from the real formats (Sloth, Pyrra, OpenSLO, obsctl.dev/v1); the same value
is accepted silently; a `tier` label (Sloth's own examples carry `tier: "2"`)
is kept and the tier inhibitions match obsctl's tier under `obsctl_tier` (tests/integration/test_paging_e2e
checks both against a real Alertmanager)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from obsctl.errors import Severity
from obsctl.model.source import SourceFile
from obsctl.spec.load import LoadResult, load_catalog
from tests.support.slo_promtool import repo_templates

TEMPLATES = repo_templates()

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def _load(*files: tuple[str, str]) -> LoadResult:
    return load_catalog([SourceFile(name, text.encode()) for name, text in files], TEMPLATES)


def _component(name: str, owner: str) -> str:
    return yaml.safe_dump({"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
                           "metadata": {"name": name}, "spec": {"type": "service", "owner": owner}})


def _slo_names(result: LoadResult) -> dict[str, list[str]]:
    return {svc.ref.name: [s.name for s in svc.slos] for svc in result.catalog.services}


def test_a_sloth_team_label_naming_another_team_is_refused_on_its_field() -> None:
    text = (CORPUS / "sloth" / "ours" / "full-fields.yml").read_text()
    assert 'team: "team-payments"' in text
    result = _load(("slos/payments.yml", text.replace('team: "team-payments"', 'team: "payments-oncall"')))
    [error] = result.errors
    assert (error.file, error.line, error.entity, error.field) == (
        "slos/payments.yml", 31, "component:default/payments-api", "slos[0].alerting.labels.team")
    assert "label team='payments-oncall' would replace obsctl's team='team-payments'" in error.message
    # that SLO alone is left out; the service keeps its other one, and keeps its last alerts (frozen)
    assert _slo_names(result) == {"payments-api": ["requests-latency"]}
    assert result.partial_owners() == {"default/payments-api"}


def test_a_team_label_that_names_the_owner_is_kept_and_sloths_own_examples_load() -> None:
    result = _load(("full.yml", (CORPUS / "sloth" / "ours" / "full-fields.yml").read_text()))
    assert not result.errors
    assert _slo_names(result) == {"payments-api": ["requests-availability", "requests-latency"]}
    for path in sorted((CORPUS / "sloth" / "upstream").glob("*.yml")):
        text = path.read_text()
        upstream = _load((path.name, text))
        assert not [p for p in upstream.errors if ".labels." in p.field], (path.name, upstream.errors)
        if 'tier: "2"' in text and upstream.catalog.services[0].slos:  # Sloth labels the service tier: kept
            assert any(("tier", "2") in slo.labels for svc in upstream.catalog.services for slo in svc.slos)


def test_a_sloth_team_label_against_the_component_owner_is_refused() -> None:
    spec = {"version": "prometheus/v1", "service": "checkout", "labels": {"team": "team-other"},
            "slos": [{"name": "availability", "objective": 99.9, "sli": {"events": {
                "error_query": 'sum(rate(x_total{code="5xx"}[{{.window}}]))',
                "total_query": "sum(rate(x_total[{{.window}}]))"}}, "alerting": {"name": "A"}}]}
    result = _load(("components.yaml", _component("checkout", "team-pay")), ("slos/checkout.yml", yaml.safe_dump(spec)))
    [error] = result.errors
    assert (error.file, error.entity, error.field) == ("slos/checkout.yml", "component:default/checkout",
                                                       "labels.team")  # the spec's labels: on every SLO


def test_pyrra_team_label_must_name_the_owner() -> None:
    corpus = (CORPUS / "pyrra" / "slos.yaml").read_text()
    alone = _load(("pyrra.yaml", corpus))  # its api-broken SLO is broken on purpose (a bad metric)
    assert not [p for p in alone.errors if p.field.endswith("team")]
    assert {s.team.name for s in alone.catalog.services} == {"team-api"}
    # a Component gives `api` to another team: the SLOs whose pyrra.dev/team says team-api are refused
    result = _load(("components.yaml", _component("api", "team-core")), ("pyrra.yaml", corpus))
    errors = [p for p in result.errors if p.field.endswith("team")]
    assert [p.field for p in errors] == ["metadata.labels.pyrra.dev/team"] * 4  # each SLO labelled pyrra.dev/team
    assert all((p.file, p.entity) == ("pyrra.yaml", "component:default/api") for p in errors)
    assert "obsctl's team='team-core'" in errors[0].message


def test_openslo_and_native_team_labels_must_name_the_owner() -> None:
    text = (CORPUS / "openslo" / "v1-payments.yaml").read_text()
    assert '  labels:\n    tier: "1"\n' in text
    # a team label on an OpenSLO SLO names its owner, unless a Component says otherwise
    result = _load(("components.yaml", _component("payments", "team-payments")),
                   ("oslo.yaml", text.replace('  labels:\n    tier: "1"\n', '  labels:\n    tier: "1"\n    team: x\n')))
    [error] = result.errors
    assert (error.file, error.entity, error.field) == ("oslo.yaml", "component:default/payments",
                                                       "metadata.labels.team")
    assert "payments-availability" not in _slo_names(result)["payments"]
    native = {"apiVersion": "obsctl.dev/v1", "kind": "Service", "metadata": {"name": "orders"},
              "spec": {"owner": "team-orders", "slos": [
                  {"name": "ok", "objective": 99.9, "sli": {"availability": {}}, "labels": {"team": "team-orders"}},
                  {"name": "bad", "objective": 99.9, "sli": {"availability": {}}, "labels": {"team": "team-x"}}]}}
    result = _load(("orders.yaml", yaml.safe_dump(native)))
    [error] = result.errors
    assert (error.file, error.entity, error.field, error.severity) == (
        "orders.yaml", "component:default/orders", "spec.slos[1].labels.team", Severity.ERROR)
    assert _slo_names(result) == {"orders": ["ok"]}


@pytest.mark.parametrize("block", ["page_alert", "ticket_alert"])
def test_a_team_label_on_one_severity_is_refused_too(block: str) -> None:
    spec = {"version": "prometheus/v1", "service": "svc", "labels": {"owner": "team-a"},
            "slos": [{"name": "availability", "objective": 99.9, "sli": {"events": {
                "error_query": 'sum(rate(x_total{code="5xx"}[{{.window}}]))',
                "total_query": "sum(rate(x_total[{{.window}}]))"}},
                "alerting": {"name": "A", block: {"labels": {"team": "team-b"}}}}]}
    [error] = _load(("s.yml", yaml.safe_dump(spec))).errors
    assert error.field == f"slos[0].alerting.{block}.labels.team"


@pytest.mark.parametrize("service", ["../../etc/passwd", "a/b", "-x", "x" * 64])
def test_an_imported_specs_service_name_must_be_an_entity_name(service: str) -> None:
    """Found by the loader fuzz test: a Sloth, Pyrra or OpenSLO service name became a service (and a file path)
    unchecked, so `../../etc/passwd` reached a collector config's path."""
    sloth_doc = {"version": "prometheus/v1", "service": service, "slos": []}
    pyrra_doc = {"apiVersion": "pyrra.dev/v1alpha1", "kind": "ServiceLevelObjective",
                 "metadata": {"name": "s", "labels": {"pyrra.dev/service": service}},
                 "spec": {"target": "99", "window": "28d", "indicator": {"ratio": {
                     "errors": {"metric": 'x_total{code="5xx"}'}, "total": {"metric": "x_total"}}}}}
    openslo_doc = {"apiVersion": "openslo/v1", "kind": "SLO", "metadata": {"name": "delivery"},
                   "spec": {"service": service, "indicatorRef": "missing", "budgetingMethod": "Occurrences",
                            "timeWindow": [{"duration": "30d", "isRolling": True}], "objectives": [{"target": 0.99}]}}
    for doc, field in ((sloth_doc, "service"), (pyrra_doc, "metadata.labels"), (openslo_doc, "spec.service")):
        result = _load(("spec.yaml", yaml.safe_dump(doc)))
        assert result.catalog.services == (), (doc, result.catalog.services)
        assert any(p.field == field and "not a valid entity name" in p.message for p in result.errors), result.errors


def _native(namespace: str, labels: dict[str, str], alerting: dict[str, object] | None = None,
            environment: str | None = None) -> str:
    spec: dict[str, object] = {"owner": "team-orders", "slos": [
        {"name": "ok", "objective": 99.9, "sli": {"availability": {}}},
        {"name": "other", "objective": 99.9, "sli": {"availability": {}}, "labels": labels,
         **({"alerting": alerting} if alerting else {})}]}
    if environment:
        spec["environment"] = environment
    return yaml.safe_dump({"apiVersion": "obsctl.dev/v1", "kind": "Service",
                           "metadata": {"name": "orders", "namespace": namespace}, "spec": spec}, sort_keys=False)


@pytest.mark.parametrize(("labels", "field"), [
    ({"service": "payments"}, "spec.slos[1].labels.service"),
    ({"catalog_namespace": "default"}, "spec.slos[1].labels.catalog_namespace"),
    ({"slo": "ok"}, "spec.slos[1].labels.slo"),
    ({"environment": "staging"}, "spec.slos[1].labels.environment"),
])
def test_an_identity_label_with_another_value_is_an_error_on_its_field(labels: dict[str, str], field: str) -> None:
    result = _load(("orders.yaml", _native("shop", labels)))
    [error] = result.errors
    (name, value), = labels.items()
    assert (error.file, error.entity, error.field) == ("orders.yaml", "component:shop/orders", field)
    assert error.line == 18 and f"label {name}={value!r} would replace obsctl's {name}=" in error.message
    assert _slo_names(result) == {"orders": ["ok"]}
    assert result.partial_owners() == {"shop/orders"}


def test_the_same_value_as_obsctls_is_accepted_silently() -> None:
    same = {"service": "orders", "catalog_namespace": "shop", "slo": "other", "team": "shop/team-orders",
            "environment": "staging"}
    result = _load(("orders.yaml", _native("shop", same, {"pageLabels": same, "ticketLabels": same, "labels": same},
                                           environment="staging")))
    assert not result.errors
    assert not [p for p in result.problems if ".labels." in p.field or "Labels." in p.field]
    assert _slo_names(result) == {"orders": ["ok", "other"]}


def test_environment_is_the_services_own_else_the_platforms() -> None:
    text = _native("shop", {"environment": "prod"})
    assert [p.field for p in _load(("o.yaml", text)).errors] == ["spec.slos[1].labels.environment"]
    # with the platform's environment setting named `prod`, the label says what obsctl says
    result = load_catalog([SourceFile("o.yaml", text.encode())], TEMPLATES, environment="prod")
    assert not result.errors and _slo_names(result) == {"orders": ["ok", "other"]}
    # a service that names its own environment: the platform's does not apply to it
    result = load_catalog([SourceFile("o.yaml", _native("shop", {"environment": "prod"}, environment="eu").encode())],
                          TEMPLATES, environment="prod")
    [error] = result.errors
    assert "obsctl's environment='eu'" in error.message


@pytest.mark.parametrize(("key", "field"), [("labels", "spec.slos[1].alerting.labels.slo"),
                                            ("pageLabels", "spec.slos[1].alerting.pageLabels.slo"),
                                            ("ticketLabels", "spec.slos[1].alerting.ticketLabels.slo")])
def test_alerting_page_and_ticket_labels_are_checked_alike(key: str, field: str) -> None:
    result = _load(("orders.yaml", _native("default", {}, {key: {"slo": "ok"}})))
    assert [p.field for p in result.errors] == [field]
    assert _slo_names(result) == {"orders": ["ok"]}


def test_reserved_names_in_native_alerting_labels_are_refused() -> None:
    """Before, only an SLO's own labels were checked: `alerting.labels: {obsctl_depends_on: ...}` reached the alerts,
    so a service depending on nothing was muted whenever payments-db paged."""
    result = _load(("orders.yaml", _native("default", {}, {"labels": {"obsctl_depends_on": "|default/payments-db|"}})))
    assert [(p.field, p.message) for p in result.errors] == [
        ("spec.slos[1].alerting.labels.obsctl_depends_on", "label names starting with 'obsctl_' are obsctl's own")]


def test_sloth_service_label_is_refused_at_its_own_line_in_either_form() -> None:
    cli = {"version": "prometheus/v1", "service": "checkout", "labels": {"owner": "team-a"},
           "slos": [{"name": "availability", "objective": 99.9, "labels": {"service": "payments"},
                     "sli": {"events": {"error_query": 'sum(rate(x_total{code="5xx"}[{{.window}}]))',
                                        "total_query": "sum(rate(x_total[{{.window}}]))"}},
                     "alerting": {"name": "A"}}]}
    [error] = _load(("s.yml", yaml.safe_dump(cli, sort_keys=False))).errors
    assert (error.line, error.entity, error.field) == (9, "component:default/checkout", "slos[0].labels.service")
    k8s = {"apiVersion": "sloth.slok.dev/v1", "kind": "PrometheusServiceLevel",
           "metadata": {"name": "checkout-slos", "namespace": "monitoring"},
           "spec": {"service": "checkout", "labels": {"owner": "team-a"},
                    "slos": [{"name": "availability", "objective": 99.9, "sli": {"events": {
                        "errorQuery": 'sum(rate(x_total{code="5xx"}[{{.window}}]))',
                        "totalQuery": "sum(rate(x_total[{{.window}}]))"}},
                        "alerting": {"name": "A", "pageAlert": {"labels": {"catalog_namespace": "monitoring"}}}}]}}
    [error] = _load(("k.yml", yaml.safe_dump(k8s, sort_keys=False))).errors
    # the service's entity, not the Kubernetes object's: the error holds checkout's artifacts
    assert (error.entity, error.field) == ("component:default/checkout",
                                           "spec.slos[0].alerting.pageAlert.labels.catalog_namespace")


def test_openslo_and_pyrra_identity_labels_at_their_own_fields() -> None:
    text = (CORPUS / "openslo" / "v1-payments.yaml").read_text()
    result = _load(("oslo.yaml", text.replace('  labels:\n    tier: "1"\n', '  labels:\n    tier: "1"\n    slo: x\n')))
    assert [(p.field, p.entity) for p in result.errors] == [("metadata.labels.slo", "component:default/payments")]
    corpus = (CORPUS / "pyrra" / "slos.yaml").read_text()
    assert "pyrra.dev/service: api" in corpus  # Pyrra propagates it: the same value as obsctl's, kept silently
    assert not [p for p in _load(("p.yaml", corpus)).errors if "service" in p.field]
    result = _load(("p.yaml", corpus.replace("pyrra.dev/service: api", "pyrra.dev/service: api\n    pyrra.dev/slo: x",
                                             1)))
    assert [p.field for p in result.errors if p.field.endswith("slo")] == ["metadata.labels.pyrra.dev/slo"]


def _grouped_sloth(labels: dict[str, str], alerting_labels: dict[str, str] | None = None) -> str:
    by = "sum by (cluster) "
    return yaml.safe_dump({"version": "prometheus/v1", "service": "edge", "labels": {"owner": "team-edge"},
                           "slos": [{"name": "grouped", "objective": 99.9, "labels": labels, "sli": {"events": {
                               "error_query": by + '(rate(x_total{code="5xx"}[{{.window}}]))',
                               "total_query": by + "(rate(x_total[{{.window}}]))"}},
                               "alerting": {"name": "A", "labels": alerting_labels or {}}},
                               {"name": "plain", "objective": 99.9, "labels": labels, "sli": {"events": {
                                   "error_query": 'sum(rate(x_total{code="5xx"}[{{.window}}]))',
                                   "total_query": "sum(rate(x_total[{{.window}}]))"}}, "alerting": {"name": "B"}}]},
                          sort_keys=False)


def test_a_label_named_like_a_grouping_label_is_refused_in_every_label_set() -> None:
    """Every group's alert would carry the one value: the alerts collide and Prometheus evaluates none
    (tests/integration/test_spec_identity_labels shows it with promtool). The ungrouped SLO keeps the label."""
    result = _load(("edge.yml", _grouped_sloth({"cluster": "eu"})))
    [error] = result.errors
    assert (error.line, error.entity, error.field) == (9, "component:default/edge", "slos[0].labels.cluster")
    assert "label cluster='eu' is also a grouping label of SLO grouped's SLI" in error.message
    assert _slo_names(result) == {"edge": ["plain"]}
    result = _load(("edge.yml", _grouped_sloth({}, {"cluster": "eu"})))
    assert [p.field for p in result.errors] == ["slos[0].alerting.labels.cluster"]
    native = {"apiVersion": "obsctl.dev/v1", "kind": "Service", "metadata": {"name": "edge"},
              "spec": {"owner": "team-edge", "slos": [
                  {"name": "ok", "objective": 99.9, "sli": {"availability": {}}},
                  {"name": "grouped", "objective": 99.9, "groupBy": ["cluster"], "sli": {"availability": {}},
                   "alerting": {"pageLabels": {"cluster": "eu"}}}]}}
    result = _load(("edge.yaml", yaml.safe_dump(native, sort_keys=False)))
    assert [p.field for p in result.errors] == ["spec.slos[1].alerting.pageLabels.cluster"]
    assert _slo_names(result) == {"edge": ["ok"]}  # that SLO alone: the service and its other SLO load


def test_a_grouping_by_an_identity_label_leaves_that_label_to_obsctl() -> None:
    """Grouped by `service`, each group carries `exported_service`: a spec's `service` label naming the service
    itself says what obsctl says, and `exported_service` is the grouping label that is refused."""
    text = _grouped_sloth({"service": "edge"}).replace("sum by (cluster) ", "sum by (service) ")
    assert not _load(("edge.yml", text)).errors
    result = _load(("edge.yml", _grouped_sloth({"exported_service": "x"}).replace("sum by (cluster) ",
                                                                                 "sum by (service) ")))
    assert [p.field for p in result.errors] == ["slos[0].labels.exported_service"]


def test_prometheus_reserved_label_names_are_refused_in_every_format() -> None:
    """`__name__` in a Sloth or OpenSLO label made promtool refuse the service's whole rule file
    (tests/integration/test_spec_identity_labels); obsctl.dev/v1 refused `__` names already."""
    sloth_doc = {"version": "prometheus/v1", "service": "svc", "labels": {"owner": "team-a", "__name__": "hijack"},
                 "slos": [{"name": "availability", "objective": 99.9, "sli": {"events": {
                     "error_query": 'sum(rate(x_total{code="5xx"}[{{.window}}]))',
                     "total_query": "sum(rate(x_total[{{.window}}]))"}}, "alerting": {"name": "A"}}]}
    assert [(p.field, p.message) for p in _load(("s.yml", yaml.safe_dump(sloth_doc))).errors] == [
        ("labels.__name__", "label names starting with '__' are Prometheus' own")]
    text = (CORPUS / "openslo" / "v1-payments.yaml").read_text()
    tmp = text.replace('  labels:\n    tier: "1"\n', '  labels:\n    tier: "1"\n    __tmp: x\n')
    result = _load(("oslo.yaml", tmp))
    assert [p.field for p in result.errors] == ["metadata.labels.__tmp"]


def test_an_imported_specs_errors_name_the_service_so_it_keeps_its_artifacts_and_others_prune() -> None:
    """A Kubernetes Sloth object, a Pyrra or an OpenSLO document is named for itself (`checkout-slos`,
    `api-errors`): its errors named that, no service. Then the service rendered without the bad SLO (its alerts
    dropped from the rule file, in serve too) and the read counted as incomplete (nothing pruned anywhere)."""
    from obsctl.reconcile.converge import carry_forward

    def pyrra_doc(name: str, target: str) -> dict[str, object]:
        return {"apiVersion": "pyrra.dev/v1alpha1", "kind": "ServiceLevelObjective",
                "metadata": {"name": name, "namespace": "monitoring",
                             "labels": {"pyrra.dev/service": "api", "pyrra.dev/team": "team-api"}},
                "spec": {"target": target, "window": "28d", "indicator": {"ratio": {
                    "errors": {"metric": 'x_total{code=~"5.."}'}, "total": {"metric": "x_total"}}}}}

    events = {"errorQuery": 'sum(rate(x_total{code="5xx"}[{{.window}}]))',
              "totalQuery": "sum(rate(x_total[{{.window}}]))"}
    k8s = {"apiVersion": "sloth.slok.dev/v1", "kind": "PrometheusServiceLevel",
           "metadata": {"name": "checkout-slos", "namespace": "monitoring"},
           "spec": {"service": "checkout", "labels": {"owner": "team-a"}, "slos": [
               {"name": "good", "objective": 99.9, "sli": {"events": events}, "alerting": {"name": "A"}},
               {"name": "bad", "objective": 120, "sli": {"events": events}, "alerting": {"name": "B"}}]}}
    result = _load(("p.yaml", yaml.safe_dump_all([pyrra_doc("api-errors", "abc"), pyrra_doc("api-ok", "99")])),
                   ("k.yaml", yaml.safe_dump(k8s)))
    assert sorted((p.file, p.entity, p.field) for p in result.errors) == [
        ("k.yaml", "component:default/checkout", "spec.slos[1].objective"),
        ("p.yaml", "component:default/api", "spec.target")]
    assert _slo_names(result) == {"api": ["api-ok"], "checkout": ["good"]}
    assert carry_forward(result) == (frozenset(), frozenset({"default/api", "default/checkout"}), True)
