"""The streamed one-off converge (render -> plan -> write in the render workers, `converge_catalog`) does what
`converge(render_all(...))` does: the same files, manifest, plans and outcomes, the same guards, the same
failures; and a process killed while the workers stage bodies leaves the directory as it was."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench.common import synthetic_catalog, templates
from obsctl.errors import PruneRefused, SpecError, WorkerLost
from obsctl.model.artifact import Kind
from obsctl.model.entities import Catalog
from obsctl.reconcile.converge import Policy, converge
from obsctl.reconcile.plan import Action
from obsctl.reconcile.stream import converge_catalog
from obsctl.render import render_all
from obsctl.render.options import RenderOptions
from obsctl.sinks.files import MANIFEST, STAGING_PREFIX, FilesSink
from obsctl.sinks.rulefiles import RuleFilesSink
from tests.support.catalogs import with_unrenderable

TEMPLATES = templates()
EVERYTHING = RenderOptions(outputs=frozenset(Kind))
REPO = Path(__file__).resolve().parents[2]


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root (the manifest included) by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def summary(plan_changes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted(plan_changes)


def both(catalog: Catalog, old: Path, new: Path, policy: Policy, options: RenderOptions = EVERYTHING,
         workers: int = 2) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Converge `old` the whole-desired-state way and `new` the streamed way; each plan's (id, action)."""
    whole = converge(render_all(catalog, TEMPLATES, options), [FilesSink(old)], policy)
    streamed = converge_catalog(catalog, TEMPLATES, options, [FilesSink(new)], policy=policy, workers=workers)
    runs = whole.runs[0], streamed.report.runs[0]
    assert not runs[0].failed and not runs[1].failed
    assert [(o.id, o.action, o.state, o.digest) for o in runs[0].result.outcomes] == \
        [(o.id, o.action, o.state, o.digest) for o in runs[1].result.outcomes]  # type: ignore[union-attr]
    return ([(c.id, c.action.value) for c in runs[0].plan.changes],
            [(c.id, c.action.value) for c in runs[1].plan.changes])


@pytest.mark.parametrize("workers", [1, 2])
def test_streamed_converge_writes_what_the_whole_render_writes_through_a_sequence_of_edits(
        tmp_path: Path, workers: int) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    (new / "rules").mkdir(parents=True)
    (new / "rules" / "foreign.yml").write_bytes(b"not ours\n")
    (old / "rules").mkdir(parents=True)
    (old / "rules" / "foreign.yml").write_bytes(b"not ours\n")
    catalog = synthetic_catalog(130, 7)
    policy = Policy(max_delete_fraction=0.5, strict_mass_delete=True)
    first = both(catalog, old, new, policy, workers=workers)
    assert {a for _, a in first[1]} == {"create"} and first[0] == first[1]
    assert tree(old) == tree(new)

    again = both(catalog, old, new, policy, workers=workers)
    assert again[0] == again[1] and {a for _, a in again[1]} == {"unchanged"}  # 0 writes

    services = list(catalog.services)
    services[5] = replace(services[5], slos=services[5].slos[:1])  # fewer SLOs: its artifacts change
    del services[40:52]  # a team's worth of services leave: their artifacts are pruned
    edited = Catalog(tuple(services), catalog.teams)
    for root in (old, new):  # a hand edit (drift) and a deleted file, found by both paths
        manifest = (root / MANIFEST).read_text()
        assert "grafana/dashboards" in manifest
    victim = sorted((new / "grafana").rglob("*.json"))[3].relative_to(new)
    for root in (old, new):
        (root / victim).write_bytes(b"{}\n")
    gone = sorted((new / "otel").rglob("*.yaml"))[2].relative_to(new)
    for root in (old, new):
        (root / gone).unlink()
    edits = both(edited, old, new, policy, workers=workers)
    assert edits[0] == edits[1]
    actions = {a for _, a in edits[1]}
    assert {"update", "delete", "unchanged"} <= actions
    assert tree(old) == tree(new)
    assert (new / "rules" / "foreign.yml").read_bytes() == b"not ours\n"
    assert not list(new.glob(f"{STAGING_PREFIX}*"))


