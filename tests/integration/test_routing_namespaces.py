"""Groups of one name in two catalog namespaces route apart, checked with amtool on what `obsctl render` writes.

Backstage resolves a Component's `owner: payments` in the Component's own namespace, so a catalog with a `retail`
namespace easily holds group:default/payments and group:retail/payments. Each team's alerts must reach its own
on-call: the `team` label is the name in the default namespace and `<namespace>/<name>` elsewhere, and the
receivers are named by it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from obsctl.cli import main
from obsctl.model import conventions as cv
from tests.support.binaries import require_binary
from tests.support.prom import amtool_check_config, amtool_routes_test

pytestmark = pytest.mark.integration

GROUPS = """\
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: payments
  annotations: {pagerduty.com/service-id: PDEFAULT}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: payments
  namespace: retail
  annotations: {pagerduty.com/service-id: PRETAIL}
spec: {type: team, children: []}
"""

COMPONENT = """\
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: {name}
  namespace: {namespace}
  annotations:
    obsctl.dev/availability: "99.9"{extra}
spec: {{type: service, lifecycle: production, owner: payments}}
"""

SETTINGS = """\
alerting:
  catalog:
    pagerduty:
      severities: [page]
      settings: {routing_key_file: "/secrets/pagerduty/{service_id}"}
  teams:
    payments:
      ticket: [{name: t, type: webhook, settings: {url: "https://tickets.test/default-payments"}}]
    "retail/payments":
      ticket: [{name: t, type: webhook, settings: {url: "https://tickets.test/retail-payments"}}]
outputs: [prometheus-rules, alertmanager-config]
"""

# (service namespace, service, severity) -> where its alerts must arrive: the integration of its own team
WANTED = {
    ("default", "checkout", "page"): {"pagerduty_configs": [{"routing_key_file": "/secrets/pagerduty/PDEFAULT"}]},
    ("retail", "checkout", "page"): {"pagerduty_configs": [{"routing_key_file": "/secrets/pagerduty/PRETAIL"}]},
    ("retail", "till", "page"): {"pagerduty_configs": [{"routing_key_file": "/secrets/pagerduty/PTILL"}]},
    ("default", "checkout", "ticket"): {"webhook_configs": [{"url": "https://tickets.test/default-payments"}]},
    ("retail", "checkout", "ticket"): {"webhook_configs": [{"url": "https://tickets.test/retail-payments"}]},
    ("retail", "till", "ticket"): {"webhook_configs": [{"url": "https://tickets.test/retail-payments"}]},
}


def _render(tmp_path: Path) -> Path:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "groups.yaml").write_text(GROUPS)
    for namespace, name, extra in (("default", "checkout", ""), ("retail", "checkout", ""),
                                   ("retail", "till", "\n    pagerduty.com/service-id: PTILL")):
        (catalog / f"{namespace}-{name}.yaml").write_text(COMPONENT.format(name=name, namespace=namespace,
                                                                           extra=extra))
    settings = tmp_path / "obsctl.yaml"
    settings.write_text(SETTINGS)
    out = tmp_path / "out"
    assert main(["--config", str(settings), "render", str(catalog), "--out", str(out)]) == 0
    return out


def _alerts(out: Path, namespace: str, service: str, severity: str) -> list[dict[str, str]]:
    """The labels of every alert of `severity` the service's rendered rule file carries."""
    doc = yaml.safe_load((out / "prometheus" / "rules" / namespace / f"{service}.rules.yml").read_text())
    return [rule["labels"] for group in doc["groups"] for rule in group["rules"]
            if "alert" in rule and rule["labels"][cv.LABEL_SEVERITY_CLASS] == severity]


def test_same_named_groups_in_two_namespaces_page_their_own_on_call(tmp_path: Path) -> None:
    require_binary("amtool")
    out = _render(tmp_path)
    config = out / "alertmanager" / "alertmanager.yml"
    check = amtool_check_config(config)
    assert check.returncode == 0, check.stdout + check.stderr  # one receiver name per team: a valid config
    receivers = {r["name"]: {k: v for k, v in r.items() if k != "name"}
                 for r in yaml.safe_load(config.read_text())["receivers"]}
    routed: dict[tuple[str, str, str], set[str]] = {}
    for (namespace, service, severity), integration in WANTED.items():
        alerts = _alerts(out, namespace, service, severity)
        assert alerts, (namespace, service, severity)
        # the team label says which payments: the name alone in the default namespace
        assert {a[cv.LABEL_TEAM] for a in alerts} == {"payments" if namespace == "default" else "retail/payments"}
        for labels in alerts:
            result = amtool_routes_test(config, labels)
            assert result.returncode == 0, result.stdout + result.stderr
            names = result.stdout.strip().split(",")
            assert len(names) == 1, names
            routed.setdefault((namespace, service, severity), set()).update(names)
            assert receivers[names[0]] == integration, (namespace, service, severity, names[0])
            # the check can fail: the same alert as the other namespace's team's reaches another receiver
            other = "payments" if labels[cv.LABEL_TEAM] != "payments" else "retail/payments"
            wrong = amtool_routes_test(config, {**labels, cv.LABEL_TEAM: other}, names)
            assert wrong.returncode != 0, wrong.stdout
    assert routed == {
        ("default", "checkout", "page"): {"obsctl-payments-page"},
        ("retail", "checkout", "page"): {"obsctl-retail/payments-page"},
        ("retail", "till", "page"): {"obsctl-retail/payments-page-retail-till"},
        ("default", "checkout", "ticket"): {"obsctl-payments-ticket"},
        ("retail", "checkout", "ticket"): {"obsctl-retail/payments-ticket"},
        ("retail", "till", "ticket"): {"obsctl-retail/payments-ticket"},
    }

def test_a_group_in_one_namespace_keeps_the_labels_and_names_it_had(tmp_path: Path) -> None:
    """group:default/payments's label and receivers are its name alone, as before namespaces were part of the key."""
    out = _render(tmp_path)
    doc: dict[str, Any] = yaml.safe_load((out / "alertmanager" / "alertmanager.yml").read_text())
    teams = [r["matchers"] for r in doc["route"]["routes"]]
    assert teams == [['team="payments"'], ['team="retail/payments"']]
    names = [r["name"] for r in doc["receivers"]]
    assert names == [cv.DEFAULT_RECEIVER, "obsctl-payments-page", "obsctl-payments-ticket",
                     "obsctl-retail/payments-page-retail-till", "obsctl-retail/payments-page",
                     "obsctl-retail/payments-ticket"]
