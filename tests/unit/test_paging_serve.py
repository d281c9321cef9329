"""serve: a team whose alerts would reach nobody is that team's problem, reported per team; the others converge."""

from __future__ import annotations

from pathlib import Path

from obsctl.app import catalog_loader, catalog_renderer, load_templates
from obsctl.config import load_settings
from obsctl.model.artifact import Kind
from obsctl.reconcile.loop import LoopConfig, Reconciler
from obsctl.sinks.files import FilesSink
from tests.unit.test_loop import NO_RETRY, MemSource, doc


def test_an_unroutable_team_is_reported_and_held_while_the_others_render(tmp_path: Path) -> None:
    hook = [{"name": "h", "type": "webhook", "settings": {"url": "http://127.0.0.1:9/h"}}]
    settings = load_settings(None, out_dir=str(tmp_path / "out"), alerting={"teams": {
        "team-a": {"page": hook, "ticket": hook}, "team-b": {"page": hook, "ticket": hook}}})
    templates = load_templates(settings)
    source = MemSource({"a": doc("a", owner="team-a"), "b": doc("b", owner="team-b"), "c": doc("c", owner="team-c")})
    sink = FilesSink(tmp_path / "out", {Kind.PROMETHEUS_RULES, Kind.ALERTMANAGER_CONFIG})
    loop = Reconciler(source, catalog_loader(templates, settings), catalog_renderer(settings, templates), [sink],
                      config=LoopConfig(retry=NO_RETRY))
    report = loop.run_once()
    assert report.skipped == ["component:default/c"]
    assert [p.split(" error: ")[0].rsplit(" ", 1)[-1] for p in report.problems] == [
        "routing.team-c.page:", "routing.team-c.ticket:"]
    assert all("team team-c:" in p for p in report.problems)
    written = {p.name for p in (tmp_path / "out").rglob("*.yml")}
    assert {"a.rules.yml", "b.rules.yml", "alertmanager.yml"} <= written and "c.rules.yml" not in written
    am = (tmp_path / "out" / "alertmanager" / "alertmanager.yml").read_text()
    assert 'team="team-a"' in am and 'team="team-b"' in am and "team-c" not in am
