"""Paging you can trust, end to end: every team and severity has a destination, the catalog routes pages,
and a dependency's outage pages its owner once.

The amtool tests walk every team x severity of a catalog through `amtool config routes test`. The
stack tests load a catalog with the real loader (Group and Component annotations, dependsOn),
render with obsctl's renderers, apply through obsctl's sinks to a real Prometheus and Alertmanager,
and read what reaches a webhook server standing in for PagerDuty, Opsgenie and Slack (their
integrations' `url`/`api_url` point at it; keys are files, as in production).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsctl.app import load_path, load_templates, render_options
from obsctl.config import Settings, load_settings
from obsctl.model import conventions as cv
from obsctl.model.artifact import Kind, desired_state
from obsctl.reconcile.apply import apply_plan
from obsctl.reconcile.plan import make_plan
from obsctl.render import render_all, routes
from obsctl.render.context import summary_of
from obsctl.sinks.alertmanager import AlertmanagerSink
from obsctl.sinks.base import Sink
from obsctl.sinks.rulefiles import RuleFilesSink
from obsctl.spec.load import LoadResult
from tests.integration.test_alerting_e2e import Exporter
from tests.support.binaries import require_binary
from tests.support.prom import (
    Alertmanager,
    Prometheus,
    WebhookReceiver,
    amtool_check_config,
    amtool_routes_test,
    wait_alertmanager_discovered,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
INTEGRATION_LISTS = ("pagerduty_configs", "opsgenie_configs", "slack_configs", "webhook_configs")


def _walk(settings: Settings, result: LoadResult, tmp_path: Path) -> dict[tuple[str, str, str], str]:
    """Every (team, severity, service) the catalog emits -> the receiver amtool resolves, checked to integrate."""
    templates = load_templates(settings)
    options = render_options(settings)
    [art] = routes.render(result.catalog, templates, options)
    path = tmp_path / "alertmanager.yml"
    path.write_bytes(art.body)
    check = amtool_check_config(path)
    assert check.returncode == 0, check.stdout + check.stderr
    receivers = {r["name"]: r for r in yaml.safe_load(art.body)["receivers"]}
    matrix: dict[tuple[str, str, str], str] = {}
    summaries = [summary_of(s, templates) for s in result.catalog.services]
    for team, per in routes.team_severities(summaries).items():
        for severity, services in per.items():
            for summary in services:
                svc = summary.entity
                assert svc is not None
                labels = {"alertname": cv.ALERT_BURN, cv.LABEL_TEAM: team.name, cv.LABEL_SEVERITY_CLASS: severity,
                          cv.LABEL_SERVICE: svc.name, cv.LABEL_NAMESPACE: svc.namespace, cv.LABEL_SLO: "availability"}
                found = amtool_routes_test(path, labels)
                assert found.returncode == 0, found.stdout + found.stderr
                name = found.stdout.strip()
                assert name in receivers, (labels, name)
                integrations = sum(len(receivers[name].get(k, [])) for k in INTEGRATION_LISTS)
                assert integrations >= 1, f"{team.name}/{severity}/{svc.name} -> {name} has no integration"
                matrix[(team.name, severity, svc.name)] = name
    return matrix


def test_every_team_and_severity_of_the_sample_catalog_reaches_an_integration(tmp_path: Path) -> None:
    settings = load_settings(ROOT / "examples" / "obsctl.yaml")
    result = load_path(ROOT / "examples" / "catalog", settings, load_templates(settings))
    assert not result.errors, result.errors
    matrix = _walk(settings, result, tmp_path)
    print("\nteam x severity x service -> receiver (sample catalog, examples/obsctl.yaml)")
    for (team, severity, service), name in sorted(matrix.items()):
        print(f"  {team:14} {severity:7} {service:14} -> {name}")
    assert matrix[("team-payments", "page", "checkout")] == "obsctl-team-payments-page-default-checkout"
    assert matrix[("team-payments", "page", "ledger")] == "obsctl-team-payments-page"  # the Group's PagerDuty
    assert matrix[("team-search", "page", "search-api")] == "obsctl-team-search-page"  # settings override Opsgenie
    assert {sev for (_t, sev, _s) in matrix} == {"page", "ticket"}
    assert {team for (team, _sev, _s) in matrix} == {"team-payments", "team-search"}


def _catalog(root: Path, teams: dict[str, dict[str, str]], services: list[dict[str, Any]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    docs = [{"apiVersion": "backstage.io/v1alpha1", "kind": "Group",
             "metadata": {"name": name, "annotations": ann}, "spec": {"type": "team"}} for name, ann in teams.items()]
    for s in services:
        docs.append({"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
                     "metadata": {"name": s["name"], "annotations": {"obsctl.dev/availability": "99.9",
                                                                     **s.get("annotations", {})}},
                     "spec": {"type": "service", "lifecycle": s.get("lifecycle", "production"), "owner": s["owner"],
                              **({"dependsOn": s["dependsOn"]} if "dependsOn" in s else {})}})
    (root / "catalog.yaml").write_text(yaml.safe_dump_all(docs))
    return root


def _hook(url: str, name: str) -> list[dict[str, Any]]:
    return [{"name": name, "type": "webhook", "settings": {"url": url}}]


def test_receivers_for_two_of_three_teams_fail_the_third_by_team_and_severity(tmp_path: Path) -> None:
    """The issue's reproduction: the third team is named with each severity it emits, the others render."""
    cat = _catalog(tmp_path / "cat", {"team-a": {}, "team-b": {}, "team-c": {}}, [
        {"name": "a", "owner": "team-a"}, {"name": "b", "owner": "team-b"}, {"name": "c", "owner": "team-c"},
        {"name": "c-beta", "owner": "team-c", "lifecycle": "experimental"}])
    hook = "http://127.0.0.1:9"
    settings = load_settings(None, alerting={"teams": {
        "team-a": {"page": _hook(f"{hook}/a/page", "p"), "ticket": _hook(f"{hook}/a/ticket", "t")},
        # team-b sets only tickets: its pages inherit the default page receivers, severity by severity
        "team-b": {"ticket": _hook(f"{hook}/b/ticket", "t")}},
        "default": {"page": _hook(f"{hook}/default/page", "p")}})
    result = load_path(cat, settings, load_templates(settings))
    errors = sorted((p.entity, p.field) for p in result.errors)
    assert errors == [("component:default/c", "routing.team-c.ticket"),
                      ("component:default/c-beta", "routing.team-c.ticket")]
    message = next(str(p) for p in result.errors if p.entity == "component:default/c")
    assert "team team-c: ticket alerts of component:default/c, component:default/c-beta have no destination" \
        in message
    assert sorted(result.skipped) == ["component:default/c", "component:default/c-beta"]
    matrix = _walk(settings, result, tmp_path)
    assert matrix == {("team-a", "page", "a"): "obsctl-team-a-page", ("team-a", "ticket", "a"): "obsctl-team-a-ticket",
                      ("team-b", "page", "b"): "obsctl-team-b-page", ("team-b", "ticket", "b"): "obsctl-team-b-ticket"}
    doc = yaml.safe_load((tmp_path / "alertmanager.yml").read_text())
    page_b = next(r for r in doc["receivers"] if r["name"] == "obsctl-team-b-page")
    assert page_b["webhook_configs"][0]["url"] == f"{hook}/default/page"


