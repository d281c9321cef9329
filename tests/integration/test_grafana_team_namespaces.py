"""Team folders of same-named Groups in two catalog namespaces, applied to the Grafana emulator with Grafana <= 11.2's
title rules (a folder title is unique among its siblings): both land, each titled so a user can tell them apart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from obsctl.model import conventions as cv
from obsctl.model.artifact import Kind
from obsctl.model.entities import EntityRef
from obsctl.model.source import SourceFile
from obsctl.reconcile.apply import RetryPolicy, apply_plan
from obsctl.reconcile.plan import make_plan
from obsctl.render import render_all
from obsctl.render.options import RenderOptions
from obsctl.sinks.grafana import GrafanaSink, desired_for
from obsctl.sources.directory import read_template_tree
from obsctl.spec.load import load_catalog
from obsctl.spec.templates import parse_templates
from tests.grafana_emulator import GrafanaEmulator

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

CATALOG = """\
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: payments}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: payments, namespace: retail}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: checkout, annotations: {obsctl.dev/availability: "99.9"}}
spec: {type: service, lifecycle: production, owner: payments}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: checkout, namespace: retail, annotations: {obsctl.dev/availability: "99.9"}}
spec: {type: service, lifecycle: production, owner: payments}
"""


@pytest.fixture
def emu() -> Iterator[GrafanaEmulator]:
    with GrafanaEmulator(strict_schema=True, unique_titles=True) as emulator:
        yield emulator


@pytest.mark.parametrize("titled", [False, True], ids=["untitled", "same-title"])
def test_same_named_groups_of_two_namespaces_get_two_team_folders(emu: GrafanaEmulator, titled: bool) -> None:
    """Untitled Groups: the folder is titled with the team label. Groups of one title (displayName): the one outside
    the default namespace adds its namespace to its folder's title (its dashboards keep the title as written)."""
    templates = parse_templates(read_template_tree(ROOT))
    text = CATALOG.replace("spec: {type: team, children: []}", "spec: {type: team, profile: {displayName: Payments}}") \
        if titled else CATALOG
    result = load_catalog([SourceFile("catalog.yaml", text.encode())], templates)
    assert result.errors == []
    desired = render_all(result.catalog, templates, RenderOptions(), only=["dashboards"])
    sink = GrafanaSink(emu.url, "editor-token", parallelism=2, timeout=5.0)
    try:
        mine = desired_for(sink, desired)
        plan = make_plan(mine, sink.list_owned(False))
        outcome = apply_plan(sink, plan, RetryPolicy(attempts=2, sleep=lambda s: None))
    finally:
        sink.close()
    assert outcome.failed == [], outcome.failed
    teams = {ns: cv.team_folder_uid(EntityRef("group", ns, "payments")) for ns in ("default", "retail")}
    assert {ns: emu.folders[uid]["title"] for ns, uid in teams.items()} == (
        {"default": "Payments", "retail": "Payments (retail)"} if titled
        else {"default": "payments", "retail": "retail/payments"})
    for ns, uid in teams.items():  # each team's service dashboard in its own team's folder
        board = cv.grafana_uid("obsctl-svc", ns, "checkout")
        assert emu.dashboard_folder(board) == uid
    assert sum(1 for a in desired.values() if a.kind is Kind.GRAFANA_FOLDER) == 3  # the root and two teams
