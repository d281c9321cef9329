"""The Alertmanager routes renderer: routing tree, receivers, inhibition, secrets by file only."""

from __future__ import annotations

import pytest
import yaml

from obsctl.config import load_settings
from obsctl.errors import ConfigError
from obsctl.model.artifact import Kind
from obsctl.model.entities import Catalog, EntityRef
from obsctl.render import routes
from obsctl.render.options import CatalogIntegration, ReceiverSpec, RenderOptions, TeamRouting
from tests.support.slo_promtool import availability_service, repo_templates

TEMPLATES = repo_templates()


def _catalog() -> Catalog:
    a = availability_service(0.999, 30, name="checkout")
    b = availability_service(0.99, 30, name="search")
    b = b.__class__(**{**b.__dict__, "team": EntityRef("group", "default", "team-search")})
    return Catalog((a, b))


def _options() -> RenderOptions:
    pay = TeamRouting(
        page=(ReceiverSpec("pd", "pagerduty", (("routing_key_file", "/etc/am/pd-key"),)),
              ReceiverSpec("chat", "slack", (("api_url_file", "/etc/am/slack"), ("channel", "#pay-oncall")))),
        ticket=(ReceiverSpec("hook", "webhook", (("url", "http://tickets.internal/hook"),
                                                  ("send_resolved", "false"))),),
    )
    return RenderOptions(teams=(("team-payments", pay),),
                         default_routing=TeamRouting(ticket=(ReceiverSpec("og", "opsgenie",
                                                                          (("api_key_file", "/etc/og"),)),)))


def test_one_config_with_team_routes_and_receivers() -> None:
    [art] = routes.render(_catalog(), TEMPLATES, _options())
    assert art.kind is Kind.ALERTMANAGER_CONFIG and art.path == "alertmanager/alertmanager.yml"
    doc = yaml.safe_load(art.body)
    route = doc["route"]
    assert route["group_by"] == ["alertname", "catalog_namespace", "service", "slo"]
    teams = {r["matchers"][0]: r for r in route["routes"]}
    assert set(teams) == {'team="team-payments"', 'team="team-search"'}
    pay = teams['team="team-payments"']["routes"]
    assert pay == [{"matchers": ['obsctl_severity="page"'], "receiver": "obsctl-team-payments-page"},
                   {"matchers": ['obsctl_severity="ticket"'], "receiver": "obsctl-team-payments-ticket"}]
    recv = {r["name"]: r for r in doc["receivers"]}
    assert recv["obsctl-team-payments-page"]["pagerduty_configs"] == [{"routing_key_file": "/etc/am/pd-key"}]
    assert recv["obsctl-team-payments-page"]["slack_configs"][0]["channel"] == "#pay-oncall"
    assert recv["obsctl-team-payments-ticket"]["webhook_configs"] == [
        {"send_resolved": False, "url": "http://tickets.internal/hook"}]
    # a team without settings inherits the default per severity: a ticket receiver, and no page route at all
    assert recv["obsctl-team-search-ticket"]["opsgenie_configs"] == [{"api_key_file": "/etc/og"}]
    assert "obsctl-team-search-page" not in recv
    assert teams['team="team-search"']["routes"] == [
        {"matchers": ['obsctl_severity="ticket"'], "receiver": "obsctl-team-search-ticket"}]
    assert [(p.entity, p.field) for p in routes.routing_problems(_catalog(), TEMPLATES, _options())] == [
        ("component:default/search", "routing.team-search.page")]
    assert art.body == routes.render(_catalog(), TEMPLATES, _options())[0].body


def test_inhibition_page_mutes_ticket_and_fast_mutes_slow() -> None:
    doc = yaml.safe_load(routes.render(_catalog(), TEMPLATES, _options())[0].body)
    rules = doc["inhibit_rules"]
    assert {"source_matchers": ['obsctl_severity="page"', 'slo=~".+"', 'obsctl_depends_on=""'],
            "target_matchers": ['obsctl_severity="ticket"'],
            "equal": ["catalog_namespace", "service", "slo"]} in rules
    pairs = {(r["source_matchers"][0], r["target_matchers"][0]) for r in rules[1:]}
    # obsctl's tier name is under obsctl_tier where a spec set `tier` itself: both are matched
    assert pairs == {('tier="page-fast"', 'tier="page-slow"'), ('tier="ticket-fast"', 'tier="ticket-slow"'),
                     ('obsctl_tier="page-fast"', 'obsctl_tier="page-slow"'),
                     ('obsctl_tier="ticket-fast"', 'obsctl_tier="ticket-slow"')}


@pytest.mark.parametrize(("kind", "key"), [("pagerduty", "routing_key"), ("pagerduty", "service_key"),
                                           ("opsgenie", "api_key"), ("slack", "api_url")])
def test_inlined_secrets_are_refused(kind: str, key: str) -> None:
    opts = RenderOptions(default_routing=TeamRouting(ticket=(ReceiverSpec("r", kind, ((key, "s3cret"),)),)))
    with pytest.raises(ConfigError, match=f"{key} would inline a secret.*{key}_file"):
        routes.render(_catalog(), TEMPLATES, opts)


