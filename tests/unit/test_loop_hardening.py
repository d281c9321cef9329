"""The loop's hardening: no deletion on a blink (grace period and two complete reads, kept across a
restart), an explicit deregistration is immediate, a service that fails to render is isolated with
its last good artifacts kept, and sink errors of any kind (OSError included) are per-artifact failures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from obsctl.model.entities import Catalog
from obsctl.model.status import ArtifactState
from obsctl.reconcile.loop import LoopConfig, Reconciler
from obsctl.render.isolated import IsolatedRender, RenderFailure
from obsctl.sinks.files import FilesSink
from tests.unit.test_loop import FIVE, NO_RETRY, FlakySink, MemRecorder, MemSource, files, load, make, render


def test_a_blink_deletes_nothing_until_grace_and_two_complete_reads(tmp_path: Path) -> None:
    r, src, _sink, clock, _rec = make(tmp_path, deletion_grace_seconds=60, deletion_reads=2)
    r.run_once()
    out = tmp_path / "out"
    before = files(out)
    gone = src.docs.pop("c")  # a `git pull` removes the file for a moment
    report = r.run_once()
    assert report.complete and files(out) == before
    assert "default/c" in report.absent and any("component:default/c" in c for c in report.carried)
    src.docs["c"] = gone  # back before the grace ends: nothing was ever deleted
    clock.now += 30
    assert r.run_once().absent == {} and files(out) == before
    del src.docs["c"]
    r.run_once()
    clock.now += 61  # grace over, but this is only the second complete read since it vanished...
    report = r.run_once()
    assert "rules/c.yml" not in files(out)  # ...and the second read is enough
    assert report.absent == {}
    assert set(files(out)) == set(before) - {"rules/c.yml"}


def test_incomplete_reads_do_not_count_towards_the_grace(tmp_path: Path) -> None:
    r, src, _sink, clock, _rec = make(tmp_path, deletion_grace_seconds=10, deletion_reads=2)
    r.run_once()
    del src.docs["c"]
    src.complete = False
    for _ in range(3):
        clock.now += 20
        r.run_once()
    assert "rules/c.yml" in files(tmp_path / "out")
    src.complete = True
    r.run_once()
    assert "rules/c.yml" in files(tmp_path / "out")  # the grace counts from the first complete read
    clock.now += 11
    r.run_once()
    assert "rules/c.yml" not in files(tmp_path / "out")


def test_forget_is_immediate(tmp_path: Path) -> None:
    r, src, _sink, _clock, _rec = make(tmp_path, deletion_grace_seconds=3600, deletion_reads=2)
    r.run_once()
    del src.docs["c"]
    r.forget("default/c")  # the API's DELETE
    r.run_once()
    assert "rules/c.yml" not in files(tmp_path / "out")


def test_grace_survives_a_restart(tmp_path: Path) -> None:
    """After a restart the loop knows no last good model; owners recorded in the statuses, missing
    from the catalog, are protected by the same grace (counted from the recorded absence)."""
    r, src, _sink, clock, rec = make(tmp_path, deletion_grace_seconds=60, deletion_reads=2)
    r.run_once()
    del src.docs["c"]
    r.run_once()
    fresh = Reconciler(src, load, render, [FlakySink(tmp_path / "out")],
                       config=LoopConfig(retry=NO_RETRY, deletion_grace_seconds=60, deletion_reads=2),
                       recorder=rec, clock=clock)
    report = fresh.run_once()
    assert "rules/c.yml" in files(tmp_path / "out") and "default/c" in report.absent
    clock.now += 61
    fresh.run_once()
    assert "rules/c.yml" not in files(tmp_path / "out")


def isolating(broken: set[str]) -> Any:
    def renderer(catalog: Catalog) -> IsolatedRender:
        good = Catalog(tuple(s for s in catalog.services if s.name not in broken), catalog.teams)
        return IsolatedRender(render(good), {f"default/{n}": RenderFailure(f"component:default/{n}", "boom")
                                             for n in broken if any(s.name == n for s in catalog.services)})
    return renderer


def test_a_service_that_fails_to_render_is_isolated_with_its_last_good_artifacts(tmp_path: Path) -> None:
    src = MemSource(dict(FIVE))
    rec = MemRecorder()
    broken: set[str] = set()
    r = Reconciler(src, load, isolating(broken), [FilesSink(tmp_path / "out")],
                   config=LoopConfig(retry=NO_RETRY), recorder=rec)
    r.run_once()
    before = files(tmp_path / "out")
    src.docs["c"] = src.docs["c"].replace(b"99.9", b"99.5")  # a change that will not render
    src.docs["f"] = FIVE["a"].replace(b"name: a", b"name: f")
    broken.add("c")
    report = r.run_once()
    assert report.complete and report.isolated == {"default/c": "boom"}
    out = files(tmp_path / "out")
    assert out["rules/c.yml"] == before["rules/c.yml"]  # the last good artifact stays
    assert "rules/f.yml" in out  # the others go on
    assert rec.meta["isolated"] == {"default/c": "boom"}
    assert ("obsctl", "isolate", "default/c", {"error": "boom"}) in rec.audits
    broken.clear()  # fixed (renderers are pure: the same document renders the same, so it changes too)
    src.docs["c"] = src.docs["c"].replace(b"99.5", b"99.0")
    report = r.run_once()
    assert report.isolated == {} and "0.99" in files(tmp_path / "out")["rules/c.yml"]
    assert ("obsctl", "recover", "default/c", {}) in rec.audits


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_output_directory_fails_per_artifact_not_the_round(tmp_path: Path) -> None:
    _read_only_case(tmp_path, blocked=False)


def test_an_unwritable_output_path_fails_per_artifact_not_the_round(tmp_path: Path) -> None:
    """The same for every user, root included: a file stands where the sink needs a directory."""
    _read_only_case(tmp_path, blocked=True)


def test_an_oserror_in_a_sink_is_a_per_artifact_failure(tmp_path: Path) -> None:
    r, src, sink, _clock, _rec = make(tmp_path)
    sink.fail_put["prometheus-rules/default/b"] = PermissionError(13, "Read-only file system")
    report = r.run_once()
    assert not report.error and report.sinks[0].failed == 1
    states = {s.id: s for s in r.snapshot()}
    assert states["prometheus-rules/default/b"].state is ArtifactState.FAILED_PERMANENT
    assert "PermissionError" in states["prometheus-rules/default/b"].error
    assert states["prometheus-rules/default/a"].state is ArtifactState.APPLIED
    del src


def _read_only_case(tmp_path: Path, *, blocked: bool) -> None:
    out_ro = tmp_path / "ro"
    out_ro.mkdir()
    out_ok = tmp_path / "ok"
    src = MemSource(dict(FIVE))
    ro = FilesSink(out_ro, name="ro")
    ok = FlakySink(out_ok, name="ok")
    r = Reconciler(src, load, render, [ro, ok], config=LoopConfig(retry=NO_RETRY))
    if blocked:
        (out_ro / "rules").write_text("a file where the rules directory belongs\n")
    else:
        out_ro.chmod(0o555)
    try:
        report = r.run_once()
    finally:
        out_ro.chmod(0o755)
    assert not report.error
    assert set(files(out_ok)) >= {"rules/a.yml"}
    assert any(s.sink == "ro" and s.state is ArtifactState.FAILED_PERMANENT for s in r.snapshot())
