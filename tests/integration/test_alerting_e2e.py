"""End to end: generated rules in a real Prometheus page a real Alertmanager with the generated config.

A synthetic exporter serves two services' HTTP counters. obsctl's sinks write the rule files
(promtool-checked, Prometheus reloaded) and the Alertmanager config (amtool-checked, reloaded).
When both services start failing, checkout's page reaches its team's page webhook with the right
labels and links, ledger (tickets only) reaches the other team's ticket webhook, and inhibition
keeps checkout's tickets and slower page quiet. `amtool config routes test` checks every team route.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsctl.model import conventions as cv
from obsctl.model.artifact import desired_state
from obsctl.model.durations import parse_duration
from obsctl.model.entities import AlertPolicy, Catalog, EntityRef, Links, Service
from obsctl.reconcile.apply import apply_plan
from obsctl.reconcile.plan import make_plan
from obsctl.render import routes, rules
from obsctl.render.options import ReceiverSpec, RenderOptions, TeamRouting
from obsctl.sinks.alertmanager import AlertmanagerSink
from obsctl.sinks.base import Sink
from obsctl.sinks.rulefiles import RuleFilesSink
from tests.support.binaries import require_binary
from tests.support.prom import (
    Alertmanager,
    Prometheus,
    WebhookReceiver,
    amtool_check_config,
    amtool_routes_test,
    wait_alertmanager_discovered,
)
from tests.support.slo_promtool import availability_service, repo_templates

pytestmark = pytest.mark.integration
TEMPLATES = repo_templates()
TICKETS_S = parse_duration(rules.TICKETS_INTERVAL)
GRAFANA = "https://grafana.test"


class Exporter:
    """Counters of services answering RATE requests/s; `fail(name)` turns a service's answers into 5xx."""

    RATE = 50.0

    def __init__(self, services: list[str]) -> None:
        self.t0 = time.monotonic()
        self.fail_since: dict[str, float] = {}
        self.services = services
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.metrics().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def fail(self, service: str) -> None:
        self.fail_since[service] = time.monotonic()

    def metrics(self) -> str:
        now = time.monotonic()
        lines = []
        for svc in self.services:
            since = self.fail_since.get(svc)
            good_until = since if since is not None else now
            ok = self.RATE * (good_until - self.t0)
            bad = self.RATE * (now - since) if since is not None else 0.0
            for code, value in (("200", ok), ("500", bad)):
                lines.append(f'http_server_request_duration_seconds_count{{service_name="{svc}",'
                             f'deployment_environment_name="production",http_response_status_code="{code}"}} '
                             f'{value!r}')
        return "\n".join(lines) + "\n"

    def __enter__(self) -> Exporter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


def _catalog() -> Catalog:
    checkout = replace(availability_service(0.999, 30, name="checkout"),
                       links=Links(runbook="https://runbooks.test/checkout"))
    checkout = replace(checkout, slos=(replace(checkout.slos[0], alerting=AlertPolicy(no_data=False)),))
    ledger = availability_service(0.99, 30, name="ledger")
    ledger = replace(ledger, team=EntityRef("group", "default", "team-billing"),
                     slos=(replace(ledger.slos[0], alerting=AlertPolicy(page=False, no_data=False)),))
    return Catalog((checkout, ledger))


def _options(hook: str) -> RenderOptions:
    def routing(team: str) -> TeamRouting:
        return TeamRouting(page=(ReceiverSpec("page", "webhook", (("url", f"{hook}/{team}/page"),)),),
                           ticket=(ReceiverSpec("ticket", "webhook", (("url", f"{hook}/{team}/ticket"),)),))
    default = TeamRouting(ticket=(ReceiverSpec("d", "webhook", (("url", f"{hook}/default"),)),))
    return RenderOptions(grafana_url=GRAFANA, teams=(("team-billing", routing("team-billing")),
                                                     ("team-payments", routing("team-payments"))),
                         default_routing=default, group_wait="1s", group_interval="1s", repeat_interval="1h")


