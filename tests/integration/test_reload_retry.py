"""Reloads are level-triggered: a Prometheus whose reload failed is reloaded by the next apply until it works.

A real Prometheus first runs with its lifecycle API off: obsctl writes the rule files, the reload is
refused (403), the apply fails and the backend is marked stale beside the files. A new sink (a new
`obsctl apply` process) with nothing to write still reloads, and fails again. With the lifecycle API
on, the next apply with nothing to write reloads it (Prometheus' own last-reload timestamp moves),
clears the mark and succeeds.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from obsctl.model.artifact import desired_state
from obsctl.model.entities import Catalog
from obsctl.reconcile.apply import OutcomeState, apply_plan
from obsctl.reconcile.plan import make_plan
from obsctl.render import rules
from obsctl.render.options import RenderOptions
from obsctl.sinks.files import RELOAD_PENDING
from obsctl.sinks.rulefiles import RuleFilesSink
from tests.support.binaries import require_binary
from tests.support.prom import Prometheus
from tests.support.slo_promtool import availability_service, repo_templates

pytestmark = pytest.mark.integration
TEMPLATES = repo_templates()


class SwitchablePrometheus(Prometheus):
    """A real Prometheus whose lifecycle API (POST /-/reload) can be switched off."""

    lifecycle = True

    def _command(self) -> list[str]:
        args = super()._command()
        return args if self.lifecycle else [a for a in args if a != "--web.enable-lifecycle"]


def _apply(sink: RuleFilesSink, catalog: Catalog) -> tuple[list[str], list[str]]:
    """(ids written, failures) of one apply of the catalog's rule files."""
    desired = desired_state(rules.render(catalog, TEMPLATES, RenderOptions()))
    plan = make_plan(desired, sink.list_owned())
    result = apply_plan(sink, plan)
    return ([c.id for c in plan.writes],
            [f"{o.id}: {o.error}" for o in result.outcomes if o.state in (OutcomeState.FAILED_PERMANENT,
                                                                         OutcomeState.FAILED_TEMPORARY)])


def _last_reload(prom: Prometheus, after: float = 0.0) -> float:
    """Prometheus' own last successful reload time, as scraped from itself, once it is later than `after`."""
    def value() -> float | None:
        v = prom.query_value("prometheus_config_last_reload_success_timestamp_seconds")
        return v if v is not None and v > after else None
    return prom.wait_for(value, timeout=15)


def test_a_failed_reload_is_retried_by_the_next_apply_until_it_succeeds(tmp_path: Path) -> None:
    require_binary("prometheus")
    require_binary("promtool")
    rules_dir = tmp_path / "rules"
    catalog = Catalog((availability_service(0.999, 30),))
    prom = SwitchablePrometheus(tmp_path / "prom", rule_files=[rules_dir / "*.rules.yml"])
    prom.lifecycle = False
    with prom:
        written, failures = _apply(RuleFilesSink(rules_dir, prom.url), catalog)
        assert written == ["prometheus-rules/default/checkout"]
        assert len(failures) == 1 and failures[0].startswith("finish: ") and "403" in failures[0]
        assert (rules_dir / RELOAD_PENDING).exists()
        assert "403" in RuleFilesSink(rules_dir, prom.url).stale()

        # a new process: nothing to write, yet it reloads (and fails again while the API is off)
        written, failures = _apply(RuleFilesSink(rules_dir, prom.url), catalog)
        assert written == [] and len(failures) == 1 and "403" in failures[0]
        assert not prom.rules()["groups"]  # Prometheus started before the files existed: it runs without them

        prom.stop()
        prom.lifecycle = True
        prom.start()
        before = _last_reload(prom)
        time.sleep(1.1)  # the timestamp has a resolution of one second
        sink = RuleFilesSink(rules_dir, prom.url)
        assert sink.stale()  # the restart loaded the files, but nothing told obsctl
        written, failures = _apply(sink, catalog)
        assert written == [] and failures == []
        assert _last_reload(prom, after=before) > before  # obsctl reloaded it although it had nothing to write
        assert not (rules_dir / RELOAD_PENDING).exists() and sink.stale() == ""
        groups = {g["name"] for g in prom.rules()["groups"]}
        assert groups >= {"obsctl-default-checkout-sli", "obsctl-default-checkout-tickets"}

        # converged: the next apply neither writes nor reloads
        again = _last_reload(prom, after=before)
        time.sleep(1.1)
        written, failures = _apply(RuleFilesSink(rules_dir, prom.url), catalog)
        time.sleep(2.5)  # two self-scrapes
        assert written == [] and failures == [] and _last_reload(prom) == again