# -- the real stack -------------------------------------------------------------------------------


def _apply(sink: Sink, desired: dict[str, Any]) -> None:
    mine = desired_state([a for a in desired.values() if a.kind in sink.kinds])
    result = apply_plan(sink, make_plan(mine, sink.list_owned()))
    assert not result.failed, result.failed


class Stack:
    """Prometheus scraping a synthetic exporter, Alertmanager, and a webhook standing in for the paging tools."""

    def __init__(self, tmp: Path, hook: WebhookReceiver, exporter: Exporter, am: Alertmanager, prom: Prometheus,
                 rules_dir: Path) -> None:
        self.tmp, self.hook, self.exporter, self.am, self.prom, self.rules_dir = tmp, hook, exporter, am, prom, \
            rules_dir

    def settings(self, keys: Path, slack: tuple[str, ...] = ("ticket",), dependency_wait: str = "8s") -> Settings:
        """Catalog annotations mapped to integrations whose endpoints are the webhook; keys in files.

        Rules are evaluated every second here: 8s of dependency wait covers that, and the dependency failing
        a few seconds after its dependents in the outage test."""
        keys.mkdir(exist_ok=True)
        for service_id in ("PDB", "PPAY", "PCHECKOUT"):
            (keys / service_id).write_text(f"key-{service_id}\n")
        (keys / "opsgenie").write_text("og-key")  # Alertmanager 0.25 sends this file verbatim: no newline
        (keys / "slack").write_text(f"{self.hook.url}/slack\n")
        return load_settings(None, alerting={
            "group_wait": "2s", "group_interval": "1s", "repeat_interval": "1h", "dependency_wait": dependency_wait,
            "catalog": {
                "pagerduty": {"severities": ["page"], "settings": {
                    "routing_key_file": f"{keys}/{{service_id}}", "url": f"{self.hook.url}/pagerduty"}},
                "opsgenie": {"severities": ["page"], "settings": {
                    "api_key_file": f"{keys}/opsgenie", "api_url": f"{self.hook.url}/opsgenie/"}},
                "slack": {"severities": list(slack), "settings": {"api_url_file": f"{keys}/slack"}}},
            "teams": {"team-pay": {"ticket": _hook(f"{self.hook.url}/team-pay/ticket", "tickets")}},
            "default": {"ticket": _hook(f"{self.hook.url}/default/ticket", "tickets")}})

    def deploy(self, catalog_dir: Path, settings: Settings) -> LoadResult:
        """Load, check routing, render and apply rules and the Alertmanager config; wait until both are live."""
        templates = load_templates(settings)
        result = load_path(catalog_dir, settings, templates)
        assert not result.errors, result.errors
        options = render_options(settings)
        desired = render_all(result.catalog, templates, options, ["rules", "alertmanager"])
        _apply(AlertmanagerSink(self.am.tmp_dir, self.am.url), desired)
        self.am.wait_for(lambda: "obsctl_depends_on" in self.am.status()["config"]["original"], timeout=10)
        wait_alertmanager_discovered(self.prom, alertmanager_url=self.am.url)
        _apply(RuleFilesSink(self.rules_dir, self.prom.url), {k: a for k, a in desired.items()
                                                              if a.kind is Kind.PROMETHEUS_RULES})
        from obsctl.render.rules import service_groups
        groups = [g["name"] for svc in result.catalog.services for g in service_groups(svc, templates, options)
                  if "interval" not in g]
        self.prom.wait_rules_loaded(groups)
        for svc in result.catalog.services:
            self.prom.wait_for(lambda s=svc.name: self.prom.query_value(  # type: ignore[misc]
                f'obsctl:slo_requests:rate5m{{service="{s}",slo="availability"}}'), timeout=20)
        return result

    def wait(self, predicate: Any, what: str, timeout: float = 90) -> dict[str, Any]:
        """The first webhook call matching `predicate`; on a timeout, what did arrive and what Alertmanager holds."""
        try:
            found: dict[str, Any] = self.hook.wait_for(predicate, timeout=timeout)
        except TimeoutError:
            got = [r["path"] for r in self.hook.snapshot()]
            held = sorted((a["labels"].get("service", ""), a["labels"].get(cv.LABEL_SEVERITY_CLASS, ""),
                           a["labels"].get("tier", ""), a["status"]["state"]) for a in self.am.alerts())
            raise AssertionError(f"no {what} within {timeout}s; webhooks: {got}; Alertmanager: {held}") from None
        return found

    def pages(self) -> list[dict[str, Any]]:
        """Every notification that woke someone up: PagerDuty and Opsgenie calls, page webhooks."""
        return [r for r in self.hook.snapshot() if r["path"].startswith(("/pagerduty", "/opsgenie"))
                or r["path"].endswith("/page")]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    with WebhookReceiver() as hook, Exporter(["payments-db", "checkout", "orders"]) as exporter:
        rules_dir = tmp_path / "rules"
        with Alertmanager(tmp_path / "am", "route: {receiver: none}\nreceivers: [{name: none}]\n") as am, \
                Prometheus(tmp_path / "prom", rule_files=[rules_dir / "*.rules.yml"], alertmanager_url=am.url,
                           extra_scrape_configs=[{"job_name": "svc", "static_configs": [
                               {"targets": [f"127.0.0.1:{exporter.port}"]}]}]) as prom:
            yield Stack(tmp_path, hook, exporter, am, prom, rules_dir)