def _apply(sink: Sink, arts: list[Any]) -> None:
    desired = desired_state([a for a in arts if a.kind in sink.kinds])
    result = apply_plan(sink, make_plan(desired, sink.list_owned()))
    assert not result.failed, result.failed


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    with WebhookReceiver() as hook, Exporter(["checkout", "ledger"]) as exporter:
        rules_dir = tmp_path / "rules"
        with Alertmanager(tmp_path / "am", "route: {receiver: none}\nreceivers: [{name: none}]\n") as am, \
                Prometheus(tmp_path / "prom", rule_files=[rules_dir / "*.rules.yml"], alertmanager_url=am.url,
                           extra_scrape_configs=[{"job_name": "svc", "static_configs": [
                               {"targets": [f"127.0.0.1:{exporter.port}"]}]}]) as prom:
            yield {"hook": hook, "exporter": exporter, "am": am, "prom": prom, "rules_dir": rules_dir}


def test_page_and_ticket_reach_their_receivers_and_inhibition_holds(stack: dict[str, Any]) -> None:
    hook: WebhookReceiver = stack["hook"]
    am: Alertmanager = stack["am"]
    prom: Prometheus = stack["prom"]
    exporter: Exporter = stack["exporter"]
    catalog, options = _catalog(), _options(hook.url)
    t_start = time.monotonic()

    am_sink = AlertmanagerSink(am.tmp_dir, am.url)
    _apply(am_sink, routes.render(catalog, TEMPLATES, options))
    am.wait_for(lambda: "obsctl-team-payments-page" in am.status()["config"]["original"], timeout=10)
    wait_alertmanager_discovered(prom, alertmanager_url=am.url)

    rule_sink = RuleFilesSink(stack["rules_dir"], prom.url)
    arts = rules.render(catalog, TEMPLATES, options)
    _apply(rule_sink, arts)
    # the meta group runs once a minute (period scans); paging needs only the sli and alerts groups
    groups = [g["name"] for svc in catalog.services for g in rules.service_groups(svc, TEMPLATES, options)
              if "interval" not in g]
    prom.wait_rules_loaded(groups)
    prom.wait_for(lambda: prom.query_value('obsctl:slo_requests:rate5m{service="checkout"}'), timeout=15)
    time.sleep(2)  # some healthy history
    exporter.fail("checkout")
    exporter.fail("ledger")
    t_fail = time.monotonic()

    page = hook.wait_for(lambda r: r["path"] == "/team-payments/page", timeout=45)
    t_page = time.monotonic()
    # Ticket tiers read the day windows, which sum closed 5m tiles: a failure counts there from the next
    # tile, so the ticket may take up to one tile (300 s) longer; they run in the tickets group, every
    # TICKETS_INTERVAL: up to that much more.
    ticket = hook.wait_for(lambda r: r["path"] == "/team-billing/ticket", timeout=300 + TICKETS_S + 30)
    print(f"\nE2E stack up + rules applied in {t_fail - t_start:.1f}s; failure -> page webhook {t_page - t_fail:.1f}s, "
          f"-> ticket webhook {time.monotonic() - t_fail:.1f}s")

    alerts = page["payload"]["alerts"]
    assert {a["labels"]["tier"] for a in alerts} == {"page-fast"}  # page-slow muted by page-fast
    a = alerts[0]
    assert a["status"] == "firing"
    assert {k: a["labels"][k] for k in ("alertname", "service", "catalog_namespace", "slo", "team", "severity",
                                        "long_window", "short_window")} == {
        "alertname": cv.ALERT_BURN, "service": "checkout", "catalog_namespace": "default", "slo": "availability",
        "team": "team-payments", "severity": "page", "long_window": "1h", "short_window": "5m"}
    svc: Service = catalog.services[0]
    assert a["annotations"]["runbook_url"] == "https://runbooks.test/checkout"
    assert a["annotations"]["dashboard_url"] == f"{GRAFANA}/d/{cv.service_dashboard_uid(svc)}"
    assert "checkout" in a["annotations"]["summary"] and "x faster" in a["annotations"]["description"]
    assert "<error" not in a["annotations"]["description"]
    assert {x["labels"]["service"] for x in ticket["payload"]["alerts"]} == {"ledger"}
    assert {x["labels"]["severity"] for x in ticket["payload"]["alerts"]} == {"ticket"}

    # inhibition: checkout's tickets fire in Prometheus but are suppressed in Alertmanager. Both of its
    # ticket tiers are awaited: they run every TICKETS_INTERVAL, so they may trail ledger's ticket (another
    # service's group, another phase) by up to a group interval.
    def suppressed() -> list[dict[str, Any]] | None:
        found = [x for x in am.alerts() if x["labels"].get("service") == "checkout"
                 and x["labels"].get("severity") == "ticket"]
        both = {x["labels"]["tier"] for x in found} == {"ticket-fast", "ticket-slow"}
        return found if both and all(x["status"]["state"] == "suppressed" for x in found) else None
    muted = am.wait_for(suppressed, timeout=TICKETS_S + 60)
    assert {x["labels"]["tier"] for x in muted} == {"ticket-fast", "ticket-slow"}
    slow_page = [x for x in am.alerts() if x["labels"].get("tier") == "page-slow"
                 and x["labels"].get("service") == "checkout"]
    assert slow_page and all(x["status"]["state"] == "suppressed" for x in slow_page)
    time.sleep(2)
    paths = {r["path"] for r in hook.snapshot()}
    assert "/team-payments/ticket" not in paths and "/default" not in paths and "/team-billing/page" not in paths


