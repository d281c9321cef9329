"""Sloth specs are read in full, in both forms (tests/corpus/sloth, see ORIGIN.md); what obsctl cannot honour
is said by name, and a bad SLO skips only itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from obsctl.errors import Severity
from obsctl.model import conventions as cv
from obsctl.model.entities import SLO, EventsSLI
from obsctl.render.options import RenderOptions
from obsctl.render.rules import service_groups
from obsctl.spec.load import LoadResult, SourceFile, load_catalog
from tests.support.slo_promtool import repo_templates

TEMPLATES = repo_templates()
CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "sloth"


def _load_file(path: Path) -> LoadResult:
    return load_catalog([SourceFile(str(path), path.read_bytes())], TEMPLATES)


def _load_text(text: str) -> LoadResult:
    return load_catalog([SourceFile("spec.yml", text.encode())], TEMPLATES)


def _slos(result: LoadResult) -> dict[str, SLO]:
    return {slo.name: slo for svc in result.catalog.services for slo in svc.slos}


def _said(result: LoadResult, severity: Severity) -> list[str]:
    return [f"{p.line}:{p.field}: {p.message}" for p in result.problems if p.severity is severity]


def test_every_field_of_the_cli_form() -> None:
    result = _load_file(CORPUS / "ours" / "full-fields.yml")
    assert result.errors == []
    slos = _slos(result)
    avail = slos["requests-availability"]
    # spec labels merged with the SLO's (the SLO's win), as Sloth merges them
    assert dict(avail.labels) == {"owner": "team-payments", "repo": "acme/payments-api", "tier": "1",
                                  "category": "availability"}
    policy = avail.alerting
    assert policy.name == "PaymentsHighErrorRate"
    assert dict(policy.labels) == {"routing_key": "payments", "team": "team-payments"}
    assert dict(policy.page_labels) == {"severity": "critical", "channel": "#payments-page"}
    assert dict(policy.ticket_labels) == {"severity": "warning"}
    assert dict(policy.page_annotations) == {"escalation": "call the payments on-call"}
    assert dict(policy.ticket_annotations) == {"summary": "Payments API error budget slowly burning"}
    assert dict(policy.annotations)["runbook"] == "https://runbooks.acme.test/payments/availability"
    assert avail.description == "Payments API requests that do not fail."
    assert not slos["requests-latency"].alerting.ticket and slos["requests-latency"].alerting.page
    warnings = "\n".join(_said(result, Severity.WARNING))
    assert "8:slo_plugins: Sloth SLO plugins are not run by obsctl" in warnings
    assert "19:slos[0].plugins: Sloth SLO plugins are not run by obsctl" in warnings


def test_page_alert_keeps_critical_and_routes_on_the_class_label() -> None:
    result = _load_file(CORPUS / "ours" / "full-fields.yml")
    (svc,) = result.catalog.services
    rules = [r for g in service_groups(svc, TEMPLATES, RenderOptions()) for r in g["rules"]]
    page = [r for r in rules if r.get("alert") == "PaymentsHighErrorRate"
            and r["labels"][cv.LABEL_SEVERITY_CLASS] == "page"]
    assert len(page) == 2
    for rule in page:
        labels = rule["labels"]
        assert labels["severity"] == "critical" and labels["tier"] == "1" and labels["team"] == "team-payments"
        assert labels["obsctl_tier"] in ("page-fast", "page-slow") and "obsctl_team" not in labels
        assert labels["repo"] == "acme/payments-api" and labels["channel"] == "#payments-page"
        assert rule["annotations"]["escalation"] == "call the payments on-call"
        assert rule["annotations"]["summary"] == "Payments API error budget burn"
    records = [r for r in rules if "record" in r and r["labels"]["slo"] == "requests-availability"]
    assert records and all(r["labels"]["repo"] == "acme/payments-api" for r in records)


def test_kubernetes_form_reads_the_same_fields() -> None:
    result = _load_file(CORPUS / "ours" / "k8s-full.yml")
    assert result.errors == []
    slos = _slos(result)
    avail = slos["requests-availability"]
    assert avail.group_by == ("region",)
    assert dict(avail.alerting.page_labels) == {"severity": "critical"}
    assert dict(avail.alerting.page_annotations) == {"priority": "P1"}
    assert dict(avail.labels)["tier"] == "1"
    raw = slos["raw-error-ratio"]
    assert isinstance(raw.sli, EventsSLI) and raw.sli.error_ratio_query is not None
    assert not raw.alerting.ticket
    assert any("12:spec.sloPlugins" in w for w in _said(result, Severity.WARNING))


def test_objective_90_renders_without_the_tier_that_cannot_fire() -> None:
    result = _load_file(CORPUS / "ours" / "objectives.yml")
    assert result.errors == []
    (svc,) = result.catalog.services
    assert sorted(s.name for s in svc.slos) == ["loose", "page-only", "silent", "ticket-only"]
    rules = [r for g in service_groups(svc, TEMPLATES, RenderOptions()) for r in g["rules"]]
    tiers = {r["labels"]["tier"] for r in rules if r.get("alert") == "BatchLoose"}
    assert tiers == {"page-slow", "ticket-fast", "ticket-slow"}
    assert any(w.startswith("6:slos[0].objective: SLO loose: alert tier page-fast (page) can never fire at "
                            "objective 90%") for w in _said(result, Severity.WARNING))
    assert {r["labels"]["tier"] for r in rules if r.get("alert") == "BatchPageOnly"} == {"page-fast", "page-slow"}
    assert {r["labels"]["tier"] for r in rules if r.get("alert") == "BatchTicketOnly"} == {"ticket-fast",
                                                                                          "ticket-slow"}


BAD = """\
version: prometheus/v1
service: orders
labels: {owner: team-orders}
slos:
  - name: good
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(orders_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(orders_total[{{.window}}]))
    alerting: {name: OrdersGood}
  - name: plugin
    objective: 99
    sli:
      plugin: {id: sloth-common/availability, options: {job: orders}}
    alerting: {name: OrdersPlugin}
  - name: reserved
    objective: 99
    labels: {obsctl_severity: page}
    sli:
      events:
        error_query: sum by (cluster) (rate(orders_total{code=~"5.."}[{{.window}}]))
        total_query: sum by (region) (rate(orders_total[{{.window}}]))
    alerting:
      name: OrdersReserved
      annotations: {summary: "{{ $value }} errors"}
  - name: without
    objective: 99
    sli:
      events:
        error_query: sum without (pod) (rate(orders_total{code=~"5.."}[{{.window}}]))
        total_query: sum without (pod) (rate(orders_total[{{.window}}]))
    alerting: {name: OrdersWithout}
