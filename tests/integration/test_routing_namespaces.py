"""Groups of one name in two catalog namespaces route apart, checked with amtool on what `obsctl render` writes.

Backstage resolves a Component's `owner: payments` in the Component's own namespace, so a catalog with a `retail`
namespace easily holds group:default/payments and group:retail/payments. Each team's alerts must reach its own
on-call: the `team` label is the name in the default namespace and `<namespace>/<name>` elsewhere, and the
receivers are named by it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsctl.cli import main
from obsctl.model import conventions as cv
from tests.support.binaries import require_binary
from tests.support.prom import Alertmanager, WebhookReceiver, amtool_check_config, amtool_routes_test

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


def _render(tmp_path: Path, settings_text: str = SETTINGS) -> Path:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "groups.yaml").write_text(GROUPS)
    for namespace, name, extra in (("default", "checkout", ""), ("retail", "checkout", ""),
                                   ("retail", "till", "\n    pagerduty.com/service-id: PTILL")):
        (catalog / f"{namespace}-{name}.yaml").write_text(COMPONENT.format(name=name, namespace=namespace,
                                                                           extra=extra))
    settings = tmp_path / "obsctl.yaml"
    settings.write_text(settings_text)
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


def _webhooks(hook: str) -> str:
    """Settings sending each team's pages and tickets to its own webhook path, with short Alertmanager waits."""
    def team(path: str) -> str:
        return "".join(f"      {sev}: [{{name: w, type: webhook, settings: {{url: \"{hook}/{path}/{sev}\"}}}}]\n"
                       for sev in ("page", "ticket"))
    return ("alerting:\n  group_wait: 1s\n  group_interval: 1s\n  dependency_wait: 0s\n  teams:\n"
            f"    payments:\n{team('default-payments')}    \"retail/payments\":\n{team('retail-payments')}"
            "outputs: [prometheus-rules, alertmanager-config]\n")


def test_a_real_alertmanager_delivers_each_payments_teams_page_to_its_own_on_call(tmp_path: Path) -> None:
    """The rendered config loaded by a real Alertmanager: the page alerts of default/checkout and retail/checkout
    (labels from their rendered rules, posted at once) each reach only their own team's webhook."""
    require_binary("prometheus-alertmanager")
    hook = WebhookReceiver()
    hook.start()
    try:
        out = _render(tmp_path, _webhooks(hook.url))
        pages = {ns: _alerts(out, ns, "checkout", "page")[0] for ns in ("default", "retail")}
        with Alertmanager(tmp_path / "am", (out / "alertmanager" / "alertmanager.yml").read_text()) as am:
            am.post_alerts([{"labels": labels} for labels in pages.values()])

            def delivered() -> dict[str, set[str]] | None:
                got: dict[str, set[str]] = {}
                for r in hook.snapshot():
                    for alert in r["payload"]["alerts"]:
                        got.setdefault(r["path"], set()).add(alert["labels"][cv.LABEL_NAMESPACE])
                return got if len(got) >= 2 else None

            am.wait_for(delivered, timeout=30.0)
            time.sleep(2.0)  # a group_interval more: a page that went astray would have arrived by now
            got = delivered()
            receivers = {a["labels"][cv.LABEL_NAMESPACE]: [r["name"] for r in a["receivers"]] for a in am.alerts()}
        assert got == {"/default-payments/page": {"default"}, "/retail-payments/page": {"retail"}}
        assert receivers == {"default": ["obsctl-payments-page"], "retail": ["obsctl-retail/payments-page"]}
    finally:
        hook.stop()