TEAMS = {"team-db": {"pagerduty.com/service-id": "PDB"},
         "team-pay": {"pagerduty.com/service-id": "PPAY"},
         "team-shop": {"opsgenie.com/team": "shop-oncall", "slack.com/channel": "shop-alerts"}}
SERVICES = [
    {"name": "payments-db", "owner": "team-db"},
    {"name": "checkout", "owner": "team-pay", "dependsOn": ["component:payments-db"],
     "annotations": {"pagerduty.com/service-id": "PCHECKOUT"}},
    {"name": "orders", "owner": "team-shop", "dependsOn": ["component:payments-db"]},
]


def test_catalog_annotations_route_pages_and_tickets_to_their_integrations(stack: Stack) -> None:
    """Items 1 and 2: without any dependency down, each team's pages reach what its catalog says.

    Slack is mapped for pages too here (a day-long ticket window takes minutes to fill on a fresh
    Prometheus); tickets are walked through amtool above and delivered in the dependency test below.
    """
    settings = stack.settings(stack.tmp / "keys", slack=("page", "ticket"))
    stack.deploy(_catalog(stack.tmp / "cat", TEAMS, SERVICES), settings)
    time.sleep(2)
    t_fail = time.time()
    stack.exporter.fail("checkout")
    stack.exporter.fail("orders")
    pd = stack.wait(lambda r: r["path"] == "/pagerduty", "a call to /pagerduty")
    og = stack.wait(lambda r: r["path"].startswith("/opsgenie"), "an Opsgenie call")
    # checkout's own PagerDuty service (its Component annotation), not its team's
    assert pd["payload"]["routing_key"] == "key-PCHECKOUT"
    assert pd["payload"]["event_action"] == "trigger" and "checkout" in pd["payload"]["payload"]["summary"]
    assert og["path"] == "/opsgenie/v2/alerts"
    assert og["payload"]["responders"] == [{"name": "shop-oncall", "type": "team"}]
    slack = stack.wait(lambda r: r["path"] == "/slack", "a call to /slack")
    assert slack["payload"]["channel"] == "#shop-alerts"  # the Group's slack.com/channel
    assert "orders" in json.dumps(slack["payload"])
    print(f"\nfailure -> PagerDuty (checkout) {pd['recv_unix'] - t_fail:.1f}s, -> Opsgenie (orders) "
          f"{og['recv_unix'] - t_fail:.1f}s, -> Slack (orders) {slack['recv_unix'] - t_fail:.1f}s")
    pd_keys = {r["payload"]["routing_key"] for r in stack.hook.snapshot() if r["path"] == "/pagerduty"}
    assert pd_keys == {"key-PCHECKOUT"}  # never the team's PPAY: the Component's own service wins


