"""A spec's labels cannot take obsctl's routing away: a `team` label naming another team than the owner is
refused on its field (the SLO is left out alone, the service keeps its other SLOs), read from the real
formats (Sloth, Pyrra, OpenSLO, obsctl.dev/v1); a `tier` label (Sloth's own examples carry `tier: "2"`)
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
    assert (error.file, error.entity, error.field) == (
        "slos/payments.yml", "component:default/payments-api", "slos.requests-availability.alerting.labels.team")
    assert "team='payments-oncall'" in error.message and "group:default/team-payments" in error.message
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
                                                       "slos.availability.labels.team")


def test_pyrra_team_label_must_name_the_owner() -> None:
    corpus = (CORPUS / "pyrra" / "slos.yaml").read_text()
    alone = _load(("pyrra.yaml", corpus))  # its api-broken SLO is broken on purpose (a bad metric)
    assert not [p for p in alone.errors if p.field.endswith(".team")]
    assert {s.team.name for s in alone.catalog.services} == {"team-api"}
    # a Component gives `api` to another team: the SLOs whose pyrra.dev/team says team-api are refused
    result = _load(("components.yaml", _component("api", "team-core")), ("pyrra.yaml", corpus))
    errors = [p for p in result.errors if p.field.endswith(".team")]
    assert {p.field for p in errors} == {f"slos.{name}.labels.team" for name in (
        "api-errors", "api-latency", "api-latency-native", "probe-success")}  # every one labelled pyrra.dev/team
    assert all((p.file, p.entity) == ("pyrra.yaml", "component:default/api") for p in errors)
    assert "group:default/team-core" in errors[0].message


def test_openslo_and_native_team_labels_must_name_the_owner() -> None:
    text = (CORPUS / "openslo" / "v1-payments.yaml").read_text()
    assert '  labels:\n    tier: "1"\n' in text
    # a team label on an OpenSLO SLO names its owner, unless a Component says otherwise
    result = _load(("components.yaml", _component("payments", "team-payments")),
                   ("oslo.yaml", text.replace('  labels:\n    tier: "1"\n', '  labels:\n    tier: "1"\n    team: x\n')))
    [error] = result.errors
    assert (error.file, error.entity, error.field) == ("oslo.yaml", "component:default/payments",
                                                       "slos.payments-availability.labels.team")
    assert "payments-availability" not in _slo_names(result)["payments"]
    native = {"apiVersion": "obsctl.dev/v1", "kind": "Service", "metadata": {"name": "orders"},
              "spec": {"owner": "team-orders", "slos": [
                  {"name": "ok", "objective": 99.9, "sli": {"availability": {}}, "labels": {"team": "team-orders"}},
                  {"name": "bad", "objective": 99.9, "sli": {"availability": {}}, "labels": {"team": "team-x"}}]}}
    result = _load(("orders.yaml", yaml.safe_dump(native)))
    [error] = result.errors
    assert (error.file, error.entity, error.field, error.severity) == (
        "orders.yaml", "component:default/orders", "slos.bad.labels.team", Severity.ERROR)
    assert _slo_names(result) == {"orders": ["ok"]}


@pytest.mark.parametrize("where", ["alerting.page.labels", "alerting.ticket.labels"])
def test_a_team_label_on_one_severity_is_refused_too(where: str) -> None:
    block = "page_alert" if "page" in where else "ticket_alert"
    spec = {"version": "prometheus/v1", "service": "svc", "labels": {"owner": "team-a"},
            "slos": [{"name": "availability", "objective": 99.9, "sli": {"events": {
                "error_query": 'sum(rate(x_total{code="5xx"}[{{.window}}]))',
                "total_query": "sum(rate(x_total[{{.window}}]))"}},
                "alerting": {"name": "A", block: {"labels": {"team": "team-b"}}}}]}
    [error] = _load(("s.yml", yaml.safe_dump(spec))).errors
    assert error.field == f"slos.availability.{where}.team"


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
