"""The Grafana sink against the Grafana emulator (a real HTTP server on 127.0.0.1, strict schema):
create, no-churn, targeted updates, drift policies, faults, ownership-safe prune, and scale."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from obsctl.errors import PermanentError, TemporaryError
from obsctl.model import conventions as cv
from obsctl.model.artifact import Artifact, DesiredState, Kind
from obsctl.model.entities import SLO, AvailabilitySLI, Catalog, EntityRef, Service
from obsctl.reconcile.apply import ApplyResult, OutcomeState, RetryPolicy, apply_plan
from obsctl.reconcile.plan import Action, Plan, make_plan
from obsctl.render import render_all
from obsctl.render.options import RenderOptions
from obsctl.sinks.grafana import GrafanaSink, desired_for
from obsctl.sinks.grafana.client import GrafanaClient, HttpError
from obsctl.sources.directory import read_directory, read_template_tree
from obsctl.spec.load import load_catalog
from obsctl.spec.templates import Templates, parse_templates
from tests.grafana_emulator import GrafanaEmulator

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DASH_POST = "/api/dashboards/db"


@pytest.fixture(scope="module")
def templates() -> Templates:
    return parse_templates(read_template_tree(ROOT))


@pytest.fixture(scope="module")
def catalog(templates: Templates) -> Catalog:
    return load_catalog(read_directory(ROOT / "examples" / "catalog"), templates).catalog


def render(catalog: Catalog, templates: Templates) -> DesiredState:
    return render_all(catalog, templates, RenderOptions(), only=["dashboards"])


@pytest.fixture
def emu() -> Iterator[GrafanaEmulator]:
    with GrafanaEmulator(strict_schema=True) as emulator:
        yield emulator


@pytest.fixture
def make_sink() -> Iterator[Callable[..., GrafanaSink]]:
    sinks: list[GrafanaSink] = []

    def factory(emulator: GrafanaEmulator, **kwargs: Any) -> GrafanaSink:
        kwargs.setdefault("parallelism", 4)
        kwargs.setdefault("timeout", 5.0)
        sink = GrafanaSink(emulator.url, kwargs.pop("token", "editor-token"), **kwargs)
        sinks.append(sink)
        return sink

    yield factory
    for sink in sinks:
        sink.close()


@dataclasses.dataclass
class Run:
    plan: Plan
    result: ApplyResult
    sleeps: list[float]


def apply(sink: GrafanaSink, desired: DesiredState, *, parallelism: int = 4, allow_mass_delete: bool = False,
          attempts: int = 4, deep: bool = False) -> Run:
    """One reconcile pass: list what obsctl owns (fast unless deep), plan, apply (backoff sleeps recorded)."""
    sleeps: list[float] = []
    mine = desired_for(sink, desired)
    plan = make_plan(mine, sink.list_owned(deep), allow_mass_delete=allow_mass_delete)
    result = apply_plan(sink, plan, RetryPolicy(attempts=attempts, sleep=sleeps.append), parallelism=parallelism)
    return Run(plan, result, sleeps)


def dashboard_uids(desired: DesiredState) -> set[str]:
    return {a.key for a in desired.values() if a.kind is Kind.GRAFANA_DASHBOARD}


def stored_body(emu: GrafanaEmulator, uid: str) -> bytes:
    """The stored dashboard as rendered: without id, version and the digest tag obsctl adds on save."""
    model = {k: v for k, v in emu.dashboards[uid].items() if k not in ("id", "version")}
    model["tags"] = [t for t in model.get("tags", []) if not t.startswith(cv.DIGEST_TAG_PREFIX)]
    return cv.grafana_json(model)


def assert_converged(emu: GrafanaEmulator, desired: DesiredState) -> None:
    """Grafana holds exactly the desired dashboards (each once, in its folder, byte-equal) and folders."""
    for art in desired.values():
        if art.kind is Kind.GRAFANA_DASHBOARD:
            assert stored_body(emu, art.key) == art.body, art.key
            assert cv.digest_tag(art.digest) in emu.dashboards[art.key]["tags"], art.key
            assert emu.dashboard_folder(art.key) == art.path.split("/")[-2]
        elif art.kind is Kind.GRAFANA_FOLDER:
            want = json.loads(art.body)
            got = emu.folders[art.key]
            assert (got["title"], got["description"], got.get("parentUid", "")) == \
                (want["title"], want["description"], want.get("parentUid", ""))
    owned = {uid for uid, m in emu.dashboards.items() if cv.MANAGED_TAG in (m.get("tags") or [])}
    assert owned == dashboard_uids(desired)


# ----------------------------------------------------------------------------- create, no churn, updates

def test_first_apply_creates_everything_and_the_second_writes_nothing(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    sink = make_sink(emu, page_size=3, search_page_size=3)  # small pages: listing must paginate
    first = apply(sink, desired)
    assert first.result.failed == []
    assert first.plan.summary()["create"] == len(desired_for(sink, desired))
    assert_converged(emu, desired)
    assert emu.folders[cv.team_folder_uid(EntityRef("group", "default", "team-payments"))]["parentUid"] == \
        cv.ROOT_FOLDER_UID
    emu.clear_log()
    second = apply(make_sink(emu, page_size=3, search_page_size=3), desired)
    assert second.plan.writes == [] and second.result.failed == []
    assert emu.writes() == []
    searches = [r for r in emu.request_log if r.path == "/api/search"]
    # 8 owned dashboards in pages of 3: 3 + 3 + 2, and the short page ends the listing.
    assert [r.query["page"] for r in searches] == [["1"], ["2"], ["3"]]


def test_a_changed_catalog_updates_only_what_changed(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    versions_before = {uid: m["version"] for uid, m in emu.dashboards.items()}
    services = [dataclasses.replace(s, title="Checkout v2") if s.name == "checkout" else s
                for s in catalog.services]
    changed = render(dataclasses.replace(catalog, services=tuple(services)), templates)
    emu.clear_log()
    run = apply(make_sink(emu), changed)
    checkout_uid = cv.service_dashboard_uid(next(s for s in catalog.services if s.name == "checkout"))
    assert [(c.action, c.id) for c in run.plan.writes] == [(Action.UPDATE, f"grafana-dashboard/{checkout_uid}")]
    writes = emu.writes()
    assert [(w.method, w.path, w.body["dashboard"]["uid"]) for w in writes] == [("POST", DASH_POST, checkout_uid)]
    assert writes[0].body["message"] == cv.dashboard_message(changed[f"grafana-dashboard/{checkout_uid}"].digest)
    assert {uid: m["version"] for uid, m in emu.dashboards.items()} == {**versions_before,
                                                                        checkout_uid: versions_before[checkout_uid] + 1}
    assert_converged(emu, changed)
    emu.clear_log()
    assert apply(make_sink(emu), changed).plan.writes == [] and emu.writes() == []


def test_a_service_moving_teams_moves_its_dashboard_and_an_empty_team_folder_is_pruned(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    search_team = EntityRef("group", "default", "team-search")
    payments = EntityRef("group", "default", "team-payments")
    moved = tuple(dataclasses.replace(s, team=payments) if s.team == search_team else s for s in catalog.services)
    after = render(dataclasses.replace(catalog, services=moved), templates)
    run = apply(make_sink(emu), after, allow_mass_delete=True)
    assert run.result.failed == []
    assert_converged(emu, after)
    assert cv.team_folder_uid(search_team) not in emu.folders
    assert cv.team_overview_uid(search_team) not in emu.dashboards


# ----------------------------------------------------------------------------- drift

def _ui_retitle(model: dict[str, Any]) -> None:
    model["title"] = "Edited in the UI"
    model["panels"] = model["panels"][:2]


@pytest.mark.parametrize("policy", ["overwrite", "keep", "report"])
def test_a_ui_edit_is_detected_and_handled_by_the_drift_policy(
        policy: str, emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog,
        templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    uid = cv.service_dashboard_uid(catalog.services[0])
    emu.ui_edit(uid, _ui_retitle, message="tweak")
    sink = make_sink(emu, drift_policy=policy)
    owned = sink.list_owned()
    assert [oid for oid, o in owned.items() if o.drifted] == [f"grafana-dashboard/{uid}"]
    emu.clear_log()
    run = apply(sink, desired, deep=True)  # a fast listing does not see this edit (see the fast-listing tests)
    assert [c.id for c in run.plan.writes] == [f"grafana-dashboard/{uid}"]
    assert [(r.uid, r.action) for r in sink.drifted] == \
        [(uid, {"overwrite": "overwritten", "keep": "kept", "report": "reported"}[policy])]
    if policy == "overwrite":
        assert run.result.failed == []
        assert stored_body(emu, uid) == desired[f"grafana-dashboard/{uid}"].body
        assert len(emu.writes()) == 1
        assert emu.versions(uid)[-2]["data"]["title"] == "Edited in the UI"  # the edit stays in history
        emu.clear_log()
        again = apply(make_sink(emu, drift_policy=policy), desired)
        assert again.plan.writes == [] and emu.writes() == []
    else:
        assert emu.writes() == []
        assert emu.dashboards[uid]["title"] == "Edited in the UI"
        states = {o.id: o.state for o in run.result.outcomes}
        expected = OutcomeState.APPLIED if policy == "keep" else OutcomeState.FAILED_PERMANENT
        assert states[f"grafana-dashboard/{uid}"] is expected
        if policy == "report":
            assert "edited outside obsctl" in run.result.failed[0].error
        emu.clear_log()
        apply(make_sink(emu, drift_policy=policy), desired)
        assert emu.writes() == []  # the edit is never churned over


def test_an_unchanged_save_by_someone_else_is_drift_but_content_equal_writes_once(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    uid = cv.service_dashboard_uid(catalog.services[1])
    emu.ui_edit(uid, lambda m: None)  # saved from the UI without a change: version bumped by someone else
    owned = make_sink(emu).list_owned()
    assert owned[f"grafana-dashboard/{uid}"].drifted
    assert owned[f"grafana-dashboard/{uid}"].body == desired[f"grafana-dashboard/{uid}"].body


# ----------------------------------------------------------------------------- faults

def _all_ok_and_converged(run: Run, emu: GrafanaEmulator, desired: DesiredState) -> None:
    assert run.result.failed == []
    assert_converged(emu, desired)
    generated = set(emu.dashboards) - dashboard_uids(desired)
    assert generated == set()  # nothing saved under a uid Grafana made up: no duplicates


def test_5xx_and_dropped_connections_are_retried_without_loss_or_duplicates(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    emu.inject_fault(503, count=3, path_prefix=DASH_POST, method="POST")
    emu.inject_fault(500, count=1, path_prefix="/api/folders", method="POST")
    emu.inject_fault(0, count=2, path_prefix=DASH_POST, method="POST", delay_s=0.05)
    run = apply(make_sink(emu), desired, attempts=6)  # 5 faults on one route: any one save may meet them all
    _all_ok_and_converged(run, emu, desired)
    assert sum(o.attempts - 1 for o in run.result.outcomes) >= 5
    posts = [r for r in emu.request_log if r.path == DASH_POST]
    assert len([r for r in posts if r.status == 200]) == len(dashboard_uids(desired))


def test_a_client_timeout_is_temporary_and_the_retry_lands_once(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    emu.inject_fault(0, count=1, path_prefix=DASH_POST, method="POST", delay_s=1.5)  # answers after the timeout
    run = apply(make_sink(emu, timeout=0.5), desired, parallelism=1)
    _all_ok_and_converged(run, emu, desired)
    retried = [o for o in run.result.outcomes if o.attempts > 1]
    assert len(retried) == 1 and retried[0].id.startswith("grafana-dashboard/")


def test_429_is_temporary_and_retry_after_is_honoured(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    emu.inject_fault(429, count=1, path_prefix=DASH_POST, method="POST", retry_after=3)
    run = apply(make_sink(emu), desired, parallelism=1)
    _all_ok_and_converged(run, emu, desired)
    assert max(run.sleeps) >= 3.0  # RetryPolicy waited at least Retry-After


def test_a_temporary_failure_during_listing_fails_the_read_not_the_catalog(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    emu.inject_fault(502, count=10, path_prefix="/api/search")
    with pytest.raises(TemporaryError):
        make_sink(emu).list_owned()
    emu.clear_faults()
    assert len(make_sink(emu).list_owned()) == len(desired_for(make_sink(emu), desired))


def test_412_on_a_foreign_uid_is_permanent_and_never_overwrites_or_deletes(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    uid = cv.service_dashboard_uid(catalog.services[0])
    emu.seed_dashboard({"uid": uid, "title": "Someone else's", "tags": ["theirs"], "schemaVersion": 41})
    run = apply(make_sink(emu), desired)
    failed = {o.id: o for o in run.result.failed}
    assert set(failed) == {f"grafana-dashboard/{uid}"}
    assert failed[f"grafana-dashboard/{uid}"].state is OutcomeState.FAILED_PERMANENT
    assert "412" in failed[f"grafana-dashboard/{uid}"].error
    assert emu.dashboards[uid]["title"] == "Someone else's" and emu.dashboards[uid]["version"] == 1
    # Nothing obsctl owns is touched by the conflict; the next pass reports the same and deletes nothing.
    emu.clear_log()
    again = apply(make_sink(emu), desired)
    assert {o.id for o in again.result.failed} == {f"grafana-dashboard/{uid}"}
    assert [w for w in emu.writes() if w.method == "DELETE"] == []


def test_412_from_a_concurrent_edit_is_reported_and_the_next_pass_converges(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    services = tuple(dataclasses.replace(s, description="changed") for s in catalog.services)
    changed = render(dataclasses.replace(catalog, services=services), templates)
    emu.inject_fault(412, count=2, path_prefix=DASH_POST, method="POST")
    run = apply(make_sink(emu), changed, parallelism=1)
    assert len(run.result.failed) == 2
    assert all(o.state is OutcomeState.FAILED_PERMANENT and o.attempts == 1 for o in run.result.failed)
    assert set(emu.dashboards) == dashboard_uids(desired)  # nothing lost
    _all_ok_and_converged(apply(make_sink(emu), changed), emu, changed)


def test_409_folder_uid_taken_by_someone_else_is_permanent_and_leaves_their_folder(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    taken = cv.team_folder_uid(EntityRef("group", "default", "team-search"))
    emu.seed_folder(taken, "Not obsctl's")
    run = apply(make_sink(emu), desired)
    failed = {o.id for o in run.result.failed}
    assert f"grafana-folder/{taken}" in failed
    assert all(o.state is OutcomeState.FAILED_PERMANENT for o in run.result.failed)
    assert emu.folders[taken]["title"] == "Not obsctl's" and emu.folders[taken]["description"] == ""
    # Its dashboards are not put into someone else's folder.
    assert not any(emu.dashboard_folder(u) == taken for u in emu.dashboards)
    emu.inject_fault(409, count=1, path_prefix="/api/folders", method="POST")
    other = make_sink(emu)
    with pytest.raises(PermanentError):
        other.put(Artifact(Kind.GRAFANA_FOLDER, "obsctl-new", cv.folder_path("obsctl-new"),
                           cv.grafana_json({"uid": "obsctl-new", "title": "New",
                                            "description": cv.folder_description("New")}), "x"))


def test_a_folder_deleted_behind_obsctls_back_is_recreated_on_folder_not_found(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    services = tuple(dataclasses.replace(s, description="v2") for s in catalog.services)
    changed = render(dataclasses.replace(catalog, services=services), templates)
    sink = make_sink(emu)
    mine = desired_for(sink, changed)
    plan = make_plan(mine, sink.list_owned(deep=False))  # the sink now believes every folder exists
    team_folder = cv.team_folder_uid(EntityRef("group", "default", "team-payments"))
    gone = httpx.delete(f"{emu.url}/api/folders/{team_folder}", headers={"Authorization": "Bearer admin-token"})
    assert gone.status_code == 200  # the folder is gone, and its dashboards with it
    emu.clear_log()
    result = apply_plan(sink, plan, RetryPolicy(sleep=lambda s: None), parallelism=1)
    assert [r for r in emu.request_log if r.status == 400 and r.path == DASH_POST]  # Grafana said folder not found
    assert result.failed == []
    _all_ok_and_converged(apply(make_sink(emu), changed), emu, changed)


def test_401_and_403_are_permanent(emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog,
                                   templates: Templates) -> None:
    desired = render(catalog, templates)
    with pytest.raises(PermanentError, match="401"):
        make_sink(emu, token="wrong").list_owned()
    viewer = make_sink(emu, token="viewer-token")
    viewer.list_owned()  # nothing owned yet: reading needs no save permission
    some = next(a for a in desired.values() if a.kind is Kind.GRAFANA_FOLDER)
    with pytest.raises(PermanentError, match="403"):
        viewer.put(some)


# ----------------------------------------------------------------------------- prune and ownership

def test_prune_removes_only_what_obsctl_owns(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    payments = cv.team_folder_uid(EntityRef("group", "default", "team-payments"))
    search = cv.team_folder_uid(EntityRef("group", "default", "team-search"))
    emu.seed_folder("theirs", "Their folder")
    emu.seed_folder("obsctl-lookalike", "Named like ours, not ours")
    emu.seed_folder("their-sub", "Their subfolder", payments)
    foreign = {
        "foreign-root": None, "foreign-theirs": "theirs", "foreign-in-ours": payments,
        "foreign-lookalike": "obsctl-lookalike", "foreign-in-search": search,
    }
    for uid, folder in foreign.items():
        emu.seed_dashboard({"uid": uid, "title": uid, "tags": ["team:team-payments"], "schemaVersion": 41}, folder)
    # The whole catalog disappears (explicitly allowed): only obsctl's things may go (the org overview stays).
    empty = render(Catalog(()), templates)
    assert dashboard_uids(empty) == {cv.ORG_OVERVIEW_UID}
    run = apply(make_sink(emu), empty, allow_mass_delete=True)
    assert set(emu.dashboards) == {*foreign, cv.ORG_OVERVIEW_UID}
    for uid, folder in foreign.items():
        assert emu.dashboard_folder(uid) == (folder or "")
    assert {"theirs", "obsctl-lookalike", "their-sub", payments, search, cv.ROOT_FOLDER_UID} <= set(emu.folders)
    # Team folders holding someone else's things are reported and kept.
    assert {(o.id, o.state) for o in run.result.failed} == {
        (f"grafana-folder/{payments}", OutcomeState.FAILED_PERMANENT),
        (f"grafana-folder/{search}", OutcomeState.FAILED_PERMANENT)}
    assert "not deleting it" in run.result.failed[0].error
    deleted = [w.path for w in emu.writes() if w.method == "DELETE"]
    gone = dashboard_uids(desired) - {cv.ORG_OVERVIEW_UID}
    assert sorted(deleted) == sorted(f"/api/dashboards/uid/{u}" for u in gone)


def test_prune_deletes_an_owned_folder_once_it_is_empty(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    search_team = EntityRef("group", "default", "team-search")
    kept = tuple(s for s in catalog.services if s.team != search_team)
    after = render(dataclasses.replace(catalog, services=kept), templates)
    run = apply(make_sink(emu), after, allow_mass_delete=True)
    assert run.result.failed == []
    assert cv.team_folder_uid(search_team) not in emu.folders
    assert_converged(emu, after)


def test_an_untagged_dashboard_is_never_listed_and_a_dashboard_losing_its_tag_is_not_deleted(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    uid = cv.service_dashboard_uid(catalog.services[0])
    sink = make_sink(emu)
    owned = sink.list_owned()
    emu.ui_edit(uid, lambda m: m.update(tags=["adopted-by-a-human"]))  # disowned between list and delete
    with pytest.raises(PermanentError, match="no longer carries the obsctl tag"):
        sink.delete(owned[f"grafana-dashboard/{uid}"])
    assert uid in emu.dashboards
    assert f"grafana-dashboard/{uid}" not in make_sink(emu).list_owned()


# ----------------------------------------------------------------------------- fast and deep listings

def dashboard_reads(emu: GrafanaEmulator) -> set[str]:
    """Uids of the dashboards read one by one (GET /api/dashboards/uid/<uid>) in the request log."""
    prefix = "/api/dashboards/uid/"
    return {r.path[len(prefix):] for r in emu.request_log
            if r.method == "GET" and r.path.startswith(prefix) and not r.path.endswith("/versions")}


def test_a_no_change_fast_resync_reads_no_dashboard_and_a_deep_one_agrees(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    emu.clear_log()
    sink = make_sink(emu)
    fast = apply(sink, desired)  # the default once prepared
    assert fast.plan.writes == [] and fast.result.failed == []
    assert len(fast.plan.of(Action.UNCHANGED)) == len(desired_for(sink, desired))
    assert emu.writes() == [] and dashboard_reads(emu) == set()
    assert not [r for r in emu.request_log if r.path.endswith("/versions")]
    # Deep reads every dashboard; its digests (content without the digest tag) equal the rendered ones.
    emu.clear_log()
    deep = apply(make_sink(emu), desired, deep=True)
    assert deep.plan.writes == [] and emu.writes() == []
    assert dashboard_reads(emu) == dashboard_uids(desired)


def folder_reads(emu: GrafanaEmulator) -> set[str]:
    """Uids of the folders read one by one (GET /api/folders/<uid>) in the request log."""
    prefix = "/api/folders/"
    return {r.path[len(prefix):] for r in emu.request_log if r.method == "GET" and r.path.startswith(prefix)}


def test_a_long_lived_sink_resyncs_fast_without_reading_folders_and_rereads_a_renamed_one(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    sink = make_sink(emu)  # one sink across rounds, as in serve
    assert apply(sink, desired).result.failed == []
    emu.clear_log()
    again = apply(sink, desired)
    assert again.plan.writes == [] and emu.writes() == []
    assert folder_reads(emu) == set() and dashboard_reads(emu) == set()
    # The folder tree is walked only where obsctl puts folders: the top level and obsctl's root folder.
    walked = [r.query.get("parentUid", [""])[0] for r in emu.request_log if r.path == "/api/folders"]
    assert sorted(walked) == ["", cv.ROOT_FOLDER_UID]
    team_folder = cv.team_folder_uid(EntityRef("group", "default", "team-payments"))
    renamed = httpx.put(f"{emu.url}/api/folders/{team_folder}", headers={"Authorization": "Bearer admin-token"},
                        json={"title": "Renamed in the UI", "overwrite": True})
    assert renamed.status_code == 200
    emu.clear_log()
    fixed = apply(sink, desired)
    assert team_folder in folder_reads(emu)  # the list shows another title: the cached details are not trusted
    assert [c.id for c in fixed.plan.writes] == [f"grafana-folder/{team_folder}"] and fixed.result.failed == []
    assert_converged(emu, desired)
    emu.clear_log()
    deep = apply(sink, desired, deep=True)
    assert deep.plan.writes == [] and folder_reads(emu) == {u for u in emu.folders}


def test_a_ui_edit_is_missed_by_a_fast_resync_and_found_by_a_deep_one(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    uid = cv.service_dashboard_uid(catalog.services[0])
    emu.ui_edit(uid, _ui_retitle, message="tweak")
    emu.clear_log()
    # The documented trade-off: the edit kept the digest tag and the folder, so the search hit vouches for it.
    fast = apply(make_sink(emu), desired)
    assert fast.plan.writes == [] and emu.writes() == [] and dashboard_reads(emu) == set()
    assert emu.dashboards[uid]["title"] == "Edited in the UI"
    sink = make_sink(emu)
    deep = apply(sink, desired, deep=True)
    assert [c.id for c in deep.plan.writes] == [f"grafana-dashboard/{uid}"] and deep.result.failed == []
    assert [(r.uid, r.action) for r in sink.drifted] == [(uid, "overwritten")]
    assert_converged(emu, desired)
    emu.clear_log()
    assert apply(make_sink(emu), desired).plan.writes == [] and dashboard_reads(emu) == set()


def test_drift_a_deep_listing_found_stays_reported_by_the_fast_ones_after_it(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    uid = cv.service_dashboard_uid(catalog.services[0])
    emu.ui_edit(uid, _ui_retitle, message="tweak")
    sink = make_sink(emu, drift_policy="report")
    assert [o.id for o in apply(sink, desired, deep=True).result.failed] == [f"grafana-dashboard/{uid}"]
    emu.clear_log()
    fast = apply(sink, desired, deep=False)  # the same sink (as in serve): it re-reads what it found drifted
    assert [o.id for o in fast.result.failed] == [f"grafana-dashboard/{uid}"]
    assert dashboard_reads(emu) == {uid} and emu.writes() == []


def test_a_changed_catalog_in_a_fast_resync_reads_and_updates_only_what_changed(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    services = [dataclasses.replace(s, title="Checkout v2") if s.name == "checkout" else s
                for s in catalog.services]
    changed = render(dataclasses.replace(catalog, services=tuple(services)), templates)
    checkout_uid = cv.service_dashboard_uid(next(s for s in catalog.services if s.name == "checkout"))
    emu.clear_log()
    run = apply(make_sink(emu), changed)
    assert [(c.action, c.id) for c in run.plan.writes] == [(Action.UPDATE, f"grafana-dashboard/{checkout_uid}")]
    assert "Checkout v2" in run.plan.writes[0].diff()  # the changed dashboard was read: a real diff
    assert dashboard_reads(emu) == {checkout_uid}
    writes = emu.writes()
    assert [(w.method, w.body["dashboard"]["uid"]) for w in writes] == [("POST", checkout_uid)]
    assert cv.digest_tag(changed[f"grafana-dashboard/{checkout_uid}"].digest) in writes[0].body["dashboard"]["tags"]
    assert_converged(emu, changed)


def test_a_fast_resync_still_finds_drift_on_a_dashboard_it_must_update(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    checkout = next(s for s in catalog.services if s.name == "checkout")
    uid = cv.service_dashboard_uid(checkout)
    emu.ui_edit(uid, _ui_retitle, message="tweak")
    services = tuple(dataclasses.replace(s, title="Checkout v2") if s is checkout else s for s in catalog.services)
    changed = render(dataclasses.replace(catalog, services=services), templates)
    emu.clear_log()
    run = apply(make_sink(emu, drift_policy="report"), changed)
    assert [o.id for o in run.result.failed] == [f"grafana-dashboard/{uid}"]
    assert "edited outside obsctl" in run.result.failed[0].error
    assert emu.writes() == [] and emu.dashboards[uid]["title"] == "Edited in the UI"


def _drop_digest_tag(model: dict[str, Any]) -> None:
    model["tags"] = [t for t in model["tags"] if not t.startswith(cv.DIGEST_TAG_PREFIX)]


@pytest.mark.parametrize("tags", [
    pytest.param(_drop_digest_tag, id="missing"),
    pytest.param(lambda m: m["tags"].append("obsctl-sha:0123"), id="repeated"),
    pytest.param(lambda m: (_drop_digest_tag(m), m["tags"].append("obsctl-sha:NOT-HEX-AT-ALL!")), id="garbled"),
])
def test_a_ui_edit_of_the_digest_tag_is_read_and_is_drift(
        tags: Callable[[dict[str, Any]], Any], emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink],
        catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    uid = cv.service_dashboard_uid(catalog.services[1])

    def edit(model: dict[str, Any]) -> None:
        tags(model)
        _ui_retitle(model)

    emu.ui_edit(uid, edit, message="tweak")
    emu.clear_log()
    sink = make_sink(emu, drift_policy="keep")
    run = apply(sink, desired)
    assert dashboard_reads(emu) == {uid}
    assert [c.id for c in run.plan.writes] == [f"grafana-dashboard/{uid}"]
    assert [(r.uid, r.action) for r in sink.drifted] == [(uid, "kept")]
    assert emu.writes() == [] and emu.dashboards[uid]["title"] == "Edited in the UI"


def test_a_dashboard_saved_without_a_digest_tag_is_tagged_once(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    uid = cv.service_dashboard_uid(catalog.services[0])
    art = desired[f"grafana-dashboard/{uid}"]
    # What an obsctl from before digest tags left: its own save (its message), no digest tag.
    emu.ui_edit(uid, _drop_digest_tag, message=cv.dashboard_message(art.digest))
    emu.clear_log()
    sink = make_sink(emu, drift_policy="report")
    run = apply(sink, desired)
    assert run.result.failed == [] and sink.drifted == []  # not an edit outside obsctl
    assert [c.id for c in run.plan.writes] == [f"grafana-dashboard/{uid}"]
    assert dashboard_reads(emu) == {uid}
    assert_converged(emu, desired)
    emu.clear_log()
    assert apply(make_sink(emu), desired).plan.writes == [] and dashboard_reads(emu) == set()


def test_the_loop_lists_deep_on_full_resyncs_at_most_every_deep_check_seconds(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], templates: Templates) -> None:
    from obsctl.reconcile.loop import Reconciler
    from obsctl.sources.directory import DirectorySource

    sink = make_sink(emu, deep_check_seconds=600)
    loop = Reconciler(DirectorySource(ROOT / "examples" / "catalog"), lambda f: load_catalog(f, templates),
                      lambda c: render(c, templates), [sink])

    def round_reads(full: bool) -> set[str]:
        emu.clear_log()
        report = loop.run_once(full=full)
        assert report.complete and report.sinks[0].failed == 0, report.as_dict()
        return dashboard_reads(emu)

    round_reads(True)  # deep (nothing there yet): creates everything
    owned = {uid for uid, m in emu.dashboards.items() if cv.MANAGED_TAG in m["tags"]}
    uid = "obsctl-svc-default-checkout"
    emu.ui_edit(uid, _ui_retitle, message="tweak")
    assert round_reads(False) == set()  # event-triggered round: fast
    assert round_reads(True) == set()  # full, but the last deep listing is younger than 600 s: fast
    assert emu.dashboards[uid]["title"] == "Edited in the UI"
    sink.deep_check_seconds = 0  # every full resync goes deep
    assert round_reads(True) == owned
    assert emu.dashboards[uid]["title"] != "Edited in the UI"  # found and overwritten (drift_policy=overwrite)
    assert round_reads(False) == set() and emu.writes() == []


# ----------------------------------------------------------------------------- scale

def big_catalog(n: int, teams: int = 20) -> Catalog:
    slo = (SLO("availability", 0.999, AvailabilitySLI()),)
    return Catalog(tuple(
        Service(EntityRef("component", "default", f"svc-{i:04d}"),
                EntityRef("group", "default", f"team-{i % teams:02d}"), slo) for i in range(n)))


@pytest.mark.slow
def test_two_thousand_dashboards_apply_with_bounded_parallelism(
        make_sink: Callable[..., GrafanaSink], templates: Templates, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.perf_counter()
    desired = render(big_catalog(2000), templates)
    render_s = time.perf_counter() - t0
    n = len(dashboard_uids(desired))
    # Schema checks of 2,000 dashboards in the emulator would measure jsonschema, not obsctl: the schema is
    # covered for every kind of dashboard in tests/unit/test_dashboards_render.py.
    with GrafanaEmulator(strict_schema=False, latency_s=0.01) as emu:
        sink = make_sink(emu, parallelism=16)
        t1 = time.perf_counter()
        first = apply(sink, desired, parallelism=16)
        create_s = time.perf_counter() - t1
        assert first.result.failed == []
        assert len(emu.dashboards) == n
        emu.clear_log()
        t2 = time.perf_counter()
        second = apply(make_sink(emu, parallelism=16), desired, parallelism=16)
        noop_s = time.perf_counter() - t2
        assert second.plan.writes == [] and emu.writes() == []
        reads = len(emu.request_log)
    with capsys.disabled():
        print(f"\n[grafana sink scale] {n} dashboards: render {render_s:.1f}s, first apply {create_s:.1f}s, "
              f"no-op apply {noop_s:.1f}s ({reads} reads) at latency 10 ms, parallelism 16")


def test_a_dashboard_moved_out_of_obsctls_folders_is_drift_and_overwrite_moves_it_back(
        emu: GrafanaEmulator, make_sink: Callable[..., GrafanaSink], catalog: Catalog, templates: Templates) -> None:
    desired = render(catalog, templates)
    assert apply(make_sink(emu), desired).result.failed == []
    uid = cv.service_dashboard_uid(catalog.services[0])
    home = emu.dashboard_folder(uid)
    emu.seed_folder("someones", "Someone's folder")
    moved = httpx.post(f"{emu.url}{DASH_POST}", headers={"Authorization": "Bearer admin-token"},
                       json={"dashboard": emu.dashboards[uid], "folderUid": "someones", "overwrite": True})
    assert moved.status_code == 200
    assert emu.dashboard_folder(uid) == "someones"
    emu.clear_log()
    run = apply(make_sink(emu), desired)  # a fast resync: the search hit's folder gives the move away
    assert dashboard_reads(emu) == {uid}
    assert [c.id for c in run.plan.writes] == [f"grafana-dashboard/{uid}"] and run.result.failed == []
    assert emu.dashboard_folder(uid) == home
    assert "someones" in emu.folders


def test_obsctl_apply_converges_grafana_from_settings(
        emu: GrafanaEmulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from obsctl.cli import main

    monkeypatch.setenv("OBSCTL_GRAFANA__URL", emu.url)
    monkeypatch.setenv("OBSCTL_GRAFANA__TOKEN", "editor-token")
    monkeypatch.setenv("OBSCTL_GRAFANA__DRIFT_POLICY", "report")
    catalog_dir = str(ROOT / "examples" / "catalog")
    assert main(["apply", catalog_dir, "--only", "dashboards"]) == 0
    assert "grafana: 11 created, 0 updated, 0 deleted, 0 unchanged, 0 failed" in capsys.readouterr().out
    titles = {f["title"] for f in emu.folders.values()}
    assert {"obsctl", "Payments", "Search"} <= titles  # folder titles right although dashboards may land first
    emu.clear_log()
    assert main(["apply", catalog_dir, "--only", "dashboards"]) == 0
    assert "grafana: 0 created, 0 updated, 0 deleted, 11 unchanged, 0 failed" in capsys.readouterr().out
    assert emu.writes() == []
    uid = "obsctl-svc-default-checkout"
    emu.ui_edit(uid, _ui_retitle)
    assert main(["apply", catalog_dir, "--only", "dashboards"]) == 1  # report: the drift fails the run
    assert "edited outside obsctl" in capsys.readouterr().err
    assert emu.dashboards[uid]["title"] == "Edited in the UI"


# --------------------------------------------------------------------------- transport


def test_transport_auth_org_and_idle_connections_closed_by_the_server() -> None:
    with GrafanaEmulator(strict_schema=False) as emu:
        _transport_checks(emu)


def _transport_checks(emu: GrafanaEmulator) -> None:
    bearer = GrafanaClient(emu.url, "editor-token", parallelism=1)
    basic = GrafanaClient(emu.url, ("admin", "admin"), parallelism=1)
    other_org = GrafanaClient(emu.url, "admin-token", org_id=2, parallelism=1)
    try:
        created = bearer.http("POST", "/folders", json_body={"uid": "t-1", "title": "T1"})
        assert created["uid"] == "t-1"
        raw = b'{"dashboard": {"uid": "d-1", "title": "D1", "tags": ["x"]}, "folderUid": "t-1"}'
        assert basic.http("POST", "/dashboards/db", body=raw)["uid"] == "d-1"  # bytes go out as given
        assert emu.request_log[-1].body == json.loads(raw)
        assert bearer.http("GET", "/search", params={"tag": ["x"], "type": "dash-db"})[0]["uid"] == "d-1"
        with pytest.raises(PermanentError, match="401"):
            other_org.http("GET", "/folders")  # the org header is sent: org 2 is not there
        # The server closes its idle keep-alive connections: the next call must not be sent into them.
        emu._server.close_connections()  # type: ignore[union-attr]
        time.sleep(0.2)
        assert bearer.http("GET", "/dashboards/uid/d-1")["dashboard"]["title"] == "D1"
        assert basic.http("GET", "/folders/t-1")["title"] == "T1"
        with pytest.raises(HttpError) as err:
            bearer.http("GET", "/dashboards/uid/nope")
        assert err.value.status == 404 and err.value.message == "Dashboard not found"
    finally:
        for client in (bearer, basic, other_org):
            client.close()


def test_transport_timeouts_and_refused_connections_are_temporary(emu: GrafanaEmulator) -> None:
    client = GrafanaClient(emu.url, "editor-token", timeout=0.3, parallelism=1)
    try:
        emu.inject_fault(0, count=1, path_prefix="/api/folders", delay_s=1.0)
        with pytest.raises(TemporaryError, match="timeout"):
            client.http("GET", "/folders")
        assert client.http("GET", "/folders") == []  # a fresh connection after the failed one
        emu.inject_fault(503, count=1, retry_after=7)
        with pytest.raises(TemporaryError) as err:
            client.http("GET", "/folders")
        assert err.value.retry_after == 7.0
    finally:
        client.close()
    port = emu.port
    emu.stop()
    refused = GrafanaClient(f"http://127.0.0.1:{port}", "editor-token", timeout=1.0)
    try:
        with pytest.raises(TemporaryError, match="connection failed"):
            refused.http("GET", "/folders")
    finally:
        refused.close()


def test_transport_a_redirect_is_a_clear_permanent_error() -> None:
    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(301)
            self.send_header("Location", "https://grafana.example/api/folders")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = GrafanaClient(f"http://127.0.0.1:{server.server_address[1]}", "token")
    try:
        with pytest.raises(PermanentError, match=r"301 redirect to https://grafana\.example/api/folders"):
            client.http("GET", "/folders")
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