def test_a_dependency_outage_pages_its_owner_exactly_once(stack: Stack) -> None:
    """Item 7: payments-db, and both services that depend on it, fail: one page, to team-db.

    The dependents' errors show first (their alerts reach Alertmanager 3 s before the dependency's, more
    than group_wait): without `dependency_wait` holding their pages, checkout and orders would page."""
    settings = stack.settings(stack.tmp / "keys")
    result = stack.deploy(_catalog(stack.tmp / "cat", TEAMS, SERVICES), settings)
    doc = yaml.safe_load((stack.am.tmp_dir / "alertmanager.yml").read_text())
    templates = load_templates(settings)
    summaries = [summary_of(s, templates) for s in result.catalog.services]
    assert len(routes.dependency_inhibitions(summaries)) == 1  # one rule for one dependency
    assert sum(1 for r in doc["inhibit_rules"] if any("obsctl_depends_on=~" in m for m in r["target_matchers"])) == 1
    time.sleep(2)
    t_fail = time.time()
    for name in ("checkout", "orders"):
        stack.exporter.fail(name)
    time.sleep(3)
    stack.exporter.fail("payments-db")
    page = stack.wait(lambda r: r["path"] == "/pagerduty", "a call to /pagerduty")
    t_page = page["recv_unix"]
    assert page["payload"]["routing_key"] == "key-PDB"
    assert "payments-db" in page["payload"]["payload"]["summary"]

    def dependents_muted() -> list[dict[str, Any]] | None:
        found = [a for a in stack.am.alerts() if a["labels"].get("service") in ("checkout", "orders")
                 and a["labels"].get(cv.LABEL_SEVERITY_CLASS) == "page"]
        names = {a["labels"]["service"] for a in found}
        return found if names == {"checkout", "orders"} and all(a["status"]["state"] == "suppressed"
                                                                 for a in found) else None
    muted = stack.am.wait_for(dependents_muted, timeout=60)
    assert {a["labels"][cv.LABEL_DEPENDS_ON] for a in muted} == {"|default/payments-db|"}
    # dependents still ticket: checkout through its team's settings, orders through its Group's Slack channel
    # (the day-long ticket window is tiled on recorded 5m rates: on a fresh Prometheus it needs a tile first)
    ticket = stack.wait(lambda r: r["path"] == "/team-pay/ticket", "a call to /team-pay/ticket", timeout=600)
    slack = stack.wait(lambda r: r["path"] == "/slack", "a call to /slack", timeout=600)
    assert slack["payload"]["channel"] == "#shop-alerts"
    assert {a["labels"]["service"] for a in ticket["payload"]["alerts"]} == {"checkout"}
    t_tickets = max(ticket["recv_unix"], slack["recv_unix"])
    time.sleep(5)  # several group_wait/group_interval rounds after the dependents' pages were muted
    pages = stack.pages()
    assert [(p["path"], p["payload"]["routing_key"]) for p in pages] == [("/pagerduty", "key-PDB")], pages
    print(f"\ndependency down -> its owner's page {t_page - t_fail:.1f}s; dependents' pages muted in Alertmanager; "
          f"dependents' tickets by {t_tickets - t_fail:.1f}s; pages delivered in total: {len(pages)}")