def test_amtool_routes_every_team(tmp_path: Path) -> None:
    config = routes.render(_catalog(), TEMPLATES, _options("http://127.0.0.1:9/hook"))[0].body
    path = tmp_path / "alertmanager.yml"
    path.write_bytes(config)
    doc = yaml.safe_load(config)
    assert doc["route"]["receiver"] == cv.DEFAULT_RECEIVER
    # team-billing's ledger never pages (page: false): it gets no page route, only what it can emit
    for team, severity in (("team-payments", "page"), ("team-payments", "ticket"), ("team-billing", "ticket")):
        # A spec's own severity (Sloth's critical/warning) is kept; obsctl routes on its class label.
        labels = {"team": team, cv.LABEL_SEVERITY_CLASS: severity, "service": "x", "slo": "y",
                  "severity": {"page": "critical", "ticket": "warning"}[severity], "alertname": cv.ALERT_BURN}
        expect = cv.receiver_name(EntityRef("group", "default", team), severity)
        result = amtool_routes_test(path, labels, [expect])
        assert result.returncode == 0, result.stdout + result.stderr
        wrong = amtool_routes_test(path, labels, [cv.DEFAULT_RECEIVER])
        assert wrong.returncode != 0  # the check can fail
    assert "obsctl-team-billing-page" not in {r["name"] for r in doc["receivers"]}
    result = amtool_routes_test(path, {"team": "nobody", cv.LABEL_SEVERITY_CLASS: "page"}, [cv.DEFAULT_RECEIVER])
    assert result.returncode == 0, result.stdout + result.stderr


def test_hostile_team_name_yields_a_valid_config_that_does_not_widen_routing(tmp_path: Path) -> None:
    svc = replace(availability_service(0.999, 30), team=EntityRef("group", "default", 'x", severity=~".*'))
    path = tmp_path / "alertmanager.yml"
    path.write_bytes(routes.render(Catalog((svc,)), TEMPLATES, RenderOptions())[0].body)
    check = amtool_check_config(path)
    assert check.returncode == 0, check.stdout + check.stderr
    # a page of another team must not match the hostile team's route
    result = amtool_routes_test(path, {"team": "x", cv.LABEL_SEVERITY_CLASS: "page"}, [cv.DEFAULT_RECEIVER])
    assert result.returncode == 0, result.stdout + result.stderr