def test_a_streamed_plan_writes_nothing_and_diffs_like_the_whole_one(tmp_path: Path) -> None:
    root = tmp_path / "out"
    catalog = synthetic_catalog(130, 7)
    converge_catalog(catalog, TEMPLATES, EVERYTHING, [FilesSink(root)], policy=Policy(), workers=2)
    victim = sorted((root / "prometheus").rglob("*.yml"))[1]
    victim.write_bytes(victim.read_bytes().replace(b"groups:", b"groups:  ", 1))
    before = tree(root)
    dry = Policy(apply=False)
    streamed = converge_catalog(catalog, TEMPLATES, EVERYTHING, [FilesSink(root)], policy=dry, workers=2, diffs=True)
    whole = converge(render_all(catalog, TEMPLATES, EVERYTHING), [FilesSink(root)], dry)
    assert tree(root) == before and not list(root.glob(f"{STAGING_PREFIX}*"))
    got, want = streamed.report.runs[0].plan.writes, whole.runs[0].plan.writes
    assert [(c.id, c.action, c.path) for c in got] == [(c.id, c.action, c.path) for c in want]
    assert len(got) == 1 and got[0].action is Action.UPDATE and got[0].diff() == want[0].diff() != ""


def test_a_refused_mass_delete_writes_nothing_not_even_the_updates(tmp_path: Path) -> None:
    root = tmp_path / "out"
    catalog = synthetic_catalog(130, 7)
    converge_catalog(catalog, TEMPLATES, EVERYTHING, [FilesSink(root)], policy=Policy(), workers=2)
    before = tree(root)
    shrunk = Catalog(tuple(replace(s, description="changed") if i == 0 else s
                           for i, s in enumerate(catalog.services[:40])), catalog.teams)
    with pytest.raises(PruneRefused):
        converge_catalog(shrunk, TEMPLATES, EVERYTHING, [FilesSink(root)],
                         policy=Policy(max_delete_fraction=0.5, strict_mass_delete=True), workers=2)
    assert tree(root) == before and not list(root.glob(f"{STAGING_PREFIX}*"))
    # not strict (serve's rule): the sink is applied without its deletes, the refusal reported
    report = converge_catalog(shrunk, TEMPLATES, EVERYTHING, [FilesSink(root)],
                              policy=Policy(max_delete_fraction=0.5), workers=2).report
    assert report.prune_refused and not report.runs[0].plan.of(Action.DELETE)
    assert {p for p in tree(root) if not p.startswith(".obsctl-journal")} == set(before)  # nothing deleted


def test_a_service_that_fails_to_render_fails_the_run_as_the_whole_render_and_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "out"
    broken, _ = with_unrenderable(250, 5, (3, 180))
    with pytest.raises(SpecError) as whole:
        render_all(broken, TEMPLATES, RenderOptions())
    with pytest.raises(SpecError) as streamed:
        converge_catalog(broken, TEMPLATES, RenderOptions(), [FilesSink(root)], policy=Policy(), workers=2)
    assert streamed.value.problems == whole.value.problems
    assert not root.exists() or tree(root) == {}