"""


def test_a_bad_slo_skips_only_itself_with_errors_at_their_lines() -> None:
    result = _load_text(BAD)
    assert [s.name for s in _slos(result).values()] == ["good"]
    errors = _said(result, Severity.ERROR)
    assert "15:slos[1].sli.plugin: Sloth SLI plugins are not run by obsctl; write the SLI as events queries" in errors
    assert "19:slos[2].labels.obsctl_severity: label names starting with 'obsctl_' are obsctl's own" in errors
    assert ("23:slos[2].sli.events.total_query: the SLI's queries group by different labels: by (cluster) vs "
            "by (region)") in errors
    assert any(e.startswith("31:slos[3].sli.events.error_query: aggregation with `without`") for e in errors)
    assert any(w.startswith("26:slos[2].alerting.annotations.summary: Prometheus templating")
               for w in _said(result, Severity.WARNING))


@pytest.mark.parametrize("name", ["home-wifi.yml", "kubernetes-apiserver.yml", "k8s-multifile.yml", "no-alerts.yml",
                                  "raw-home-wifi.yml"])
def test_sloths_own_examples_load_without_errors(name: str) -> None:
    result = _load_file(CORPUS / "upstream" / name)
    assert result.errors == [] and result.catalog.services


IDENTITY = """\
version: prometheus/v1
service: orders
labels: {owner: team-orders, service: orders}
slos:
  - name: good
    objective: 99.9
    labels: {slo: good}
    sli:
      events:
        error_query: sum(rate(orders_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(orders_total[{{.window}}]))
    alerting: {name: OrdersGood}
  - name: shadow
    objective: 99
    labels: {slo: good}
    sli:
      events:
        error_query: sum(rate(orders_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(orders_total[{{.window}}]))
    alerting: {name: OrdersShadow}
"""


def test_a_label_naming_another_slo_is_an_error_on_that_slo_alone() -> None:
    """`slo: good` on SLO shadow would group shadow's alerts with good's, and let shadow's page mute good's tickets
    (Alertmanager's inhibition compares `slo`); on good itself, and `service: orders`, it says what obsctl says."""
    result = _load_text(IDENTITY)
    assert _said(result, Severity.ERROR) == [
        "15:slos[1].labels.slo: label slo='good' would replace obsctl's slo='shadow' on SLO shadow's alerts "
        "(Alertmanager groups alerts by it and a page mutes the tickets of the SLO it names: another SLO's alerts "
        "would be grouped and muted with these): remove the label or set it to 'shadow'; the SLO is left out"]
    assert [p.entity for p in result.errors] == ["component:default/orders"]
    assert list(_slos(result)) == ["good"]
    assert not any("slo" in w or "service" in w for w in _said(result, Severity.WARNING))
    assert result.partial_owners() == {"default/orders"}  # its artifacts stay as they are


def test_validate_prints_what_is_not_honoured_and_the_cardinality(tmp_path: Path) -> None:
    import contextlib
    import io
    import shutil

    from obsctl.cli import main

    shutil.copy(CORPUS / "ours" / "full-fields.yml", tmp_path / "full-fields.yml")
    shutil.copy(CORPUS / "ours" / "grouped.yml", tmp_path / "grouped.yml")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["validate", str(tmp_path)])  # exits 1 here: no receivers are configured for these teams
    text = out.getvalue()
    assert "slo_plugins: warning: Sloth SLO plugins are not run by obsctl" in text
    assert "slos[0].sli: warning: grouped by (cluster, route): every recording and alert exists once per" in text


def test_a_team_label_must_name_the_owner_with_its_namespace_outside_default() -> None:
    """Alertmanager routes on the `team` label, the owner's name in the default namespace and `<namespace>/<name>`
    elsewhere: a spec's `team: team-payments` under an owner retail/team-payments would page
    group:default/team-payments, so that SLO is left out with an error; the owner's own label loads."""
    text = (CORPUS / "ours" / "full-fields.yml").read_text()
    assert 'owner: "team-payments"' in text and 'team: "team-payments"' in text
    moved = text.replace('owner: "team-payments"', 'owner: "retail/team-payments"')
    wrong = _load_text(moved)
    assert "requests-availability" not in _slos(wrong)
    [error] = [p for p in wrong.errors if p.field.endswith(".team")]
    assert "label team='team-payments' would replace obsctl's team='retail/team-payments'" in error.message
    assert error.field == "slos[0].alerting.labels.team"
    right = _load_text(moved.replace('team: "team-payments"', 'team: "retail/team-payments"'))
    assert right.errors == [] and "requests-availability" in _slos(right)
    (svc,) = right.catalog.services
    labels = [r["labels"] for g in service_groups(svc, TEMPLATES, RenderOptions()) for r in g["rules"] if "alert" in r]
    assert labels and {lb["team"] for lb in labels} == {"retail/team-payments"}
    assert not any("obsctl_team" in lb for lb in labels)  # the spec says what obsctl says: no second label
