"""The alerting sinks against loopback servers: the ruler API emulator, promtool/amtool validation, reloads."""

from __future__ import annotations

import io
import json
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import yaml

from obsctl.cli import main
from obsctl.config import Settings
from obsctl.errors import PermanentError, TemporaryError
from obsctl.model.artifact import Artifact, Kind, desired_state
from obsctl.model.entities import Catalog
from obsctl.reconcile.apply import OutcomeState, RetryPolicy, apply_plan
from obsctl.reconcile.plan import Action, make_plan
from obsctl.render import routes, rules
from obsctl.render.options import RenderOptions
from obsctl.sinks.alertmanager import AlertmanagerSink
from obsctl.sinks.base import Sink
from obsctl.sinks.rulefiles import RuleFilesSink
from obsctl.sinks.ruler import RulerSink
from obsctl.sources.directory import read_directory
from obsctl.spec.load import load_catalog
from tests.support.alerting import UNDELIVERED
from tests.support.binaries import require_binary
from tests.support.prom import WebhookReceiver
from tests.support.ruler_emulator import RulerEmulator
from tests.support.slo_promtool import REPO_ROOT, repo_templates

pytestmark = pytest.mark.integration
TEMPLATES = repo_templates()


def _catalog() -> Catalog:
    result = load_catalog(read_directory(REPO_ROOT / "examples" / "catalog", ["**/*.yaml", "**/*.yml"]), TEMPLATES)
    return result.catalog


def _desired(sink: Sink, catalog: Catalog) -> dict[str, Artifact]:
    options = RenderOptions(outputs=frozenset(Kind))  # ruler groups are opt-in
    arts = rules.render(catalog, TEMPLATES, options) + routes.render(catalog, TEMPLATES, options)
    return desired_state([a for a in arts if a.kind in sink.kinds])


def _no_sleep() -> RetryPolicy:
    slept: list[float] = []
    return RetryPolicy(attempts=3, sleep=slept.append)


# --------------------------------------------------------------------------- ruler


def test_ruler_sink_converges_idempotently_and_leaves_foreign_groups(tmp_path: Path) -> None:
    with RulerEmulator() as ruler:
        foreign = "name: hand-made\nrules:\n- record: x:y\n  expr: vector(1)\n"
        httpx.post(f"{ruler.url}/prometheus/config/v1/rules/team-payments", content=foreign,
                   headers={"X-Scope-OrgID": "t1", "Content-Type": "application/yaml"}).raise_for_status()
        sink = RulerSink(ruler.url, "t1")
        catalog = _catalog()
        desired = _desired(sink, catalog)
        assert len(desired) == 5
        plan = make_plan(desired, sink.list_owned())
        assert plan.summary()["create"] == 5
        assert not apply_plan(sink, plan).failed
        assert set(ruler.groups("t1", "team-payments")) == {
            "hand-made", "obsctl:default:checkout", "obsctl:default:ledger", "obsctl:default:notifications"}
        assert set(ruler.groups("t1", "team-search")) == {"obsctl:default:inventory", "obsctl:default:search-api"}
        assert all(r["tenant"] == "t1" for r in ruler.requests)
        assert all(r["content_type"] == "application/yaml" for r in ruler.requests if r["method"] == "POST")
        # the ruler re-serialises what it stores: the second plan must still see no change
        again = make_plan(desired, sink.list_owned())
        assert again.summary() == {"create": 0, "update": 0, "delete": 0, "unchanged": 5}
        # a service leaves the catalog: its group goes, the hand-made group stays
        smaller = Catalog(tuple(s for s in catalog.services if s.name != "notifications"), catalog.teams)
        shrink = make_plan(_desired(sink, smaller), sink.list_owned())
        assert [c.id for c in shrink.of(Action.DELETE)] == ["ruler-group/team-payments/default/notifications"]
        assert not apply_plan(sink, shrink).failed
        assert set(ruler.groups("t1", "team-payments")) == {"hand-made", "obsctl:default:checkout",
                                                            "obsctl:default:ledger"}
        # another tenant sees nothing
        assert RulerSink(ruler.url, "t2").list_owned() == {}


