"""Catalog values reach the real collector verbatim, and the real collector checks configs before they land.

The collector expands `${env:NAME}`, `${file:PATH}` and `${NAME}` in every string value of its
config. `print-config --mode=unredacted` shows the config after that expansion, so it proves what
a running collector would stamp on telemetry.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from obsctl.model.artifact import Artifact, Kind
from obsctl.model.entities import EntityRef
from obsctl.reconcile.apply import apply_plan
from obsctl.reconcile.plan import make_plan
from obsctl.render import collectors
from obsctl.render.options import RenderOptions
from obsctl.sinks.collectors import collector_sink
from obsctl.sources.directory import read_directory, read_template_tree
from obsctl.spec.load import load_catalog
from obsctl.spec.templates import parse_templates
from tests.support.otelcol import otelcol_binary

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

HOSTILE = ["${env:OBSCTL_PROBE}", "${OBSCTL_PROBE}", "${file:/etc/hostname}", "$${env:OBSCTL_PROBE}", "a$b$$c"]


def _resolved(binary: Path, config_path: Path) -> dict[str, object]:
    env = {**os.environ, "OBSCTL_PROBE": "leaked"}
    proc = subprocess.run([str(binary), "print-config", "--mode=unredacted", f"--config={config_path}"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resolved: dict[str, object] = yaml.safe_load(proc.stdout)
    return resolved


@pytest.mark.parametrize("value", HOSTILE)
def test_catalog_values_are_not_expanded_by_the_collector(value: str, tmp_path: Path) -> None:
    templates = parse_templates(read_template_tree(ROOT))
    catalog = load_catalog(read_directory(ROOT / "examples" / "catalog"), templates).catalog
    # straight into the renderer: even a value the loaders would refuse must not be expanded
    first = catalog.services[0]
    svc = dataclasses.replace(first, ref=EntityRef(first.ref.kind, first.ref.namespace, value), environment=value)
    config = collectors.agent_config(svc, templates, RenderOptions())
    path = tmp_path / "agent.yaml"
    path.write_bytes(collectors._dump(config, "test"))
    resolved = _resolved(otelcol_binary(), path)
    attrs = {a["key"]: a["value"] for a in resolved["processors"]["resource"]["attributes"]}  # type: ignore[index]
    assert attrs["service.name"] == value
    assert attrs["deployment.environment.name"] == value
    assert "leaked" not in yaml.safe_dump(resolved)


def test_the_real_collector_refuses_a_config_before_it_replaces_the_old_one(tmp_path: Path) -> None:
    templates = parse_templates(read_template_tree(ROOT))
    catalog = load_catalog(read_directory(ROOT / "examples" / "catalog"), templates).catalog
    good = {a.id: a for a in collectors.render(catalog, templates, RenderOptions()) if a.kind is Kind.COLLECTOR_AGENT}
    sink = collector_sink(tmp_path, str(otelcol_binary()))
    first = apply_plan(sink, make_plan(good, sink.list_owned()))
    assert first.failed == [] and first.writes == len(good)
    art = next(iter(good.values()))
    before = (tmp_path / art.path).read_bytes()
    # our model cannot know every start-up rule; the collector's own validation has the last word
    broken = before.replace(b"check_interval: 1s", b"check_interval: 0s")
    bad = {**good, art.id: Artifact(art.kind, art.key, art.path, broken, art.owner)}
    second = apply_plan(sink, make_plan(bad, sink.list_owned()))
    assert [o.id for o in second.failed] == [art.id]
    assert "otelcol validate rejected" in str(second.failed[0].error)
    assert (tmp_path / art.path).read_bytes() == before, "a rejected config must leave the old file in place"