def test_frozen_and_protected_owners_keep_their_files_as_in_the_whole_converge(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    catalog = synthetic_catalog(130, 7)
    policy = Policy(max_delete_fraction=1.0)
    both(catalog, old, new, policy)
    services = list(catalog.services)
    frozen, protected = str(services[7].ref), str(services[9].ref)
    services[7] = replace(services[7], slos=services[7].slos[:1])  # would change its files
    del services[9]  # would delete its files
    edited = Catalog(tuple(services), catalog.teams)
    from obsctl.model.status import owner_key

    keep = Policy(max_delete_fraction=1.0, frozen_owners=frozenset({owner_key(frozen)}),
                  protected=frozenset({owner_key(protected)}))
    unkept = converge_catalog(edited, TEMPLATES, EVERYTHING, [FilesSink(new)], policy=replace(keep, apply=False,
                              frozen_owners=frozenset(), protected=frozenset()), workers=2).report.runs[0].plan
    assert unkept.of(Action.UPDATE) and unkept.of(Action.DELETE)  # what the policy keeps from happening
    plans = both(edited, old, new, keep)
    assert plans[0] == plans[1] and tree(old) == tree(new)
    assert {a for _, a in plans[1]} == {"unchanged"}


def test_a_rule_files_sink_stages_at_its_own_layout(tmp_path: Path) -> None:
    catalog = synthetic_catalog(60, 2)
    options = RenderOptions(outputs=frozenset({Kind.PROMETHEUS_RULES}))
    old, new = tmp_path / "old", tmp_path / "new"
    whole = converge(render_all(catalog, TEMPLATES, options), [RuleFilesSink(old)], Policy())
    streamed = converge_catalog(catalog, TEMPLATES, options, [RuleFilesSink(new)], policy=Policy(), workers=2)
    assert not whole.failed and not streamed.report.failed
    assert tree(old) == tree(new) and all("/" not in p for p in tree(new) if p != MANIFEST)


KILLED = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from bench.common import synthetic_catalog, templates
    from obsctl.model.artifact import Kind
    from obsctl.reconcile.converge import Policy
    from obsctl.reconcile.stream import converge_catalog
    from obsctl.render.options import RenderOptions
    from obsctl.sinks import files
    root, mode = Path(sys.argv[1]), sys.argv[2]
    catalog = synthetic_catalog(130, 7)
    if mode == "edited":
        from dataclasses import replace
        from obsctl.model.entities import Catalog
        catalog = Catalog(tuple(replace(s, slos=s.slos[:2]) for s in catalog.services), catalog.teams)
    staged = []

    def validate(artifact, path):  # runs in a render worker, on the staged body
        staged.append(path)
        if len(staged) == 25:  # mid-render: the whole process group (parent and workers) dies
            os.killpg(0, signal.SIGKILL)

    real_replace = os.replace
    done = []

    def replace_then_die(src, dst):  # runs in the parent, committing: dies after 7 renames
        real_replace(src, dst)
        done.append(dst)
        if len(done) == 7:
            os.killpg(0, signal.SIGKILL)

    sink = files.FilesSink(root, validate=validate if mode != "commit" else None)
    if mode == "commit":
        files.os.replace = replace_then_die
    converge_catalog(catalog, templates(), RenderOptions(outputs=frozenset(Kind)), [sink], policy=Policy(), workers=2)
    raise SystemExit("not killed")
""")


def killed(root: Path, mode: str) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLED, str(root), mode], check=False, cwd=REPO,
                          start_new_session=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == -9


@pytest.mark.parametrize("mode", ["edited", "commit"])
def test_a_run_killed_while_staging_or_committing_loses_nothing_owned_and_adopts_nothing_foreign(
        tmp_path: Path, mode: str) -> None:
    root, whole = tmp_path / "out", tmp_path / "whole"
    catalog = synthetic_catalog(130, 7)
    converge_catalog(catalog, TEMPLATES, EVERYTHING, [FilesSink(root)], policy=Policy(), workers=2)
    (root / "rules").mkdir()
    (root / "rules" / "foreign.yml").write_bytes(b"not ours\n")
    if mode == "commit":  # 30 owned files gone: 30 updates to commit
        for victim in sorted((root / "grafana").rglob("*.json"))[:30]:
            victim.unlink()
    before = tree(root)
    owned_before = FilesSink(root).list_owned()
    killed(root, mode)
    after = FilesSink(root).list_owned()
    assert (root / "rules" / "foreign.yml").read_bytes() == b"not ours\n"
    if mode == "edited":  # killed in the workers: nothing was put in place, nothing changed owner
        assert {k: v.digest for k, v in after.items()} == {k: v.digest for k, v in owned_before.items()}
        assert {p: b for p, b in tree(root).items() if not p.startswith(STAGING_PREFIX)} == before
        assert list(root.glob(f"{STAGING_PREFIX}*"))  # what the workers staged is left behind...
    else:  # killed committing: the 7 renamed in place are owned and whole, the rest as before
        assert set(after) == set(owned_before)
        assert sum(o.drifted for o in owned_before.values()) == 30
        assert sum(o.drifted for o in after.values()) == 23
    # ...and the next run removes it and ends where a whole render ends
    report = converge_catalog(catalog, TEMPLATES, EVERYTHING, [FilesSink(root)], policy=Policy(), workers=2).report
    assert not report.failed and not list(root.glob(f"{STAGING_PREFIX}*"))
    converge(render_all(catalog, TEMPLATES, EVERYTHING), [FilesSink(whole)], Policy())
    files = {p: b for p, b in tree(root).items() if p != "rules/foreign.yml" and not p.startswith(".obsctl-")}
    assert files == {p: b for p, b in tree(whole).items() if not p.startswith(".obsctl-")}
    assert {k: (v.digest, v.owner) for k, v in FilesSink(root).list_owned().items()} == \
        {k: (v.digest, v.owner) for k, v in FilesSink(whole).list_owned().items()}
    assert (root / "rules" / "foreign.yml").read_bytes() == b"not ours\n"


def kill_the_worker_rendering(monkeypatch: pytest.MonkeyPatch, victim: str) -> None:
    """The render worker that renders the service named `victim` dies of SIGKILL (as when the kernel's OOM killer
    picks it); the converging process renders it unharmed, should it ever do so."""
    import signal

    from obsctl.render import dashboards

    parent, real = os.getpid(), dashboards.render_service

    def deadly(service: Any, ctx: Any) -> Any:
        if service.name == victim and os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(service, ctx)

    monkeypatch.setattr(dashboards, "render_service", deadly)  # the forked workers inherit it


def test_a_render_worker_killed_fails_the_run_naming_its_services_and_commits_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "out"
    catalog = synthetic_catalog(250, 5)
    converge_catalog(catalog, TEMPLATES, RenderOptions(), [FilesSink(root)], policy=Policy(), workers=2)
    for victim in sorted(root.rglob("*.json"))[:20]:  # 20 updates the killed run would have made
        victim.write_bytes(b"edited\n")
    before = tree(root)
    services = sorted(catalog.services, key=lambda s: str(s.ref))
    kill_the_worker_rendering(monkeypatch, services[170].name)
    with pytest.raises(WorkerLost) as lost:
        converge_catalog(catalog, TEMPLATES, RenderOptions(), [FilesSink(root)], policy=Policy(), workers=2)
    message = str(lost.value)
    assert "killed by signal 9" in message and message.endswith("nothing was committed")
    assert f"services {services[150].ref} .. {services[199].ref}" in message  # the victim's chunk (of 50) is named
    assert tree(root) == before  # nothing committed, nothing staged left behind


def test_a_killed_render_worker_is_an_error_of_the_command_not_a_hang(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from obsctl.cli import main

    catalog = tmp_path / "catalog"
    shutil.copytree(REPO / "examples" / "catalog", catalog)
    template = (catalog / "checkout.yaml").read_text().split("spec:")[0].replace(
        "  name: checkout", "  name: NAME").replace("dependsOn", "# ")
    for i in range(120):  # enough chunks for the render to fork its workers
        (catalog / f"svc-{i}.yaml").write_text(template.replace("NAME", f"svc-{i:03d}")
                                               + "spec: {type: service, lifecycle: production, owner: team-payments}\n")
    kill_the_worker_rendering(monkeypatch, "svc-100")
    out, err = io.StringIO(), io.StringIO()
    code = main(["--config", str(REPO / "examples" / "obsctl.yaml"), "render", str(catalog),
                 "--out", str(tmp_path / "out")], out, err)
    assert code == 1
    assert "render worker" in err.getvalue() and "killed by signal 9" in err.getvalue()
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


@pytest.mark.parametrize("fault", ["journal", "flush"])
def test_a_journal_or_flush_that_fails_fails_the_staged_writes_and_the_rest_of_the_plan_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str) -> None:
    import errno

    from obsctl.reconcile.apply import OutcomeState
    from obsctl.sinks import files

    root = tmp_path / "out"
    catalog = synthetic_catalog(30, 7)
    converge_catalog(catalog, TEMPLATES, RenderOptions(), [FilesSink(root)], policy=Policy(), workers=1)
    edited = Catalog(tuple(replace(s, description="changed") if i < 2 else s
                           for i, s in enumerate(catalog.services[:28])), catalog.teams)
    before = tree(root)
    disk_full = OSError(errno.ENOSPC, "No space left on device")
    if fault == "journal":
        def refuse(self: FilesSink, lines: list[str]) -> None:
            raise disk_full
        monkeypatch.setattr(FilesSink, "_append_lines", refuse)
    else:
        def refuse_flush(directory: Path) -> None:
            raise disk_full
        monkeypatch.setattr(files, "_syncfs", refuse_flush)
    run = converge_catalog(edited, TEMPLATES, RenderOptions(), [FilesSink(root)],
                           policy=Policy(max_delete_fraction=1.0), workers=1).report.runs[0]  # no exception raised
    writes = {c.id for c in run.plan.writes if c.action is not Action.DELETE}
    deletes = {c.id for c in run.plan.of(Action.DELETE)}
    assert writes and deletes
    outcomes = {o.id: o for o in run.result.outcomes}  # type: ignore[union-attr]
    assert {i for i in writes if outcomes[i].state is OutcomeState.FAILED_PERMANENT} == writes
    assert all("No space left" in (outcomes[i].error or "") for i in writes)
    assert deletes <= set(outcomes)  # the deletes after the failed batch were still attempted
    changed = {str(Path(c.path)) for c in run.plan.writes if c.action is not Action.DELETE}
    after = tree(root)
    assert all(after.get(p) == before.get(p) for p in changed)  # no staged body renamed into place
    assert not list(root.glob(f"{STAGING_PREFIX}*"))


def test_a_stat_that_fails_after_a_rename_leaves_the_file_in_place_and_owned(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from obsctl.reconcile.apply import OutcomeState
    from obsctl.sinks import files

    def refuse(_st: os.stat_result) -> tuple[int, ...]:
        raise OSError("stat refused")

    monkeypatch.setattr(files, "_stat_key", refuse)
    root = tmp_path / "out"
    catalog = synthetic_catalog(5, 7)
    run = converge_catalog(catalog, TEMPLATES, RenderOptions(), [FilesSink(root)], policy=Policy(),
                           workers=1).report.runs[0]
    assert run.result is not None and run.result.outcomes
    assert {o.state for o in run.result.outcomes} == {OutcomeState.APPLIED}
    monkeypatch.undo()
    again = converge_catalog(catalog, TEMPLATES, RenderOptions(), [FilesSink(root)], policy=Policy(),
                             workers=1).report.runs[0]
    assert not again.plan.writes  # owned and unchanged: nothing rewritten, nothing adopted as foreign


def test_staged_bodies_start_for_the_disk_early_and_the_commit_still_flushes_before_its_first_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from obsctl.sinks import files

    flush = files._syncfs
    calls: list[dict[str, Any]] = []
    root = tmp_path / "out"

    def in_place() -> int:  # artifact files renamed into place (not the staging, journal or manifest)
        return sum(1 for p in root.rglob("*") if p.is_file() and not p.relative_to(root).parts[0].startswith(".obsctl"))

    def recorded(directory: Path) -> None:
        call = {"thread": threading.current_thread().name, "staged": sum(
            1 for d in root.glob(f"{STAGING_PREFIX}*") for _ in d.iterdir()), "in place": in_place()}
        calls.append(call)
        flush(directory)
        call["done"] = len(calls)  # how many flushes had begun when this one ended

    monkeypatch.setattr(files, "_syncfs", recorded)
    catalog = synthetic_catalog(130, 7)  # enough chunks to fork the workers
    dry = converge_catalog(catalog, TEMPLATES, RenderOptions(), [FilesSink(root)], policy=Policy(apply=False),
                           workers=2)
    assert dry.report.runs[0].plan.writes and calls == []  # a dry run stages nothing and flushes nothing

    run = converge_catalog(catalog, TEMPLATES, RenderOptions(), [FilesSink(root)], policy=Policy(), workers=2)
    assert not run.report.runs[0].failed
    head, barrier = calls
    assert head["thread"].startswith("obsctl-flush-") and head["staged"] >= 3 * 130 and head["in place"] == 0
    assert head["done"] == 1  # the head start ended before the commit's flush began (the commit waited for it)
    assert barrier["thread"] == threading.current_thread().name and barrier["in place"] == 0  # before any rename
    assert in_place() == len(run.report.runs[0].plan.writes)
    assert not [t for t in threading.enumerate() if t.name.startswith("obsctl-flush-")]

    calls.clear()
    again = converge_catalog(catalog, TEMPLATES, RenderOptions(), [FilesSink(root)], policy=Policy(), workers=2)
    assert not again.report.runs[0].plan.writes and calls == []  # nothing staged: no flush at all


class _FailingSyncfs:
    """libc as `files._syncfs` finds it (ctypes.CDLL), with a syncfs that fails with `err` when called from a
    thread `fails` picks, as a writeback error is reported (-1, errno) to one flush only; other calls are the
    real syncfs. Records (thread name, failed) per call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fails: Any, err: int) -> None:
        import ctypes
        import threading

        real_cdll = ctypes.CDLL
        real = real_cdll(None, use_errno=True)
        self.calls: list[tuple[str, bool]] = []
        calls = self.calls

        def syncfs(fd: int) -> int:
            name = threading.current_thread().name
            failing = bool(fails(name))
            calls.append((name, failing))
            if failing:
                ctypes.set_errno(err)
                return -1
            return int(real.syncfs(fd))

        class Libc:
            def __init__(self, name: str | None, use_errno: bool = False) -> None:
                self._lib = real_cdll(name, use_errno=use_errno)
                self.syncfs = syncfs

            def __getattr__(self, attr: str) -> Any:
                return getattr(self._lib, attr)

        monkeypatch.setattr(ctypes, "CDLL", Libc)