def test_ruler_sink_classifies_faults() -> None:
    with RulerEmulator() as ruler:
        sink = RulerSink(ruler.url, "t1")
        desired = _desired(sink, _catalog())
        one = {k: desired[k] for k in list(desired)[:1]}
        # 503 with Retry-After: temporary, retried, then applied
        ruler.fail_next(503, method="POST", retry_after=0.01)
        slept: list[float] = []
        result = apply_plan(sink, make_plan(one, sink.list_owned()), RetryPolicy(attempts=3, sleep=slept.append))
        assert [o.state for o in result.outcomes] == [OutcomeState.APPLIED]
        assert result.outcomes[0].attempts == 2 and slept and slept[0] >= 0.01
        # 429 is temporary too; it stays failed when every attempt gets it
        ruler.fail_next(429, count=3, method="DELETE")
        result = apply_plan(sink, make_plan({}, sink.list_owned(), allow_mass_delete=True), _no_sleep())
        assert [o.state for o in result.outcomes] == [OutcomeState.FAILED_TEMPORARY]
        assert result.outcomes[0].attempts == 3
        # a 4xx is permanent: one attempt only
        broken = b"name: obsctl:default:checkout\nrules:\n- record: a\n  expr: 'sum(('\n"
        bad = replace(one[next(iter(one))], body=broken)
        result = apply_plan(sink, make_plan({bad.id: bad}, {}), _no_sleep())
        assert result.outcomes[0].state is OutcomeState.FAILED_PERMANENT and result.outcomes[0].attempts == 1
        assert "could not parse expression" in result.outcomes[0].error
        # an unreadable listing is temporary: plan nothing rather than guess
        ruler.fail_next(500, method="GET")
        with pytest.raises(TemporaryError, match="HTTP 500"):
            sink.list_owned()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TemporaryError):
        RulerSink(f"http://127.0.0.1:{port}", "t1").list_owned()


def test_ruler_without_tenant_header_is_refused() -> None:
    with RulerEmulator() as ruler:
        resp = httpx.get(f"{ruler.url}/prometheus/config/v1/rules")
        assert resp.status_code == 401
        with pytest.raises(PermanentError, match="HTTP 401"):
            RulerSink(ruler.url, "").list_owned()


# --------------------------------------------------------------------------- rule files + reload


def test_rule_files_sink_validates_with_promtool_and_reloads_once(tmp_path: Path) -> None:
    require_binary("promtool")
    with WebhookReceiver() as prometheus:
        sink = RuleFilesSink(tmp_path, prometheus.url)
        desired = _desired(sink, _catalog())
        result = apply_plan(sink, make_plan(desired, sink.list_owned()))
        assert not result.failed
        assert sorted(p.name for p in tmp_path.glob("*.rules.yml")) == [
            "default__checkout.rules.yml", "default__inventory.rules.yml", "default__ledger.rules.yml",
            "default__notifications.rules.yml", "default__search-api.rules.yml"]
        assert [r["path"] for r in prometheus.snapshot()] == ["/-/reload"]  # once per batch
        # nothing changed: nothing written, no reload
        again = make_plan(desired, sink.list_owned())
        assert not again.writes
        assert {o.state for o in apply_plan(sink, again).outcomes} == {OutcomeState.UNCHANGED}
        assert len(prometheus.snapshot()) == 1
        # a broken rule file is refused with promtool's message; the old file stays
        target = tmp_path / "default__checkout.rules.yml"
        before = target.read_bytes()
        art = desired["prometheus-rules/default/checkout"]
        broken = replace(art, body=art.body.replace(b"expr: sum(rate(", b"expr: sum(rate((", 1))
        with pytest.raises(PermanentError, match="promtool check rules failed") as err:
            sink.put(broken)
        assert "could not parse expression" in str(err.value) and "default__checkout.rules.yml" in str(err.value)
        assert target.read_bytes() == before
        # Prometheus answering 5xx, or not at all, makes the reload temporary
        prometheus.status_code = 500
        sink.put(art)
        with pytest.raises(TemporaryError, match="HTTP 500"):
            sink.finish()
    sink = RuleFilesSink(tmp_path, prometheus.url)
    sink.put(art)
    with pytest.raises(TemporaryError, match="reload"):
        sink.finish()


def test_alertmanager_sink_validates_with_amtool_and_reloads(tmp_path: Path) -> None:
    require_binary("amtool")
    with WebhookReceiver() as alertmanager:
        sink = AlertmanagerSink(tmp_path, alertmanager.url)
        desired = _desired(sink, _catalog())
        assert list(desired) == ["alertmanager-config/alertmanager"]
        assert not apply_plan(sink, make_plan(desired, sink.list_owned())).failed
        written = yaml.safe_load((tmp_path / "alertmanager.yml").read_text())
        assert written["route"]["receiver"] == "obsctl-default"
        assert [r["path"] for r in alertmanager.snapshot()] == ["/-/reload"]
        art = desired["alertmanager-config/alertmanager"]
        with pytest.raises(PermanentError, match="amtool check-config failed"):
            sink.put(replace(art, body=art.body.replace(b"receiver: obsctl-default", b"receiver: nowhere", 1)))
        assert yaml.safe_load((tmp_path / "alertmanager.yml").read_text()) == written


