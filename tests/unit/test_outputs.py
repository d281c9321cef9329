"""The `outputs` setting: renderers build only the artifact kinds a platform asks for."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsctl.app import build_sinks, render_options
from obsctl.cli import main
from obsctl.config import Settings, load_settings
from obsctl.errors import ConfigError
from obsctl.model.artifact import Kind
from obsctl.model.entities import Catalog
from obsctl.render import collectors, dashboards, render_all, routes, rules
from obsctl.render.options import DEFAULT_OUTPUTS, RenderOptions
from obsctl.sources.directory import read_directory
from obsctl.spec.load import load_catalog
from tests.support.alerting import UNDELIVERED
from tests.support.slo_promtool import REPO_ROOT, repo_templates

TEMPLATES = repo_templates()
CATALOG_DIR = REPO_ROOT / "examples" / "catalog"
OPT_IN = {Kind.PROMETHEUS_RULE_CRD, Kind.COLLECTOR_CRD, Kind.RULER_GROUP, Kind.GRAFANA_DASHBOARD_CRD,
          Kind.GRAFANA_FOLDER_CRD}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(read_directory(CATALOG_DIR, ["**/*.yaml", "**/*.yml"]), TEMPLATES).catalog


@pytest.fixture(autouse=True)
def _no_env_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OBSCTL_OUTPUTS", "OBSCTL_RULER__URL", "OBSCTL_PROMETHEUS__RULES_DIR",
                 "OBSCTL_ALERTING__CONFIG_DIR", "OBSCTL_GRAFANA__URL"):
        monkeypatch.delenv(name, raising=False)


def test_default_options_render_no_kubernetes_manifests_or_ruler_groups(catalog: Catalog) -> None:
    assert frozenset(Kind) - OPT_IN == DEFAULT_OUTPUTS
    default = render_all(catalog, TEMPLATES, RenderOptions())
    assert {a.kind for a in default.values()} == DEFAULT_OUTPUTS
    everything = render_all(catalog, TEMPLATES, RenderOptions(outputs=frozenset(Kind)))
    assert {a.kind for a in everything.values()} == set(Kind)
    # the opt-in kinds only add artifacts: what both render is byte for byte the same
    assert {i: a for i, a in everything.items() if a.kind not in OPT_IN} == default
    crds = {i for i, a in everything.items() if a.kind is Kind.PROMETHEUS_RULE_CRD}
    assert len(crds) == len(catalog.services)


@pytest.mark.parametrize("kind", list(Kind))
def test_each_kind_alone_renders_that_kind_only(catalog: Catalog, kind: Kind) -> None:
    desired = render_all(catalog, TEMPLATES, RenderOptions(outputs=frozenset({kind})))
    assert desired, f"{kind.value} alone rendered nothing"
    assert {a.kind for a in desired.values()} == {kind}


def _forbid(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError(f"{module.__name__}.{name} ran although its output was not asked for")
    monkeypatch.setattr(module, name, refuse)


@pytest.mark.parametrize(("outputs", "module", "builder", "render"), [
    # the rule groups are built only for rule files, manifests or ruler groups
    ({Kind.ALERTMANAGER_CONFIG}, rules, "service_groups", rules.render),
    # rule files alone: no manifest header, no ruler group
    ({Kind.PROMETHEUS_RULES}, rules, "_crd", rules.render),
    ({Kind.PROMETHEUS_RULES}, rules, "ruler_group", rules.render),
    # collector configs without their operator manifests, and manifests never for a gateway-only platform's agents
    ({Kind.COLLECTOR_AGENT, Kind.COLLECTOR_GATEWAY}, collectors, "_operator_manifest", collectors.render),
    ({Kind.COLLECTOR_GATEWAY}, collectors, "agent_config", collectors.render),
    # folders and the provider without a single dashboard
    ({Kind.GRAFANA_FOLDER, Kind.GRAFANA_PROVIDER}, dashboards, "_service_dashboard", dashboards.render),
    ({Kind.PROMETHEUS_RULES}, dashboards, "_folder", dashboards.render),
    ({Kind.PROMETHEUS_RULES}, routes, "config", routes.render),
])
def test_renderers_skip_the_work_of_kinds_not_asked_for(
        catalog: Catalog, monkeypatch: pytest.MonkeyPatch, outputs: set[Kind], module: Any, builder: str,
        render: Callable[..., Any]) -> None:
    _forbid(monkeypatch, module, builder)
    arts = render(catalog, TEMPLATES, RenderOptions(outputs=frozenset(outputs)))
    assert {a.kind for a in arts} <= outputs


def test_unknown_output_kind_is_a_config_error_naming_it_and_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "obsctl.yaml"
    path.write_text("outputs: [prometheus-rules, prometheus-rule]\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    message = str(err.value)
    assert "outputs" in message and "'prometheus-rule'" in message
    for kind in Kind:
        assert kind.value in message
    path.write_text("outputs: [prometheus-rules, collector-crd]\n")
    assert load_settings(path).outputs == [Kind.PROMETHEUS_RULES, Kind.COLLECTOR_CRD]


def test_outputs_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OBSCTL_OUTPUTS", '["ruler-group"]')
    assert render_options(load_settings()).outputs == {Kind.RULER_GROUP}
    monkeypatch.setenv("OBSCTL_OUTPUTS", '["rule-group"]')
    with pytest.raises(ConfigError, match="rule-group"):
        load_settings()


def test_settings_default_to_the_default_outputs() -> None:
    assert render_options(Settings()).outputs == DEFAULT_OUTPUTS


def test_ruler_url_adds_ruler_groups_for_the_ruler_sink(tmp_path: Path, catalog: Catalog) -> None:
    settings = Settings(out_dir=tmp_path, outputs=[Kind.PROMETHEUS_RULES], ruler={"url": "http://127.0.0.1:9"})
    options = render_options(settings)
    assert options.outputs == {Kind.PROMETHEUS_RULES, Kind.RULER_GROUP}
    ruler = [s for s in build_sinks(settings) if Kind.RULER_GROUP in s.kinds]
    assert [s.name for s in ruler] == ["ruler"]
    desired = render_all(catalog, TEMPLATES, options)
    assert sum(a.kind is Kind.RULER_GROUP for a in desired.values()) == len(catalog.services)
    # without a ruler the groups stay off
    assert Kind.RULER_GROUP not in render_options(Settings(out_dir=tmp_path)).outputs


def test_configured_backends_always_get_their_kinds(tmp_path: Path) -> None:
    """A backend sink with nothing rendered for it would prune everything it owns."""
    settings = Settings(out_dir=tmp_path, outputs=[], prometheus={"rules_dir": tmp_path / "rules"},
                        alerting={"config_dir": tmp_path / "am"}, grafana={"url": "http://127.0.0.1:9"})
    assert render_options(settings).outputs == {Kind.PROMETHEUS_RULES, Kind.ALERTMANAGER_CONFIG,
                                                Kind.GRAFANA_FOLDER, Kind.GRAFANA_DASHBOARD}


def _tops(root: Path) -> set[str]:
    return {p.relative_to(root).parts[0] for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}


def test_cli_render_without_config_writes_the_defaults_and_the_sample_config_everything(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    # no config at all: nobody is paged, so obsctl refuses the alerting teams (team and severity named)
    assert main(["render", str(CATALOG_DIR), "--out", str(tmp_path / "none")], out, err) == 1
    assert "team team-payments: page alerts of component:default/checkout" in err.getvalue()
    minimal = tmp_path / "minimal.yaml"
    minimal.write_text(yaml.safe_dump({"alerting": UNDELIVERED}))
    err = io.StringIO()
    assert main(["--config", str(minimal), "render", str(CATALOG_DIR), "--out", str(tmp_path / "default")], out,
                err) == 0, err.getvalue()
    assert not {"kubernetes", "ruler"} & _tops(tmp_path / "default")
    config = str(REPO_ROOT / "examples" / "obsctl.yaml")
    assert main(["--config", config, "render", str(CATALOG_DIR), "--out", str(tmp_path / "all")], out, err) == 0
    assert {"kubernetes", "ruler"} <= _tops(tmp_path / "all")