@pytest.mark.parametrize("where", ["head start", "commit"])
def test_a_flush_that_fails_in_the_head_start_or_the_commit_fails_every_staged_write_and_renames_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Review M4: Linux reports a writeback error to the first syncfs that asks only. Failing in the head start,
    the commit's own flush finds nothing wrong, so the head start's error must be the commit's; and a syncfs
    that fails is an error, never papered over with os.sync (which reports none)."""
    import errno

    from obsctl.reconcile.apply import OutcomeState

    root = tmp_path / "out"
    catalog = synthetic_catalog(30, 7)
    converge_catalog(catalog, TEMPLATES, RenderOptions(), [FilesSink(root)], policy=Policy(), workers=1)
    edited = Catalog(tuple(replace(s, description="changed") if i < 3 else s for i, s in enumerate(catalog.services)),
                     catalog.teams)
    before = tree(root)
    synced: list[str] = []
    monkeypatch.setattr(os, "sync", lambda: synced.append("sync"))
    libc = _FailingSyncfs(monkeypatch, (lambda name: name.startswith("obsctl-flush-")) if where == "head start"
                          else (lambda name: not name.startswith("obsctl-flush-")), errno.EIO)
    run = converge_catalog(edited, TEMPLATES, RenderOptions(), [FilesSink(root)], policy=Policy(),
                           workers=1).report.runs[0]
    first_thread, first_failed = libc.calls[0]  # the head start's flush, failing or not as injected
    assert first_thread.startswith("obsctl-flush-") and first_failed == (where == "head start")
    assert any(failed for _name, failed in libc.calls) and synced == []  # the failure met, no os.sync instead
    writes = {c.id for c in run.plan.writes}
    assert writes
    outcomes = {o.id: o for o in run.result.outcomes}  # type: ignore[union-attr]
    assert {i for i in writes if outcomes[i].state is OutcomeState.FAILED_PERMANENT} == writes
    assert all("Input/output error" in (outcomes[i].error or "") for i in writes)
    def files_of(t: dict[str, bytes]) -> dict[str, bytes]:  # the journal may hold the announced and reverted lines
        return {p: b for p, b in t.items() if not p.startswith(".obsctl-journal-")}
    assert files_of(tree(root)) == files_of(before)  # no staged body renamed into place, nothing left staged
    monkeypatch.undo()
    again = converge_catalog(edited, TEMPLATES, RenderOptions(), [FilesSink(root)], policy=Policy(),
                             workers=1).report.runs[0]
    assert {c.id for c in again.plan.writes} == writes and not again.failed  # the next run writes them


def test_after_a_failed_flush_a_later_commit_of_the_same_staging_fails_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The error was reported once (to the head start): a second batch's flush succeeds, yet the bodies may not be
    on disk, so that batch fails with the same error instead of being renamed."""
    import errno

    from obsctl.model.artifact import Artifact

    sink = FilesSink(tmp_path)
    sink.begin_staging()
    staged = [sink.stage(Artifact(Kind.GRAFANA_DASHBOARD, f"d{i}", f"d{i}.json", b"{}", "component:default/a"))
              for i in range(2)]
    libc = _FailingSyncfs(monkeypatch, lambda name: name.startswith("obsctl-flush-"), errno.ENOSPC)
    sink.start_flush()
    first = sink.commit_many([(f"{Kind.GRAFANA_DASHBOARD.value}/d0", staged[0])])
    second = sink.commit_many([(f"{Kind.GRAFANA_DASHBOARD.value}/d1", staged[1])])
    sink.end_staging()
    assert [failed for _name, failed in libc.calls] == [True]  # the commit flushed no more: it knew the error
    assert isinstance(first[0], OSError) and first[0].errno == errno.ENOSPC and second == first
    assert not (tmp_path / "d0.json").exists() and not (tmp_path / "d1.json").exists()


