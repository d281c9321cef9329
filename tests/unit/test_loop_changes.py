"""An event round plans and writes only what changed since the sinks were last converged, and ends
exactly where a full round would; the safety rules hold the same way."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from obsctl.errors import PermanentError, PruneRefused, TemporaryError
from obsctl.model.artifact import Artifact, Kind
from obsctl.model.status import ArtifactState
from obsctl.reconcile.converge import Policy, converge
from obsctl.reconcile.loop import LoopConfig, Reconciler, RoundReport
from obsctl.sinks.files import FilesSink
from tests.unit.test_loop import FIVE, NO_RETRY, doc, files, load, make, render


def test_an_event_round_plans_only_what_changed(tmp_path: Path) -> None:
    many = {f"s{i:02d}": doc(f"s{i:02d}", owner=f"team-{i % 4}") for i in range(40)}
    r, src, sink, _clock, _rec = make(tmp_path, many)
    first = r.run_once(full=True)
    assert first.planned is None and first.sinks[0].summary["create"] == 44
    sink.puts.clear()
    src.docs["s05"] = doc("s05", 99.5, owner="team-1")  # one service (team-1's dashboard does not change)
    report = r.run_once(full=False)
    assert report.planned == 1 and report.sinks[0].summary == {"create": 0, "update": 1, "delete": 0,
                                                               "unchanged": 0}
    assert sink.puts == ["prometheus-rules/default/s05"]
    src.docs["new"] = doc("new", owner="team-2")  # a new service and its team's dashboard
    report = r.run_once(full=False)
    assert report.planned == 2 and sorted(sink.puts[1:]) == ["grafana-dashboard/team/team-2",
                                                             "prometheus-rules/default/new"]
    report = r.run_once(full=False)  # nothing changed: nothing planned
    assert report.planned == 0 and sum(report.sinks[0].summary.values()) == 0


def test_event_rounds_end_where_a_full_round_would(tmp_path: Path) -> None:
    rnd = random.Random(7)
    names = [f"s{i:02d}" for i in range(30)]
    r, src, _sink, _clock, _rec = make(tmp_path, {n: doc(n, owner=f"team-{i % 3}") for i, n in enumerate(names)})
    twin, twin_src, _tsink, _tclock, _trec = make(tmp_path / "twin", dict(src.docs))
    r.run_once(full=True)
    twin.run_once(full=True)
    for _ in range(25):
        op = rnd.choice(["edit", "move", "add", "remove"])
        name = rnd.choice(names)
        if op == "edit" and name in src.docs:
            src.docs[name] = doc(name, rnd.choice([99.0, 99.5, 99.9]), owner=f"team-{rnd.randrange(3)}")
        elif op == "move" and name in src.docs:
            src.docs[name] = doc(name, owner=f"team-{rnd.randrange(5)}")
        elif op == "add":
            new = f"n{rnd.randrange(100)}"
            src.docs[new] = doc(new, owner="team-9")
        elif op == "remove" and len(src.docs) > 20:
            src.docs.pop(name, None)
        twin_src.docs = dict(src.docs)
        event = r.run_once(full=False)
        full = twin.run_once(full=True)
        assert event.complete and full.complete and not event.prune_refused
        assert files(tmp_path / "out") == files(tmp_path / "twin" / "out")


def test_a_failed_write_is_retried_by_an_event_round_about_something_else(tmp_path: Path) -> None:
    r, src, sink, clock, _rec = make(tmp_path, backoff_base=1.0)
    from obsctl.errors import TemporaryError

    sink.fail_put["prometheus-rules/default/b"] = TemporaryError("503")
    r.run_once(full=True)
    del sink.fail_put["prometheus-rules/default/b"]
    clock.now += 5
    src.docs["a"] = doc("a", 99.5)
    r.run_once(full=False)
    assert r.statuses[("files", "prometheus-rules/default/b")].state is ArtifactState.APPLIED
    assert (tmp_path / "out/rules/b.yml").exists()


def test_a_skipped_service_keeps_its_artifacts_and_a_restart_plans_everything(tmp_path: Path) -> None:
    r, src, sink, clock, rec = make(tmp_path, FIVE)
    r.run_once(full=True)
    src.docs["c"] = doc("c", 150)  # objective out of range: skipped, carried forward
    report = r.run_once(full=False)
    assert "component:default/c" in report.skipped and report.planned == 0
    assert (tmp_path / "out/rules/c.yml").exists()
    # a new process has converged nothing yet: its first event round plans everything (and deletes nothing)
    again = Reconciler(src, load, render, [sink], config=LoopConfig(retry=NO_RETRY), recorder=rec, clock=clock)
    report = again.run_once(full=False)
    assert report.planned is None and report.sinks[0].summary["delete"] == 0
    assert (tmp_path / "out/rules/c.yml").exists()


def _arts(n: int) -> dict[str, Artifact]:
    arts = [Artifact(Kind.PROMETHEUS_RULES, f"default/s{i}", f"rules/s{i}.yml", b"x\n", f"component:default/s{i}")
            for i in range(n)]
    return {a.id: a for a in arts}


def test_the_mass_delete_guard_counts_everything_owned_in_a_scoped_plan(tmp_path: Path) -> None:
    sink = FilesSink(tmp_path / "out")
    all_arts = _arts(10)
    converge(all_arts, [sink], Policy())
    three = [f"prometheus-rules/default/s{i}" for i in range(3)]
    kept = {k: v for k, v in all_arts.items() if k not in three}
    report = converge(kept, [sink], Policy(scope=frozenset(three)))  # 3 of 10: allowed
    assert report.runs[0].plan.summary()["delete"] == 3 and not report.runs[0].prune_refused
    six = {k: v for k, v in list(kept.items())[:1]}
    scope = frozenset(set(kept) - set(six))
    with pytest.raises(PruneRefused):  # 6 of 7, though all of the scope
        converge(six, [sink], Policy(scope=scope, strict_mass_delete=True))


def test_an_event_waiting_when_a_resync_falls_due_goes_first_and_the_resync_follows(tmp_path: Path) -> None:
    r, src, _sink, _clock, _rec = make(tmp_path, resync_seconds=0.0, debounce_seconds=0.0)
    calls: list[tuple[bool, str]] = []
    real = r.run_once

    def recorded(full: bool = True, reason: str = "manual") -> RoundReport:
        calls.append((full, reason))
        report = real(full=full, reason=reason)
        if len(calls) == 1:  # the start-up round: an event arrives and the resync is due when it ends
            src.docs["late"] = doc("late")
            r.wake("event")
        elif len(calls) == 2:
            r.config.resync_seconds = 3600
        return report

    r.run_once = recorded  # type: ignore[method-assign]
    r.start()
    try:
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        r.stop(10)
    assert calls[:3] == [(True, "start"), (False, "event"), (True, "resync")]
    assert (tmp_path / "out/rules/late.yml").exists()


def test_the_status_books_indexes_equal_a_scan_of_its_statuses(tmp_path: Path) -> None:
    rnd = random.Random(3)
    names = [f"s{i:02d}" for i in range(12)]
    r, src, sink, _clock, _rec = make(tmp_path, {n: doc(n, owner=f"team-{i % 3}") for i, n in enumerate(names)})
    r.run_once(full=True)
    saw_unsettled = False
    for _ in range(30):
        name = rnd.choice(names)
        if rnd.random() < 0.5:
            src.docs[name] = doc(name, rnd.choice([99.0, 99.5]), owner=f"team-{rnd.randrange(4)}")
        elif len(src.docs) > 6:
            src.docs.pop(name, None)
        else:
            src.docs[name] = doc(name)
        # a failed write (permanent or temporary): unsettled until it lands
        sink.fail_put = {f"prometheus-rules/default/{name}": rnd.choice([PermanentError("no"), TemporaryError("later")])
                         } if rnd.random() < 0.4 else {}
        r.run_once(full=rnd.random() < 0.3)
        book = r._book
        assert book.owners() == {st.owner for st in r.statuses.values() if st.owner}
        assert book.unsettled() == {aid for (_sink, aid), st in r.statuses.items()
                                    if st.state not in (ArtifactState.APPLIED, ArtifactState.UNCHANGED)}
        saw_unsettled = saw_unsettled or bool(book.unsettled())
    assert saw_unsettled  # failed writes were among the rounds