def test_webhook_url_with_credentials_and_unknown_types_are_refused() -> None:
    bad = RenderOptions(default_routing=TeamRouting(ticket=(ReceiverSpec("r", "webhook",
                                                                         (("url", "https://u:p@h/x"),)),)))
    with pytest.raises(ConfigError, match="credentials"):
        routes.render(_catalog(), TEMPLATES, bad)
    with pytest.raises(ConfigError, match="unknown type"):
        routes.render(_catalog(), TEMPLATES, RenderOptions(default_routing=TeamRouting(
            ticket=(ReceiverSpec("r", "email", ()),))))
    with pytest.raises(ConfigError, match="needs routing_key_file or service_key_file"):
        routes.render(_catalog(), TEMPLATES, RenderOptions(default_routing=TeamRouting(
            ticket=(ReceiverSpec("r", "pagerduty", (("severity", "critical"),)),))))


def test_hostile_team_name_stays_inside_its_matcher() -> None:
    svc = availability_service(0.999, 30)
    svc = svc.__class__(**{**svc.__dict__, "team": EntityRef("group", "default", 'x", severity="page')})
    doc = yaml.safe_load(routes.render(Catalog((svc,)), TEMPLATES, RenderOptions())[0].body)
    assert doc["route"]["routes"][0]["matchers"] == ['team="x\\", severity=\\"page"']


def test_settings_refuse_inlined_secrets_at_load() -> None:
    team = {"page": [{"name": "pd", "type": "pagerduty", "settings": {"routing_key": "abc"}}]}
    with pytest.raises(ConfigError, match=r"alerting\.teams\.pay\.page\.0: .*routing_key_file"):
        load_settings(alerting={"teams": {"pay": team}})
    ok = {"page": [{"name": "pd", "type": "pagerduty", "settings": {"routing_key_file": "/run/secrets/pd"}}]}
    assert load_settings(alerting={"teams": {"pay": ok}}).alerting.teams["pay"].page[0].type == "pagerduty"


# -- routing from the catalog, dependencies -----------------------------------------------------------------


def _load(*docs: dict[str, object]) -> Catalog:
    from obsctl.model.source import SourceFile
    from obsctl.spec.load import load_catalog

    result = load_catalog([SourceFile("c.yaml", yaml.safe_dump_all(list(docs)).encode())], TEMPLATES)
    assert not result.errors, result.errors
    return result.catalog


def _group(name: str, **ann: str) -> dict[str, object]:
    return {"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": name, "annotations": ann},
            "spec": {"type": "team"}}


def _component(name: str, owner: str, depends: list[str] | None = None, **ann: str) -> dict[str, object]:
    spec: dict[str, object] = {"type": "service", "lifecycle": "production", "owner": owner}
    if depends is not None:
        spec["dependsOn"] = depends
    return {"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": {"name": name, "annotations": ann}, "spec": spec}


PD = CatalogIntegration("pagerduty", ("page",), (("routing_key_file", "/etc/am/pd/{service_id}"),))


def test_hostile_routing_annotations_are_errors_that_hold_the_entity_back_and_never_reach_paths() -> None:
    from obsctl.model.source import SourceFile
    from obsctl.spec.load import load_catalog

    docs = [_group("team-a", **{"pagerduty.com/service-id": "../../etc/passwd",
                                "slack.com/channel": "#x\nchannel: y", "opsgenie.com/team": "a\"} b"}),
            _component("svc", "team-a", **{"pagerduty.com/service-id": "P1/../../k"}),
            _component("other", "team-a")]
    result = load_catalog([SourceFile("c.yaml", yaml.safe_dump_all(docs).encode())], TEMPLATES)
    errors = sorted((p.file, p.entity, p.field) for p in result.errors)
    assert errors == [("c.yaml", "component:default/svc", "metadata.annotations.pagerduty.com/service-id"),
                      ("c.yaml", "group:default/team-a", "metadata.annotations.opsgenie.com/team"),
                      ("c.yaml", "group:default/team-a", "metadata.annotations.pagerduty.com/service-id"),
                      ("c.yaml", "group:default/team-a", "metadata.annotations.slack.com/channel")]
    assert all("held back" in p.message for p in result.errors)
    # the Group and the Component are held back whole (serve keeps their last good routing); the rest loads
    assert result.skipped == ["component:default/svc", "group:default/team-a"]
    assert result.catalog.teams == () and [str(s.ref) for s in result.catalog.services] == ["component:default/other"]
    assert "etc/passwd" not in repr(result.catalog) and "../../k" not in repr(result.catalog)
    # nothing routes this team now: the routing check names it
    problems = routes.routing_problems(result.catalog, TEMPLATES, RenderOptions(catalog_integrations=(PD,)))
    assert {p.field for p in problems} == {"routing.team-a.page", "routing.team-a.ticket"}