# --------------------------------------------------------------------------- obsctl apply


def test_cli_apply_converges_rule_files_ruler_and_alertmanager(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    require_binary("promtool")
    require_binary("amtool")
    catalog = str(REPO_ROOT / "examples" / "catalog")
    out, err = io.StringIO(), io.StringIO()
    assert main(["apply", catalog], out, err) == 1
    assert "nothing to apply to" in err.getvalue()
    with RulerEmulator() as ruler:
        monkeypatch.setenv("OBSCTL_PROMETHEUS__RULES_DIR", str(tmp_path / "rules"))
        monkeypatch.setenv("OBSCTL_ALERTING__CONFIG_DIR", str(tmp_path / "am"))
        monkeypatch.setenv("OBSCTL_RULER__URL", ruler.url)
        monkeypatch.setenv("OBSCTL_RULER__TENANT", "ops")
        monkeypatch.setenv("OBSCTL_ALERTING__DEFAULT", json.dumps(UNDELIVERED["default"]))  # every team pages someone
        out = io.StringIO()
        assert main(["apply", catalog], out, io.StringIO()) == 0
        assert out.getvalue().splitlines() == [
            "prometheus-rules: 5 created, 0 updated, 0 deleted, 0 unchanged, 0 failed",
            "ruler: 5 created, 0 updated, 0 deleted, 0 unchanged, 0 failed",
            "alertmanager: 1 created, 0 updated, 0 deleted, 0 unchanged, 0 failed"]
        assert len(list((tmp_path / "rules").glob("*.rules.yml"))) == 5
        assert (tmp_path / "am" / "alertmanager.yml").exists()
        assert set(ruler.groups("ops", "team-search")) == {"obsctl:default:inventory", "obsctl:default:search-api"}
        out = io.StringIO()
        assert main(["apply", catalog], out, io.StringIO()) == 0
        assert all("0 created, 0 updated, 0 deleted" in line for line in out.getvalue().splitlines())


# --------------------------------------------------------------------------- one-off routing hold


def test_a_one_off_apply_keeps_an_invalid_teams_route_and_routes_the_others(tmp_path: Path) -> None:
    """`obsctl apply` over a catalog where team-a's Group went invalid: the config amtool checks and Alertmanager
    loads still sends team-a's pages to its last good PagerDuty service, while a new team-c gets its own route in
    the same run (before, the whole config was held and team-c's pages reached only the root receiver)."""
    require_binary("amtool")
    from obsctl.app import converge_path, load_templates
    from tests.support.prom import amtool_routes_test

    settings = _pagerduty_settings(tmp_path, "PAAA", "PCCC")
    keys = tmp_path / "keys"
    templates = load_templates(settings)
    sinks: list[Sink] = [AlertmanagerSink(tmp_path / "am")]

    def group(name: str, service_id: str) -> str:
        return yaml.safe_dump({"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "spec": {"type": "team"},
                               "metadata": {"name": name, "annotations": {"pagerduty.com/service-id": service_id}}})

    def component(name: str, owner: str) -> str:
        return yaml.safe_dump({"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
                               "metadata": {"name": name, "annotations": {"obsctl.dev/availability": "99.9"}},
                               "spec": {"type": "service", "lifecycle": "production", "owner": owner}})

    def apply(docs: dict[str, str]) -> None:
        catalog = tmp_path / "catalog"
        shutil.rmtree(catalog, ignore_errors=True)
        catalog.mkdir()
        for name, text in docs.items():
            (catalog / name).write_text(text)
        _result, run = converge_path(catalog, settings, templates, sinks)
        assert not run.report.failed, run.report.failed

    def page_of(team: str, service: str) -> str:
        labels = {"team": team, "obsctl_severity": "page", "catalog_namespace": "default", "service": service,
                  "slo": "availability", "alertname": "SLOErrorBudgetBurn"}
        return amtool_routes_test(tmp_path / "am" / "alertmanager.yml", labels).stdout.strip()

    apply({"a.yaml": group("team-a", "PAAA"), "pay.yaml": component("pay", "team-a")})
    assert page_of("team-a", "pay") == "obsctl-team-a-page"
    apply({"a.yaml": group("team-a", "not an id!"), "pay.yaml": component("pay", "team-a"),
           "c.yaml": group("team-c", "PCCC"), "new.yaml": component("new", "team-c")})
    assert page_of("team-a", "pay") == "obsctl-team-a-page"
    assert page_of("team-c", "new") == "obsctl-team-c-page"
    written = yaml.safe_load((tmp_path / "am" / "alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in written["receivers"]}
    assert receivers["obsctl-team-a-page"]["pagerduty_configs"] == [{"routing_key_file": f"{keys}/PAAA"}]
    assert receivers["obsctl-team-c-page"]["pagerduty_configs"] == [{"routing_key_file": f"{keys}/PCCC"}]


def test_serve_restarted_while_a_team_is_invalid_keeps_its_route_in_the_config_amtool_checks(tmp_path: Path) -> None:
    """A new serve loop (no last good Group in memory) over a catalog where team-a's Group went invalid writes a
    config that amtool checks and that still sends team-a's pages to its PagerDuty service, taking team-b's new
    service in the same round."""
    require_binary("amtool")
    from obsctl.app import catalog_loader, catalog_renderer, load_templates
    from obsctl.reconcile.loop import LoopConfig, Reconciler
    from tests.support.prom import amtool_routes_test
    from tests.unit.test_loop import NO_RETRY, MemSource

    settings = _pagerduty_settings(tmp_path, "PAAA", "PBBB", "PBNEW")
    keys = tmp_path / "keys"
    templates = load_templates(settings)

    def catalog(team_a_id: str, team_b_id: str) -> dict[str, bytes]:
        docs = [{"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "spec": {"type": "team"},
                 "metadata": {"name": team, "annotations": {"pagerduty.com/service-id": sid}}}
                for team, sid in (("team-a", team_a_id), ("team-b", team_b_id))]
        docs += [{"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
                  "metadata": {"name": name, "annotations": {"obsctl.dev/availability": "99.9"}},
                  "spec": {"type": "service", "lifecycle": "production", "owner": owner}}
                 for name, owner in (("pay", "team-a"), ("search", "team-b"))]
        return {"all.yaml": yaml.safe_dump_all(docs).encode()}

    def serve_once(docs: dict[str, bytes]) -> None:
        renderer = catalog_renderer(settings, templates)
        loop = Reconciler(MemSource(docs), catalog_loader(templates, settings), renderer,
                          [AlertmanagerSink(tmp_path / "am")], config=LoopConfig(retry=NO_RETRY),
                          hold_routes=renderer.hold_routes)
        report = loop.run_once()
        assert [(r.listed, r.error, r.failed) for r in report.sinks] == [(True, "", 0)], report.sinks

    def page_receiver(team: str, service: str) -> dict[str, object]:
        labels = {"team": team, "obsctl_severity": "page", "catalog_namespace": "default", "service": service,
                  "slo": "availability", "alertname": "SLOErrorBudgetBurn"}
        config = tmp_path / "am" / "alertmanager.yml"
        name = amtool_routes_test(config, labels).stdout.strip()
        [found] = [r for r in yaml.safe_load(config.read_text())["receivers"] if r["name"] == name]
        return found

    serve_once(catalog("PAAA", "PBBB"))
    assert page_receiver("team-a", "pay")["pagerduty_configs"] == [{"routing_key_file": f"{keys}/PAAA"}]
    serve_once(catalog("not an id!", "PBNEW"))  # a restart: a new loop, nothing in memory
    assert page_receiver("team-a", "pay")["pagerduty_configs"] == [{"routing_key_file": f"{keys}/PAAA"}]
    assert page_receiver("team-b", "search")["pagerduty_configs"] == [{"routing_key_file": f"{keys}/PBNEW"}]


def _pagerduty_settings(tmp_path: Path, *service_ids: str) -> Settings:
    """Settings writing alertmanager.yml under tmp_path/am: the catalog's PagerDuty ids to key files (one per id
    given, under tmp_path/keys), tickets to a webhook."""
    from obsctl.config import load_settings

    keys = tmp_path / "keys"
    keys.mkdir()
    for service_id in service_ids:
        (keys / service_id).write_text("k\n")
    return load_settings(None, alerting={
        "config_dir": str(tmp_path / "am"),
        "catalog": {"pagerduty": {"severities": ["page"], "settings": {"routing_key_file": f"{keys}/{{service_id}}"}}},
        "default": {"ticket": [{"name": "t", "type": "webhook", "settings": {"url": "http://127.0.0.1:9/t"}}]}})
