"""The reconcile loop: converge, idempotence, safety rules (outage, incomplete, mass delete, skipped
entities), per-artifact retry classes, and waking."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from obsctl.app import load_templates
from obsctl.config import load_settings
from obsctl.errors import PermanentError, TemporaryError
from obsctl.model.artifact import Artifact, DesiredState, Kind, desired_state
from obsctl.model.entities import Catalog
from obsctl.model.status import ArtifactState, ArtifactStatus
from obsctl.reconcile.apply import RetryPolicy
from obsctl.reconcile.loop import LoopConfig, Reconciler
from obsctl.sinks.base import Observed
from obsctl.sinks.files import FilesSink
from obsctl.sources.base import FetchResult
from obsctl.spec.load import LoadResult, SourceFile, load_catalog

TEMPLATES = load_templates(load_settings())


def doc(name: str, objective: float = 99.9, owner: str = "team-a") -> bytes:
    return (f"apiVersion: obsctl.dev/v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  owner: {owner}\n"
            f"  slos:\n    - name: availability\n      objective: {objective}\n      sli:\n"
            f"        availability: {{}}\n").encode()


def render(catalog: Catalog) -> DesiredState:
    """A small pure renderer: one rule file per service, one per team (an aggregate)."""
    arts: list[Artifact] = []
    teams: dict[str, list[str]] = {}
    for svc in catalog.services:
        body = "".join(f"{s.name}: {s.objective}\n" for s in svc.slos)
        arts.append(Artifact(Kind.PROMETHEUS_RULES, f"{svc.ref.namespace}/{svc.ref.name}",
                             f"rules/{svc.ref.name}.yml", body.encode(), str(svc.ref)))
        teams.setdefault(svc.team.name, []).append(svc.ref.name)
    for team, members in teams.items():
        arts.append(Artifact(Kind.GRAFANA_DASHBOARD, f"team/{team}", f"dash/{team}.json",
                             ("\n".join(sorted(members)) + "\n").encode(), f"group:default/{team}"))
    return desired_state(arts)


def load(files: list[SourceFile]) -> LoadResult:
    return load_catalog(files, TEMPLATES)


class MemSource:
    """An in-memory catalog (name -> bytes) that can be told to fail or read incompletely."""

    name = "memory"

    def __init__(self, docs: dict[str, bytes]) -> None:
        self.docs = dict(docs)
        self.fail: Exception | None = None
        self.complete = True

    def fetch(self) -> FetchResult:
        if self.fail is not None:
            raise self.fail
        return FetchResult([SourceFile(f"mem:{k}", v) for k, v in sorted(self.docs.items())], self.complete)


class FlakySink(FilesSink):
    """A real files sink that fails on request: per artifact id, or on listing."""

    def __init__(self, root: Path, **kw: Any) -> None:
        super().__init__(root, **kw)
        self.fail_put: dict[str, Exception] = {}
        self.fail_list: Exception | None = None
        self.puts: list[str] = []

    def list_owned(self, deep: bool = True) -> dict[str, Observed]:
        if self.fail_list is not None:
            raise self.fail_list
        return super().list_owned(deep)

    def put(self, artifact: Artifact) -> None:
        self.puts.append(artifact.id)
        if artifact.id in self.fail_put:
            raise self.fail_put[artifact.id]
        super().put(artifact)


class MemRecorder:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], ArtifactStatus] = {}
        self.meta: dict[str, Any] = {}
        self.audits: list[tuple[str, str, str, dict[str, Any]]] = []

    def save_statuses(self, statuses: list[ArtifactStatus]) -> None:
        self.rows.update({s.key: s for s in statuses})

    def delete_statuses(self, keys: list[tuple[str, str]]) -> None:
        for k in keys:
            self.rows.pop(k, None)

    def load_statuses(self) -> list[ArtifactStatus]:
        return list(self.rows.values())

    def audit(self, actor: str, action: str, target: str = "", detail: Any = None) -> None:
        self.audits.append((actor, action, target, dict(detail or {})))

    def set_meta(self, key: str, value: Any) -> None:
        self.meta[key] = value

    def get_meta(self, key: str) -> Any:
        return self.meta.get(key)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


FIVE = {n: doc(n) for n in ("a", "b", "c", "d", "e")}
NO_RETRY = RetryPolicy(attempts=1, sleep=lambda s: None)


def make(tmp_path: Path, docs: Mapping[str, bytes] = FIVE, **cfg: Any
         ) -> tuple[Reconciler, MemSource, FlakySink, Clock, MemRecorder]:
    src = MemSource(dict(docs))
    sink = FlakySink(tmp_path / "out")
    clock = Clock()
    rec = MemRecorder()
    r = Reconciler(src, load, render, [sink], config=LoopConfig(retry=NO_RETRY, **cfg), recorder=rec, clock=clock)
    return r, src, sink, clock, rec


def test_converges_then_writes_nothing(tmp_path: Path) -> None:
    r, _src, sink, _clock, rec = make(tmp_path)
    report = r.run_once()
    assert report.complete and report.services == 5
    assert report.sinks[0].summary["create"] == 6
    assert set(files(tmp_path / "out")) == {f"rules/{n}.yml" for n in "abcde"} | {"dash/team-a.json"}
    assert r.ready.is_set()
    sink.puts.clear()
    again = r.run_once()
    assert again.sinks[0].summary == {"create": 0, "update": 0, "delete": 0, "unchanged": 6}
    assert sink.puts == []
    assert {s.state for s in r.snapshot()} == {ArtifactState.APPLIED}
    assert len(rec.rows) == 6 and rec.meta["baseline_services"] == 5


def test_change_updates_only_that_artifact_and_removal_prunes(tmp_path: Path) -> None:
    r, src, sink, _clock, _rec = make(tmp_path)
    r.run_once()
    sink.puts.clear()
    src.docs["c"] = doc("c", 99.5)
    report = r.run_once()
    assert report.sinks[0].summary["update"] == 1
    assert sink.puts == ["prometheus-rules/default/c"]
    assert "0.995" in (tmp_path / "out/rules/c.yml").read_text()
    del src.docs["c"]
    report = r.run_once()
    assert report.sinks[0].summary["delete"] == 1
    assert not (tmp_path / "out/rules/c.yml").exists()
    assert ("files", "prometheus-rules/default/c") not in r.statuses


def test_catalog_outage_writes_and_deletes_nothing(tmp_path: Path) -> None:
    r, src, _sink, _clock, _rec = make(tmp_path)
    r.run_once()
    before = files(tmp_path / "out")
    src.fail = TemporaryError("catalog down", retry_after=7)
    report = r.run_once()
    assert not report.catalog_ok and "catalog down" in report.catalog_error
    assert report.sinks == [] and files(tmp_path / "out") == before
    assert r._seconds_to_next(time.monotonic() + 100) >= 6.5  # Retry-After honoured for the catalog retry


def test_outage_before_first_round_is_not_ready(tmp_path: Path) -> None:
    r, src, _sink, _clock, _rec = make(tmp_path)
    src.fail = TemporaryError("down")
    r.run_once()
    assert not r.ready.is_set()
    src.fail = None
    r.run_once()
    assert r.ready.is_set()


def test_incomplete_catalog_never_prunes_and_keeps_missing_services(tmp_path: Path) -> None:
    r, src, _sink, _clock, _rec = make(tmp_path)
    r.run_once()
    src.complete = False
    del src.docs["a"]
    report = r.run_once()
    assert not report.prune and report.sinks[0].summary["delete"] == 0
    assert (tmp_path / "out/rules/a.yml").exists()
    # the aggregate still lists the service that the incomplete read missed
    assert "a\n" in (tmp_path / "out/dash/team-a.json").read_text()
    assert not report.complete


def test_mass_delete_is_refused_and_reported_until_allowed(tmp_path: Path) -> None:
    r, src, _sink, _clock, rec = make(tmp_path)
    r.run_once()
    before = files(tmp_path / "out")
    src.docs = {"a": doc("a", 99.0)}
    report = r.run_once()
    assert report.prune_refused and "shrank from 5 to 1" in report.prune_refused[0]
    assert files(tmp_path / "out") == before  # not trusted for anything: no deletes, no rewrites
    # still refused on the next round: the baseline does not move on a refused shrink
    assert r.run_once().prune_refused
    assert rec.meta["baseline_services"] == 5
    r.config.allow_mass_delete = True
    report = r.run_once()
    assert not report.prune_refused and report.sinks[0].summary["delete"] == 4
    assert report.sinks[0].summary["update"] == 2  # a's new objective, the team dashboard
    assert set(files(tmp_path / "out")) == {"rules/a.yml", "dash/team-a.json"}


def test_sink_level_mass_delete_guard(tmp_path: Path) -> None:
    """The catalog keeps its size but renders far less: the per-sink guard refuses."""
    r, src, _sink, _clock, _rec = make(tmp_path, max_delete_fraction=0.3)
    r.run_once()
    src.docs = {n: doc(n, owner=f"team-{n}") for n in "abcde"}  # new team dashboards, old one pruned
    report = r.run_once()
    assert not report.prune_refused
    src.docs = {"a": doc("a"), "b": doc("b"), "c": doc("c"), "d": doc("d"), "e": doc("e")}
    r.config.max_delete_fraction = 0.0
    report = r.run_once()
    assert report.sinks[0].prune_refused  # 5 team dashboards to delete out of 11 owned
    assert (tmp_path / "out/dash/team-b.json").exists()


def test_skipped_entity_keeps_last_known_good(tmp_path: Path) -> None:
    r, src, sink, _clock, _rec = make(tmp_path)
    r.run_once()
    good = (tmp_path / "out/rules/b.yml").read_text()
    src.docs["b"] = doc("b", 150)  # objective out of range: the loader skips b
    sink.puts.clear()
    report = r.run_once()
    assert "component:default/b" in report.skipped and report.carried == ["component:default/b"]
    assert report.problems and sink.puts == []
    assert (tmp_path / "out/rules/b.yml").read_text() == good
    src.docs["b"] = b"apiVersion: obsctl.dev/v1\nkind: Service\nmetadata: {name: b\n"  # YAML syntax error
    report = r.run_once()
    assert report.carried == ["component:default/b"] and (tmp_path / "out/rules/b.yml").exists()
    src.docs["b"] = doc("b", 99.0)
    assert r.run_once().sinks[0].summary["update"] == 1


def test_skipped_entity_is_protected_after_a_restart(tmp_path: Path) -> None:
    r, src, _sink, clock, rec = make(tmp_path)
    r.run_once()
    src.docs["b"] = doc("b", 150)
    # a new process: no last-known-good model in memory, only the recorded statuses
    r2 = Reconciler(src, load, render, [FilesSink(tmp_path / "out")], config=LoopConfig(retry=NO_RETRY),
                    recorder=rec, clock=clock)
    report = r2.run_once()
    assert report.sinks[0].summary["delete"] == 0
    assert (tmp_path / "out/rules/b.yml").exists()


def test_failing_listing_skips_only_that_sink(tmp_path: Path) -> None:
    src = MemSource(FIVE)
    bad = FlakySink(tmp_path / "bad", kinds=[Kind.PROMETHEUS_RULES], name="rules")
    good = FlakySink(tmp_path / "good", kinds=[Kind.GRAFANA_DASHBOARD], name="dash")
    r = Reconciler(src, load, render, [bad, good], config=LoopConfig(retry=NO_RETRY))
    bad.fail_list = TemporaryError("rules backend down")
    report = r.run_once()
    assert not report.sinks[0].listed and "rules backend down" in report.sinks[0].error
    assert report.sinks[1].summary["create"] == 1 and not report.complete and not r.ready.is_set()
    assert all(s.state is ArtifactState.PENDING for s in r.snapshot() if s.sink == "rules")
    assert not (tmp_path / "bad").exists()


def test_permanent_failure_is_not_retried_until_digest_change_or_full_resync(tmp_path: Path) -> None:
    r, src, sink, _clock, _rec = make(tmp_path)
    sink.fail_put["prometheus-rules/default/b"] = PermanentError("rejected by validation")
    report = r.run_once(full=True)
    assert report.sinks[0].failed == 1 and (tmp_path / "out/rules/a.yml").exists()
    st = r.statuses[("files", "prometheus-rules/default/b")]
    assert st.state is ArtifactState.FAILED_PERMANENT and st.error == "rejected by validation"
    sink.puts.clear()
    for _ in range(3):
        r.run_once(full=False)
    assert sink.puts == []  # no retry storm
    assert r.statuses[("files", "prometheus-rules/default/b")].state is ArtifactState.HELD
    src.docs["b"] = doc("b", 99.5)
    r.run_once(full=False)
    assert sink.puts == ["prometheus-rules/default/b"]  # new desired digest: tried once
    sink.puts.clear()
    r.run_once(full=True)
    assert sink.puts == ["prometheus-rules/default/b"]  # full resync: tried again
    del sink.fail_put["prometheus-rules/default/b"]
    r.run_once(full=True)
    assert r.statuses[("files", "prometheus-rules/default/b")].state is ArtifactState.APPLIED


def test_temporary_failure_backs_off_and_honours_retry_after(tmp_path: Path) -> None:
    r, _src, sink, clock, _rec = make(tmp_path, backoff_base=2.0)
    sink.fail_put["prometheus-rules/default/b"] = TemporaryError("503", retry_after=30)
    r.run_once(full=True)
    st = r.statuses[("files", "prometheus-rules/default/b")]
    assert st.state is ArtifactState.FAILED_TEMPORARY and st.next_retry_at == clock.now + 30
    sink.puts.clear()
    clock.now += 10
    r.run_once(full=True)
    assert sink.puts == []  # still inside Retry-After, even on a full resync
    clock.now += 25
    r.run_once(full=False)
    assert sink.puts == ["prometheus-rules/default/b"]
    st = r.statuses[("files", "prometheus-rules/default/b")]
    assert st.failures == 2 and st.next_retry_at == clock.now + 30  # max(2 * 2, Retry-After)
    sink.fail_put["prometheus-rules/default/b"] = TemporaryError("503")
    clock.now += 31
    r.run_once(full=False)
    assert r.statuses[("files", "prometheus-rules/default/b")].next_retry_at == clock.now + 8  # 2 * 2**2


def test_in_round_retries_use_the_retry_policy(tmp_path: Path) -> None:
    r, _src, sink, _clock, _rec = make(tmp_path)
    r.config.retry = RetryPolicy(attempts=3, base_delay=0.0, sleep=lambda s: None)
    calls = {"n": 0}
    real_put = sink.put

    def flaky(a: Artifact) -> None:
        if a.id.endswith("/c") and calls["n"] < 2:
            calls["n"] += 1
            raise TemporaryError("blip")
        real_put(a)

    sink.put = flaky  # type: ignore[method-assign]
    r.run_once()
    assert r.statuses[("files", "prometheus-rules/default/c")].state is ArtifactState.APPLIED


def test_loop_thread_wakes_on_events_and_stops(tmp_path: Path) -> None:
    r, src, _sink, _clock, _rec = make(tmp_path, resync_seconds=3600, debounce_seconds=0.0)
    r.start()
    try:
        assert r.ready.wait(10)
        src.docs["f"] = doc("f")
        t0 = time.monotonic()
        r.wake("test")
        deadline = t0 + 5
        while r.rounds < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (tmp_path / "out/rules/f.yml").exists()
        assert r.last_report is not None and "test" in r.last_report.reason
    finally:
        r.stop(10)
    assert not any(t.name == "obsctl-reconcile" for t in threading.enumerate())


def test_plan_is_a_dry_run(tmp_path: Path) -> None:
    r, src, _sink, _clock, _rec = make(tmp_path)
    r.run_once()
    src.docs["a"] = doc("a", 99.0)
    plan = r.plan()
    changes = plan["sinks"]["files"]["changes"]
    assert [c["action"] for c in changes] == ["update"] and "+availability: 0.99" in changes[0]["diff"]
    assert "0.999" in (tmp_path / "out/rules/a.yml").read_text()


def test_renderer_bug_is_reported_not_raised(tmp_path: Path) -> None:
    def broken(_c: Catalog) -> DesiredState:
        raise ValueError("two artifacts share the id x")

    r = Reconciler(MemSource(FIVE), load, broken, [FilesSink(tmp_path)], config=LoopConfig(retry=NO_RETRY))
    report = r.run_once()
    assert "two artifacts share the id" in report.error and not r.ready.is_set()


def test_follower_does_nothing_and_lost_leadership_stops_writing(tmp_path: Path) -> None:
    answers = [False]
    rules = FilesSink(tmp_path / "rules", kinds=[Kind.PROMETHEUS_RULES], name="rules")
    dash = FilesSink(tmp_path / "dash", kinds=[Kind.GRAFANA_DASHBOARD], name="dash")
    rec = MemRecorder()
    r = Reconciler(MemSource(FIVE), load, render, [rules, dash], config=LoopConfig(retry=NO_RETRY), recorder=rec,
                   is_leader=lambda: answers.pop(0) if answers else False)
    report = r.run_once()
    assert not report.leader and report.sinks == [] and "last_round" not in rec.meta
    assert not (tmp_path / "rules").exists()
    answers[:] = [True, True]  # leader at the start and for the first sink, then the lock is gone
    report = r.run_once()
    assert [s.name for s in report.sinks] == ["rules"] and "leadership lost" in report.error
    assert (tmp_path / "rules").exists() and not (tmp_path / "dash").exists()


def test_an_unchanged_catalog_is_not_rendered_again(tmp_path: Path) -> None:
    calls: list[int] = []

    def counting(catalog: Catalog) -> DesiredState:
        calls.append(len(catalog.services))
        return render(catalog)

    src = MemSource(FIVE)
    r = Reconciler(src, load, counting, [FilesSink(tmp_path)], config=LoopConfig(retry=NO_RETRY))
    r.run_once()
    r.run_once()
    assert calls == [5]
    src.docs["f"] = doc("f")
    r.run_once()
    assert calls == [5, 6]


@pytest.mark.parametrize("recorded", [True, False], ids=["statuses-recorded", "no-recorder"])
def test_a_restarted_loop_deletes_nothing_while_a_file_does_not_parse(tmp_path: Path, recorded: bool) -> None:
    """After a restart there is no last good model of what a file held: while it does not parse (an error that
    names no entity), the read is not whole, so no absence is counted and nothing is pruned; once it parses
    again nothing was lost."""
    r, src, sink, clock, rec = make(tmp_path, FIVE, deletion_grace_seconds=120, deletion_reads=2)
    r.run_once(full=True)
    before = files(tmp_path / "out")
    assert "rules/c.yml" in before
    good = src.docs["c"]
    src.docs["c"] = b"apiVersion: x\nmetadata: {name: [unclosed\n"
    again = Reconciler(src, load, render, [sink], recorder=rec if recorded else None, clock=clock,
                       config=LoopConfig(retry=NO_RETRY, deletion_grace_seconds=120, deletion_reads=2))
    for _ in range(4):
        report = again.run_once(full=True)
        clock.now += 100
        assert not report.prune and report.problems
        assert files(tmp_path / "out")["rules/c.yml"] == before["rules/c.yml"]  # (c's team aggregate lacks it)
    src.docs["c"] = good
    report = again.run_once(full=True)
    assert report.prune and files(tmp_path / "out") == before
