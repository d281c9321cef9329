"""The files sink lists from its manifest of digests and writes it incrementally.

Fast listings trust a recorded digest only while the file's stat is the one seen when it was last
hashed (a hand edit or a deletion is still found); deep listings hash everything; one changed
artifact appends one journal line instead of rewriting the manifest; a fresh process sees the same
ownership as the writer.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Collection
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace

from obsctl.app import load_templates
from obsctl.config import load_settings
from obsctl.model.artifact import Artifact, DesiredState, Kind, Observed, desired_state
from obsctl.model.entities import Catalog
from obsctl.reconcile.apply import apply_plan
from obsctl.reconcile.converge import Policy, converge
from obsctl.reconcile.loop import LoopConfig, Reconciler
from obsctl.reconcile.plan import Action, make_plan
from obsctl.reconcile.tracing import TracedSink
from obsctl.service.runtime import FencedSink
from obsctl.sinks import files as files_module
from obsctl.sinks.collectors import collector_sink
from obsctl.sinks.files import JOURNAL_PREFIX, MANIFEST, Entry, FilesSink, manifest_text
from obsctl.sources.base import FetchResult
from obsctl.spec.load import SourceFile, load_catalog

SETTLE = 0.05  # seconds; the tests wait longer than this before trusting a stat


def art(key: str, body: str = "a: 1\n", kind: Kind = Kind.PROMETHEUS_RULES) -> Artifact:
    return Artifact(kind, key, f"rules/{key}.yml", body.encode(), f"component:default/{key}")


def written(root: Path, n: int = 10) -> tuple[FilesSink, dict[str, Artifact]]:
    """A sink that wrote n rule files and has hashed them once after they settled (as serve's rounds do)."""
    sink = FilesSink(root, settle_seconds=SETTLE)
    desired = desired_state([art(f"s{i}", f"s{i}: 1\n") for i in range(n)])
    assert apply_plan(sink, make_plan(desired, sink.list_owned())).writes == n
    time.sleep(SETTLE * 2)
    assert make_plan(desired, sink.list_owned(deep=False)).writes == []  # hashes them once, now settled
    return sink, desired


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every file body the sink's listings read."""
    seen: list[Path] = []
    real = files_module._read_with_stat

    def counting(path: str) -> tuple[bytes, os.stat_result]:
        seen.append(path)
        return real(path)

    monkeypatch.setattr(files_module, "_read_with_stat", counting)
    return seen


def test_fast_listing_of_unchanged_files_reads_no_body_and_a_no_change_round_writes_nothing(
        tmp_path: Path, reads: list[Path]) -> None:
    sink, desired = written(tmp_path)
    manifest = (tmp_path / MANIFEST).stat()
    reads.clear()
    owned = sink.list_owned(deep=False)
    assert reads == []
    assert all(o.body is None and not o.drifted for o in owned.values())
    plan = make_plan(desired, owned)
    assert plan.summary()["unchanged"] == 10 and plan.writes == []
    result = apply_plan(sink, plan)
    assert result.writes == 0 and reads == []
    after = (tmp_path / MANIFEST).stat()
    assert (after.st_ino, after.st_mtime_ns) == (manifest.st_ino, manifest.st_mtime_ns)
    assert not list(tmp_path.glob(JOURNAL_PREFIX + "*"))
    # a body is still there when someone asks for it (a diff)
    assert owned["prometheus-rules/s3"].content() == b"s3: 1\n"


def test_deep_listing_hashes_every_file(tmp_path: Path, reads: list[Path]) -> None:
    sink, _desired = written(tmp_path)
    reads.clear()
    sink.list_owned(deep=True)
    assert len(reads) == 10


def test_a_hand_edit_keeping_size_and_mtime_is_found_by_a_fast_listing(tmp_path: Path) -> None:
    sink, desired = written(tmp_path)
    path = tmp_path / "rules" / "s4.yml"
    before = path.stat()
    with path.open("r+b") as fh:  # edited in place, same size, and the mtime put back
        fh.write(b"s4: 9\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    owned = sink.list_owned(deep=False)
    assert owned["prometheus-rules/s4"].drifted
    assert owned["prometheus-rules/s4"].body == b"s4: 9\n"
    plan = make_plan(desired, owned)
    assert [(c.action, c.id) for c in plan.writes] == [(Action.UPDATE, "prometheus-rules/s4")]
    assert "-s4: 9\n+s4: 1\n" in plan.writes[0].diff()
    apply_plan(sink, plan)
    assert path.read_text() == "s4: 1\n"


def test_a_deleted_file_is_found_by_a_fast_listing_and_rewritten(tmp_path: Path) -> None:
    sink, desired = written(tmp_path)
    (tmp_path / "rules" / "s2.yml").unlink()
    owned = sink.list_owned(deep=False)
    assert owned["prometheus-rules/s2"].drifted
    result = apply_plan(sink, make_plan(desired, owned))
    assert result.writes == 1
    assert (tmp_path / "rules" / "s2.yml").read_text() == "s2: 1\n"


def test_files_obsctl_just_wrote_are_trusted_without_reading_them(tmp_path: Path, reads: list[Path]) -> None:
    sink = FilesSink(tmp_path, settle_seconds=3600)
    desired = desired_state([art(f"s{i}") for i in range(20)])
    apply_plan(sink, make_plan(desired, sink.list_owned()))
    assert make_plan(desired, sink.list_owned(deep=False)).writes == [] and reads == []


def test_a_file_changed_by_someone_else_is_hashed_until_it_settles(tmp_path: Path, reads: list[Path]) -> None:
    # the editor may still be writing: a second write of the same size in the same timestamp tick
    # would look unchanged to stat, so a recently changed file is read on every listing
    sink = FilesSink(tmp_path, settle_seconds=3600)
    desired = desired_state([art("a")])
    apply_plan(sink, make_plan(desired, sink.list_owned()))
    path = tmp_path / "rules" / "a.yml"
    path.write_text("a: 2\n")
    assert sink.list_owned(deep=False)["prometheus-rules/a"].drifted
    path.write_text("a: 1\n")  # put back by hand: not drifted, but just changed
    reads.clear()
    for _ in range(2):
        assert not sink.list_owned(deep=False)["prometheus-rules/a"].drifted
    assert len(reads) == 2


def test_an_unchanged_file_whose_desired_body_changed_shows_its_diff(tmp_path: Path) -> None:
    sink, desired = written(tmp_path)
    changed = dict(desired)
    changed["prometheus-rules/s1"] = art("s1", "s1: 2\n")
    plan = make_plan(changed, sink.list_owned(deep=False))
    assert [c.id for c in plan.writes] == ["prometheus-rules/s1"]
    assert "-s1: 1\n+s1: 2\n" in plan.writes[0].diff()


def test_one_changed_artifact_appends_to_the_journal_and_a_new_process_sees_it(tmp_path: Path) -> None:
    sink, desired = written(tmp_path, n=100)
    manifest = (tmp_path / MANIFEST).stat()
    journal = tmp_path / f"{JOURNAL_PREFIX}files"
    changed = dict(desired)
    changed["prometheus-rules/s7"] = art("s7", "s7: 2\n")
    assert apply_plan(sink, make_plan(changed, sink.list_owned(deep=False))).writes == 1
    after = (tmp_path / MANIFEST).stat()
    assert (after.st_ino, after.st_mtime_ns) == (manifest.st_ino, manifest.st_mtime_ns)  # not rewritten
    assert len(journal.read_text().splitlines()) == 1
    fresh = FilesSink(tmp_path).list_owned()
    assert fresh["prometheus-rules/s7"].digest == changed["prometheus-rules/s7"].digest
    assert not fresh["prometheus-rules/s7"].drifted and len(fresh) == 100
    # the journal is folded into the manifest once it holds an eighth as many lines as the manifest
    for i in range(12):
        changed[f"prometheus-rules/s{i + 20}"] = art(f"s{i + 20}", "x: 2\n")
        apply_plan(sink, make_plan(changed, sink.list_owned(deep=False)))
    assert not journal.exists()
    files = json.loads((tmp_path / MANIFEST).read_text())["files"]
    assert files["rules/s20.yml"]["digest"] == changed["prometheus-rules/s20"].digest
    assert files["rules/s7.yml"]["digest"] == changed["prometheus-rules/s7"].digest
    assert {o.digest for o in FilesSink(tmp_path).list_owned().values()} == {a.digest for a in changed.values()}


def test_deletes_are_journalled_and_seen_by_a_new_process(tmp_path: Path) -> None:
    sink, desired = written(tmp_path, n=100)
    fewer = {k: v for k, v in desired.items() if k != "prometheus-rules/s5"}
    assert apply_plan(sink, make_plan(fewer, sink.list_owned(deep=False))).writes == 1
    assert not (tmp_path / "rules" / "s5.yml").exists()
    assert sorted(FilesSink(tmp_path).list_owned()) == sorted(fewer)


def test_sinks_sharing_a_root_keep_each_others_records(tmp_path: Path) -> None:
    rules = FilesSink(tmp_path, {Kind.PROMETHEUS_RULES}, name="rules")
    collectors = collector_sink(tmp_path)
    agent = Artifact(Kind.COLLECTOR_AGENT, "default/a", "otel/a.yaml", b"receivers: {}\n", "component:default/a")
    for sink, desired in ((rules, desired_state([art("r1"), art("r2")])), (collectors, desired_state([agent]))):
        apply_plan(sink, make_plan(desired, sink.list_owned()))
    # each folded its own journal: both sinks' records are in the one manifest
    assert sorted(json.loads((tmp_path / MANIFEST).read_text())["files"]) == ["otel/a.yaml", "rules/r1.yml",
                                                                              "rules/r2.yml"]
    apply_plan(rules, make_plan(desired_state([art("r1"), art("r2", "b: 2\n")]), rules.list_owned()))
    assert list(collectors.list_owned(deep=False)) == [agent.id] == list(collectors.list_scoped(()))
    assert list(rules.list_scoped(())) == ["prometheus-rules/r1", "prometheus-rules/r2"]
    assert sorted(FilesSink(tmp_path).list_owned()) == [agent.id, "prometheus-rules/r1", "prometheus-rules/r2"]


def test_a_journal_line_cut_short_by_a_crash_does_not_swallow_the_next(tmp_path: Path) -> None:
    tmp_path.joinpath(f"{JOURNAL_PREFIX}files").write_text('{"path": "rules/x.yml", "id": "prometheus-ru')
    sink = FilesSink(tmp_path)
    sink.put(art("a"))  # no finish(): the record stays in the journal
    assert list(FilesSink(tmp_path).list_owned()) == ["prometheus-rules/a"]


def test_a_failed_write_leaves_ownership_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    foreign = tmp_path / "rules" / "b.yml"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("hand: written\n")
    sink = FilesSink(tmp_path)
    apply_plan(sink, make_plan(desired_state([art("a")]), sink.list_owned()))
    refuse_next = False
    real_append = FilesSink._append

    def full_disk(path: Path, data: bytes, mode: int = 0o644) -> None:
        nonlocal refuse_next
        refuse_next = True  # the journal line that would revert the announcement does not fit either
        raise OSError(28, "No space left on device")

    def append(self: FilesSink, record: dict[str, object]) -> None:
        nonlocal refuse_next
        if refuse_next:
            refuse_next = False
            raise OSError(28, "No space left on device")
        real_append(self, record)

    monkeypatch.setattr(files_module, "atomic_write", full_disk)
    monkeypatch.setattr(FilesSink, "_append", append)
    result = apply_plan(sink, make_plan(desired_state([art("a", "a: 2\n"), art("b")]), sink.list_owned()))
    # both writes failed, and so did folding the journal into the manifest (the journal stays)
    assert sorted(o.id for o in result.failed) == ["finish", "prometheus-rules/a", "prometheus-rules/b"]
    monkeypatch.undo()
    # b.yml was never written: not ours, in this process or the next; a.yml is still ours (as it was here;
    # a new process reads the announced digest: drift, rewritten when desired)
    assert list(sink.list_owned()) == ["prometheus-rules/a"] and not sink.list_owned()["prometheus-rules/a"].drifted
    assert list(FilesSink(tmp_path).list_owned()) == ["prometheus-rules/a"]
    assert converge({}, [FilesSink(tmp_path)], Policy(max_delete_fraction=1.0)).failed == []
    assert foreign.read_text() == "hand: written\n" and not (tmp_path / "rules" / "a.yml").exists()


DOC = b"""apiVersion: obsctl.dev/v1
kind: Service
metadata:
  name: checkout
spec:
  owner: team-a
  slos:
    - name: availability
      objective: 99.9
      sli:
        availability: {}
"""


class StaticSource:
    """One catalog file that never changes."""

    name = "static"

    def fetch(self) -> FetchResult:
        return FetchResult([SourceFile("mem:checkout", DOC)], True)


def one_rule_file(catalog: Catalog) -> DesiredState:
    return desired_state([Artifact(Kind.PROMETHEUS_RULES, f"{s.ref.namespace}/{s.ref.name}", f"{s.ref.name}.yml",
                                   b"groups: []\n", str(s.ref)) for s in catalog.services])


class DepthRecorder(FilesSink):
    """A files sink remembering the depth of every listing."""

    depths: list[bool]

    def list_owned(self, deep: bool = True) -> dict[str, Observed]:
        self.depths.append(deep)
        return super().list_owned(deep)

    def list_scoped(self, scope: Collection[str], deep: bool = False) -> dict[str, Observed]:
        self.depths.append(deep)
        return super().list_scoped(scope, deep)


def test_serve_lists_deep_on_its_first_full_resync_then_fast_until_the_deep_interval(tmp_path: Path) -> None:
    templates = load_templates(load_settings())
    source = StaticSource()
    hourly = DepthRecorder(tmp_path / "a", name="hourly")
    every = DepthRecorder(tmp_path / "b", name="every", deep_every_seconds=0)
    hourly.depths, every.depths = [], []
    r = Reconciler(source, lambda files: load_catalog(files, templates), one_rule_file, [hourly, every],
                   config=LoopConfig())
    r.run_once(full=True)
    r.run_once(full=False)
    r.run_once(full=True)
    assert hourly.depths == [True, False, False]
    assert every.depths == [True, False, True]


def test_a_scoped_listing_reads_only_the_scope_and_counts_the_rest(tmp_path: Path, reads: list[Path]) -> None:
    sink, desired = written(tmp_path)
    (tmp_path / "rules" / "s1.yml").unlink()  # outside the scope: not looked at
    (tmp_path / "rules" / "s2.yml").write_text("s2: edited\n")  # in the scope: found
    reads.clear()
    owned = sink.list_scoped({"prometheus-rules/s2", "prometheus-rules/new"})
    assert sorted(owned) == sorted(desired)
    assert [aid for aid, o in owned.items() if o.drifted] == ["prometheus-rules/s2"]
    assert [Path(p) for p in reads] == [tmp_path / "rules" / "s2.yml"]
    assert not owned["prometheus-rules/s1"].drifted and owned["prometheus-rules/s1"].digest == desired[
        "prometheus-rules/s1"].digest


def test_an_event_round_plans_its_scope_and_the_next_full_round_repairs_the_rest(tmp_path: Path) -> None:
    sink, desired = written(tmp_path)
    traced = TracedSink(sink, trace.get_tracer("test"))
    (tmp_path / "rules" / "s1.yml").unlink()
    new = art("new")
    grown = {**desired, new.id: new}
    event = converge(grown, [traced], Policy(scope=frozenset({new.id})))
    assert [(c.action, c.id) for c in event.runs[0].plan.writes] == [(Action.CREATE, new.id)]
    assert len(event.runs[0].owned) == 10  # everything owned is still counted
    full = converge(grown, [traced], Policy())
    assert [(c.action, c.id) for c in full.runs[0].plan.writes] == [(Action.UPDATE, "prometheus-rules/s1")]
    assert (tmp_path / "rules" / "s1.yml").read_text() == "s1: 1\n"


def test_the_serve_wrappers_pass_a_scoped_listing_through(tmp_path: Path, reads: list[Path]) -> None:
    sink, _desired = written(tmp_path)
    for wrapped in (FencedSink(sink, lambda: True), TracedSink(FencedSink(sink, lambda: True), trace.get_tracer("t"))):
        (tmp_path / "rules" / "s3.yml").write_text("s3: edited\n")
        reads.clear()
        owned = wrapped.list_scoped({"prometheus-rules/s3"})
        assert len(owned) == 10 and owned["prometheus-rules/s3"].drifted and len(reads) == 1
    # a wrapped sink without scoped listings lists everything
    plain = TracedSink(FencedSink(FilesOnlyOwned(tmp_path), lambda: True), trace.get_tracer("t"))
    assert len(plain.list_scoped({"prometheus-rules/s3"})) == 10


class FilesOnlyOwned:
    """A sink with list_owned only (no ListsScoped)."""

    name = "plain"
    kinds = frozenset({Kind.PROMETHEUS_RULES})

    def __init__(self, root: Path) -> None:
        self._inner = FilesSink(root)

    def list_owned(self, deep: bool = True) -> dict[str, Observed]:
        return self._inner.list_owned(deep)


def test_a_scoped_listing_knows_the_sinks_own_writes_and_deletes(tmp_path: Path) -> None:
    sink, desired = written(tmp_path)
    current = dict(desired)
    for step in range(6):  # creates, updates, deletes and a move, each followed by an empty-scope listing
        if step % 3 == 0:
            current.pop(sorted(current)[0])
        elif step % 3 == 1:
            new = art(f"n{step}", f"n: {step}\n")
            current[new.id] = new
        else:
            key = sorted(current)[-1]
            moved = current[key]
            current[key] = Artifact(moved.kind, moved.key, f"moved/{moved.key}.yml", b"moved: 1\n", moved.owner)
        converge(current, [sink], Policy(scope=frozenset(current) | frozenset(sink.list_scoped(()))))
        scoped = sink.list_scoped(())
        fresh = FilesSink(tmp_path).list_owned()
        assert {k: o.digest for k, o in scoped.items()} == {k: o.digest for k, o in fresh.items()} == {
            k: a.digest for k, a in current.items()}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), st.tuples(st.text(), st.text(), st.text()), max_size=6))
def test_the_manifest_text_is_the_indented_json_dump(raw: dict[str, tuple[str, str, str]]) -> None:
    files = {path: Entry(*fields) for path, fields in raw.items()}
    expected = json.dumps({"owner": "obsctl", "files": {p: files[p]._asdict() for p in sorted(files)}},
                          indent=2, sort_keys=True)
    assert manifest_text(files) == expected
    assert json.loads(manifest_text(files))["files"] == {p: e._asdict() for p, e in files.items()}