def test_settings_override_the_catalog_per_severity_and_per_service() -> None:
    catalog = _load(_group("team-a", **{"pagerduty.com/service-id": "PTEAM"}),
                    _component("svc", "team-a", **{"pagerduty.com/service-id": "PSVC"}))
    hook = (ReceiverSpec("h", "webhook", (("url", "http://127.0.0.1:9/h"),)),)
    by_catalog = RenderOptions(catalog_integrations=(PD,), default_routing=TeamRouting(ticket=hook))
    doc = routes.config(catalog, TEMPLATES, by_catalog)
    recv = {r["name"]: r for r in doc["receivers"]}
    assert recv["obsctl-team-a-page-default-svc"]["pagerduty_configs"] == [{"routing_key_file": "/etc/am/pd/PSVC"}]
    assert recv["obsctl-team-a-page"]["pagerduty_configs"] == [{"routing_key_file": "/etc/am/pd/PTEAM"}]
    assert recv["obsctl-team-a-ticket"]["webhook_configs"][0]["url"] == "http://127.0.0.1:9/h"  # the default's
    overridden = RenderOptions(catalog_integrations=(PD,), default_routing=TeamRouting(ticket=hook),
                               teams=(("team-a", TeamRouting(page=hook)),))
    recv = {r["name"]: r for r in routes.config(catalog, TEMPLATES, overridden)["receivers"]}
    assert "obsctl-team-a-page-default-svc" not in recv and "pagerduty_configs" not in recv["obsctl-team-a-page"]


def test_one_inhibit_rule_per_dependency_and_none_on_a_cycle() -> None:
    from obsctl.render.context import summary_of

    catalog = _load(_group("team-a"),
                    _component("db", "team-a"),
                    *[_component(f"app{i}", "team-a", ["component:db", "resource:default/missing"])
                      for i in range(20)],
                    _component("ping", "team-a", ["component:pong"]), _component("pong", "team-a", ["ping"]),
                    _component("self", "team-a", ["component:self"]))
    summaries = [summary_of(s, TEMPLATES) for s in catalog.services]
    rules = routes.dependency_inhibitions(summaries)
    assert len(rules) == 1  # 20 dependents, one dependency; the cycle and the unknown resource get none
    assert rules[0]["source_matchers"] == ['obsctl_severity="page"', 'catalog_namespace="default"', 'service="db"']
    assert rules[0]["target_matchers"] == ['obsctl_severity="page"', 'obsctl_depends_on=~".*\\\\|default/db\\\\|.*"']
    assert rules[0]["equal"] == ["environment"]
    selfish = next(s for s in catalog.services if s.name == "self")
    assert selfish.depends_on == ()  # a service never depends on itself


def test_a_dependents_pages_wait_for_the_dependencys_page_and_nothing_else_waits() -> None:
    """Rule groups evaluate at their own offsets: a dependent's page may reach Alertmanager first. Its route
    waits `dependency_group_wait` so the dependency's page arrives and mutes it; other routes keep group_wait."""
    from obsctl.app import render_options

    catalog = _load(_group("team-a"), _group("team-b"),
                    _component("db", "team-a"),
                    _component("app", "team-a", ["component:db"]),
                    _component("svc", "team-a", ["component:db"], **{"pagerduty.com/service-id": "PSVC"}),
                    _component("web", "team-b"))
    hook = (ReceiverSpec("h", "webhook", (("url", "http://127.0.0.1:9/h"),)),)
    base = RenderOptions(catalog_integrations=(PD,), default_routing=TeamRouting(page=hook, ticket=hook))
    settings = load_settings(None, alerting={"group_wait": "30s", "dependency_wait": "2m"})
    assert render_options(settings).dependency_group_wait == "2m30s"
    options = RenderOptions(**{**base.__dict__, "dependency_group_wait": "2m30s"})
    doc = routes.config(catalog, TEMPLATES, options)
    teams = {r["matchers"][0]: r["routes"] for r in doc["route"]["routes"]}
    a = {tuple(r["matchers"]): r for r in teams['team="team-a"']}
    own = a[('obsctl_severity="page"', 'catalog_namespace="default"', 'service="svc"')]
    assert own["group_wait"] == "2m30s"  # its own PagerDuty service, and it has a dependency
    page = a[('obsctl_severity="page"',)]
    assert "group_wait" not in page  # db pages at once
    assert page["routes"] == [{"matchers": ['obsctl_depends_on=~".+"'], "group_wait": "2m30s"}]  # app waits
    assert "group_wait" not in a[('obsctl_severity="ticket"',)] and "routes" not in a[('obsctl_severity="ticket"',)]
    assert all("routes" not in r and "group_wait" not in r for r in teams['team="team-b"'])  # nobody depends
    # "0s" turns the wait off: the routing tree is the one without dependencies' waits
    off = render_options(load_settings(None, alerting={"dependency_wait": "0s"}))
    assert off.dependency_group_wait == ""
    plain = routes.config(catalog, TEMPLATES, base)
    assert "group_wait" not in yaml.safe_dump(plain["route"]["routes"])


def test_alerting_durations_are_checked_at_load() -> None:
    for key in ("group_wait", "dependency_wait"):
        with pytest.raises(ConfigError, match=f"alerting.{key}: not a duration"):
            load_settings(None, alerting={key: "soon"})