def test_a_spec_tier_label_keeps_the_tier_inhibition_in_a_real_alertmanager(tmp_path: Path) -> None:
    """Sloth's own examples label the service tier (`tier: "2"`): obsctl's tier name then goes under
    obsctl_tier, and a faster tier still mutes a slower one; the alerts route to the owner's receiver."""
    require_binary("prometheus-alertmanager")
    from obsctl.render.rules import service_groups

    cat = tmp_path / "cat"
    cat.mkdir()
    (cat / "slos.yml").write_bytes((ROOT / "tests" / "corpus" / "sloth" / "ours" / "full-fields.yml").read_bytes())
    settings = load_settings(None, alerting={"teams": {"team-payments": {
        "page": _hook("http://127.0.0.1:9/page", "p"), "ticket": _hook("http://127.0.0.1:9/ticket", "t")}}})
    templates = load_templates(settings)
    result = load_path(cat, settings, templates)
    assert not result.errors, result.errors
    [svc] = result.catalog.services
    options = render_options(settings)
    [config] = routes.render(result.catalog, templates, options)
    alerts = {r["labels"]["obsctl_tier"]: r["labels"] | {"alertname": r["alert"]}
              for g in service_groups(svc, templates, options) for r in g["rules"]
              if r.get("alert") == "PaymentsHighErrorRate" and r["labels"][cv.LABEL_SEVERITY_CLASS] == "page"}
    assert set(alerts) == {"page-fast", "page-slow"}
    assert {a["tier"] for a in alerts.values()} == {"1"}  # the spec's label, as written
    with Alertmanager(tmp_path / "am", config.body.decode()) as am:
        am.post_alerts([{"labels": labels} for labels in alerts.values()])

        def settled() -> dict[str, dict[str, Any]] | None:
            found = {a["labels"]["obsctl_tier"]: a for a in am.alerts()}
            return found if len(found) == 2 and found["page-slow"]["status"]["inhibitedBy"] else None

        found = am.wait_for(settled, timeout=20)
    assert found["page-fast"]["status"]["state"] == "active"
    assert found["page-slow"]["status"]["state"] == "suppressed"
    assert [r["name"] for r in found["page-fast"]["receivers"]] == ["obsctl-team-payments-page"]
