"""A one-off `obsctl render --only rules,alertmanager` over a catalog where a service keeps its last good alerts
(it loaded without an SLO, or was skipped, for an error that names it): its rule file is carried as it is, and
so must be the routes those alerts follow. Before, the Alertmanager config was rendered from the read, which no
longer had the service's page SLO (or the service): its own PagerDuty sub-route and receiver were dropped, and
its still-firing page went to the team's PagerDuty service. Now its team's part is held from the config in
place, while another team's change lands in the same run. Checked with the real `amtool config routes test`.
"""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsctl.cli import main
from obsctl.model import conventions as cv
from tests.integration.test_spec_identity_labels import COMPONENTS, HOSTILE, SLOTH
from tests.support.binaries import require_binary
from tests.support.prom import amtool_check_config, amtool_routes_test

pytestmark = pytest.mark.integration


def _write(cat: Path, components: list[dict[str, Any]], sloth: str) -> None:
    (cat / "slos").mkdir(parents=True, exist_ok=True)
    (cat / "catalog.yaml").write_text(yaml.safe_dump_all(components))
    (cat / "slos" / "checkout.yml").write_text(sloth)


def _render(tmp_path: Path, code: int = 0) -> str:
    """`obsctl render`'s warnings, the command exiting with `code` (1: the catalog has errors)."""
    err = io.StringIO()
    assert main(["render", str(tmp_path / "cat"), "--out", str(tmp_path / "out"), "--only", "rules,alertmanager",
                 "--config", str(tmp_path / "settings.yaml")], io.StringIO(), err) == code, err.getvalue()
    return err.getvalue()


def _page(rule_file: Path) -> dict[str, str]:
    """The labels Prometheus sends for the fastest page alert of a rendered rule file (the rule's labels win)."""
    rules = [r for g in yaml.safe_load(rule_file.read_text())["groups"] for r in g["rules"]]
    alert = next(r for r in rules if r.get("alert") and r["labels"].get(cv.LABEL_SEVERITY_CLASS) == "page"
                 and "page-fast" in (r["labels"].get("tier"), r["labels"].get("obsctl_tier")))
    return {**alert["labels"], "alertname": alert["alert"]}


def _receiver(config: Path, labels: dict[str, str]) -> tuple[str, Any]:
    """The receiver amtool routes `labels` to, and its PagerDuty routing key files."""
    found = amtool_routes_test(config, labels)
    assert found.returncode == 0, found.stdout + found.stderr
    name = found.stdout.strip()
    [receiver] = [r for r in yaml.safe_load(config.read_text())["receivers"] if r["name"] == name]
    return name, [c["routing_key_file"] for c in receiver.get("pagerduty_configs", [])]


@pytest.mark.parametrize("edit", ["slo-left-out", "component-skipped"])
def test_a_one_off_render_keeps_the_own_page_route_of_a_service_whose_alerts_it_carries(tmp_path: Path,
                                                                                         edit: str) -> None:
    require_binary("amtool")
    keys = tmp_path / "keys"
    (tmp_path / "settings.yaml").write_text(yaml.safe_dump({"alerting": {
        "catalog": {"pagerduty": {"severities": ["page"], "settings": {
            "routing_key_file": f"{keys}/{{service_id}}", "url": "http://127.0.0.1:9/pagerduty"}}},
        "default": {"ticket": [{"name": "t", "type": "webhook", "settings": {"url": "http://127.0.0.1:9/t"}}]}}}))
    cat, out = tmp_path / "cat", tmp_path / "out"
    config, rules = out / "alertmanager" / "alertmanager.yml", out / "prometheus" / "rules" / "default"
    _write(cat, COMPONENTS, SLOTH)
    _render(tmp_path)
    checkout_rules = (rules / "checkout.rules.yml").read_bytes()
    checkout_page, db_page = _page(rules / "checkout.rules.yml"), _page(rules / "payments-db.rules.yml")
    own = ("obsctl-team-pay-page-default-checkout", [f"{keys}/PCHECKOUT"])
    assert _receiver(config, checkout_page) == own
    assert _receiver(config, db_page) == ("obsctl-team-db-page", [f"{keys}/PDB"])

    # checkout breaks; in the same run team-db moves to another PagerDuty service
    components = copy.deepcopy(COMPONENTS)
    by_name = {c["metadata"]["name"]: c for c in components}
    by_name["team-db"]["metadata"]["annotations"]["pagerduty.com/service-id"] = "PDBNEW"
    sloth = SLOTH
    if edit == "slo-left-out":
        sloth = HOSTILE  # an identity-label error: checkout loads without its only (page) SLO
    else:
        by_name["checkout"]["metadata"]["annotations"]["obsctl.dev/tier"] = "x"  # the Component is skipped
    _write(cat, components, sloth)
    warnings = _render(tmp_path, 1)

    assert (rules / "checkout.rules.yml").read_bytes() == checkout_rules  # its alerts are carried as they are...
    assert _receiver(config, checkout_page) == own  # ...and so is the route they follow
    assert _receiver(config, db_page) == ("obsctl-team-db-page", [f"{keys}/PDBNEW"])  # another team renders fresh
    check = amtool_check_config(config)
    assert check.returncode == 0, check.stdout + check.stderr
    held = [line for line in warnings.splitlines() if "routing: warning" in line]
    assert len(held) == 1, warnings
    assert "group:default/team-pay" in held[0] and "component:default/checkout keeps its last good alerts" in held[0]