@pytest.mark.parametrize("libc", ["ENOSYS", "no syncfs"])
def test_the_flush_falls_back_to_sync_only_where_there_is_no_syncfs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, libc: str) -> None:
    import ctypes
    import errno

    from obsctl.sinks import files

    synced: list[str] = []
    monkeypatch.setattr(os, "sync", lambda: synced.append("sync"))
    if libc == "ENOSYS":
        _FailingSyncfs(monkeypatch, lambda _name: True, errno.ENOSYS)
    else:
        class NoSyncfs:
            def __init__(self, name: str | None, use_errno: bool = False) -> None:
                self.syncfs = None
        monkeypatch.setattr(ctypes, "CDLL", NoSyncfs)
    files._syncfs(tmp_path)
    assert synced == ["sync"]


def test_a_head_start_flush_that_fails_before_no_commit_is_logged_at_the_end_of_staging(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """No commit came (a refused plan, an interrupted run): the error is not dropped in silence either."""
    import errno
    import logging

    from obsctl.model.artifact import Artifact

    sink = FilesSink(tmp_path)
    sink.begin_staging()
    sink.stage(Artifact(Kind.GRAFANA_DASHBOARD, "d0", "d0.json", b"{}", "component:default/a"))
    _FailingSyncfs(monkeypatch, lambda name: name.startswith("obsctl-flush-"), errno.EIO)
    sink.start_flush()
    with caplog.at_level(logging.WARNING, logger="obsctl.sinks.files"):
        sink.end_staging()
    assert [r.getMessage() for r in caplog.records if "flushing" in r.getMessage() and "Input/output error"
            in r.getMessage()]
    assert not list(tmp_path.glob(f"{STAGING_PREFIX}*")) and not (tmp_path / "d0.json").exists()
