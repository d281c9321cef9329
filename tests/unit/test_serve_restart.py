"""A restart over an unchanged catalog and unchanged targets writes nothing, and the first event after it
renders only what changed (the start-up round rendered everything before serving events)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from obsctl.app import build_sinks, build_source, catalog_loader, load_templates, render_options
from obsctl.config import Settings, load_settings
from obsctl.reconcile.loop import Reconciler
from obsctl.render.incremental import IncrementalRenderer
from tests.support.alerting import UNDELIVERED
from tests.support.serve import EXAMPLES, service_doc
from tests.unit.test_loop import MemRecorder


def _serve(settings: Settings, recorder: MemRecorder) -> tuple[Reconciler, IncrementalRenderer]:
    """The loop as `obsctl serve` composes it (a new process: new source, renderer and sinks)."""
    templates = load_templates(settings)
    renderer = IncrementalRenderer(templates, render_options(settings), pack=True)
    loop = Reconciler(build_source(settings), catalog_loader(templates, settings), renderer.isolated,
                      build_sinks(settings), recorder=recorder)
    return loop, renderer


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_a_restart_over_an_unchanged_catalog_writes_nothing_and_then_renders_only_what_changed(
        tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(EXAMPLES, catalog)
    settings = load_settings(alerting=UNDELIVERED, out_dir=str(tmp_path / "out"),
                             catalog={"path": str(catalog)}, serve={"sources": ["directory"]})
    recorder = MemRecorder()
    first, _ = _serve(settings, recorder)
    report = first.run_once(full=True)
    assert report.complete and sum(sr.summary["create"] for sr in report.sinks) > 20
    before = _mtimes(tmp_path / "out")

    loop, renderer = _serve(settings, recorder)  # the restart
    report = loop.run_once(full=True)
    assert report.complete and renderer.stats.rendered == report.services  # the start-up round renders all
    writes = {a: n for sr in report.sinks for a, n in sr.summary.items() if a != "unchanged" and n}
    assert writes == {}
    after = _mtimes(tmp_path / "out")
    assert {p for p in after if before.get(p) != after[p]} == set()  # not one file written (manifests included)

    (catalog / "late.yaml").write_text(yaml.safe_dump(service_doc("late", owner="team-payments")))
    report = loop.run_once(full=False, reason="file changed")
    assert renderer.stats.rendered == 1 and renderer.stats.reused == report.services - 1
    assert (tmp_path / "out" / "prometheus/rules/default/late.rules.yml").is_file()
