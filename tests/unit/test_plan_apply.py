"""Plan (pure), the files sink and apply: ownership, drift, mass-delete guard, retries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from obsctl.errors import PermanentError, PruneRefused, TemporaryError
from obsctl.model.artifact import Artifact, Kind, desired_state
from obsctl.reconcile.apply import OutcomeState, RetryPolicy, apply_plan
from obsctl.reconcile.plan import Action, make_plan
from obsctl.sinks.base import Observed
from obsctl.sinks.files import MANIFEST, FilesSink


def art(key: str, body: str = "a: 1\n", kind: Kind = Kind.PROMETHEUS_RULES) -> Artifact:
    return Artifact(kind, key, f"rules/{key}.yml", body.encode(), f"component:default/{key}")


def test_plan_classifies_every_artifact() -> None:
    desired = desired_state([art("new"), art("same"), art("changed", "a: 2\n")])
    sink_state = {a.id: Observed(a.id, a.body, a.digest) for a in (art("same"), art("changed"), art("gone"))}
    plan = make_plan(desired, sink_state, max_delete_fraction=1.0)
    assert {c.id: c.action for c in plan.changes} == {
        "prometheus-rules/new": Action.CREATE, "prometheus-rules/same": Action.UNCHANGED,
        "prometheus-rules/changed": Action.UPDATE, "prometheus-rules/gone": Action.DELETE}
    update = next(c for c in plan.changes if c.action is Action.UPDATE)
    assert "-a: 1\n+a: 2\n" in update.diff()
    assert plan.summary() == {"create": 1, "update": 1, "delete": 1, "unchanged": 1}


def test_mass_deletion_is_refused_unless_allowed() -> None:
    owned = {a.id: Observed(a.id, a.body, a.digest) for a in (art("a"), art("b"), art("c"))}
    with pytest.raises(PruneRefused, match="refusing to delete 3 of 3 owned artifacts"):
        make_plan({}, owned)
    assert len(make_plan({}, owned, allow_mass_delete=True).of(Action.DELETE)) == 3
    assert make_plan({}, owned, prune=False).changes == []
    # Losing one of three stays under the 50 % limit.
    keep = desired_state([art("a"), art("b")])
    assert [c.id for c in make_plan(keep, owned).of(Action.DELETE)] == ["prometheus-rules/c"]


def test_files_sink_owns_only_its_manifest_and_detects_drift(tmp_path: Path) -> None:
    foreign = tmp_path / "rules" / "hand-written.yml"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("mine: true\n")
    sink = FilesSink(tmp_path)
    desired = desired_state([art("a"), art("b")])
    result = apply_plan(sink, make_plan(desired, sink.list_owned()))
    assert result.writes == 2 and not result.failed
    assert make_plan(desired, sink.list_owned()).writes == []
    # A hand edit is drift: the next plan rewrites it.
    (tmp_path / "rules" / "a.yml").write_text("edited: by hand\n")
    owned = sink.list_owned()
    assert owned["prometheus-rules/a"].drifted
    plan = make_plan(desired, owned)
    assert [(c.action, c.id) for c in plan.writes] == [(Action.UPDATE, "prometheus-rules/a")]
    apply_plan(sink, plan)
    assert (tmp_path / "rules" / "a.yml").read_text() == "a: 1\n"
    # Pruning removes owned files only; the foreign file survives.
    apply_plan(sink, make_plan(desired_state([art("a")]), sink.list_owned()))
    assert not (tmp_path / "rules" / "b.yml").exists()
    assert foreign.read_text() == "mine: true\n"
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert sorted(manifest["files"]) == ["rules/a.yml"]


def test_files_sink_refuses_paths_outside_its_root(tmp_path: Path) -> None:
    sink = FilesSink(tmp_path / "out")
    evil = Artifact(Kind.PROMETHEUS_RULES, "x", "../escape.yml", b"x", "o")
    result = apply_plan(sink, make_plan(desired_state([evil]), {}))
    assert result.failed[0].state is OutcomeState.FAILED_PERMANENT
    assert "unsafe artifact path" in result.failed[0].error
    assert not (tmp_path / "escape.yml").exists()


def test_files_sink_validates_before_replacing(tmp_path: Path) -> None:
    def reject_bad(artifact: Artifact, tmp: Path) -> None:
        if b"bad" in tmp.read_bytes():
            raise PermanentError("validation failed")

    sink = FilesSink(tmp_path, validate=reject_bad)
    apply_plan(sink, make_plan(desired_state([art("a")]), {}))
    result = apply_plan(sink, make_plan(desired_state([art("a", "bad\n")]), sink.list_owned()))
    assert result.failed[0].error == "validation failed"
    assert (tmp_path / "rules" / "a.yml").read_text() == "a: 1\n"


class FlakySink:
    name = "flaky"
    kinds = frozenset(Kind)

    def __init__(self, failures: dict[str, list[Exception]]) -> None:
        self.failures = failures
        self.calls: list[str] = []
        self.finished = 0

    def list_owned(self) -> dict[str, Observed]:
        return {}

    def put(self, artifact: Artifact) -> None:
        self.calls.append(artifact.key)
        queue = self.failures.get(artifact.key, [])
        if queue:
            raise queue.pop(0)

    def delete(self, observed: Observed) -> None:
        raise AssertionError("not expected")

    def finish(self) -> None:
        self.finished += 1


def test_apply_retries_temporary_errors_honouring_retry_after_and_never_retries_permanent() -> None:
    sleeps: list[float] = []
    sink = FlakySink({"t": [TemporaryError("503", retry_after=2.0), TemporaryError("timeout")],
                      "p": [PermanentError("400 bad dashboard")],
                      "x": [TemporaryError("down")] * 5})
    plan = make_plan(desired_state([art("t"), art("p"), art("ok"), art("x")]), {})
    result = apply_plan(sink, plan, RetryPolicy(attempts=3, base_delay=0.1, sleep=sleeps.append), parallelism=2)
    states = {o.id.split("/")[1]: (o.state, o.attempts) for o in result.outcomes}
    assert states == {"t": (OutcomeState.APPLIED, 3), "p": (OutcomeState.FAILED_PERMANENT, 1),
                      "ok": (OutcomeState.APPLIED, 1), "x": (OutcomeState.FAILED_TEMPORARY, 3)}
    assert sink.calls.count("p") == 1
    assert 2.0 in sleeps  # Retry-After wins over a shorter backoff
    assert sink.finished == 1


def test_plan_and_apply_of_unchanged_artifacts_never_read_a_body() -> None:
    def unread() -> bytes:
        raise AssertionError("a body was read for an unchanged artifact")

    desired = desired_state([art(f"s{i}") for i in range(100)] + [art("changed", "a: 2\n")])
    owned = {aid: Observed(aid, None, a.digest, read=unread) for aid, a in desired.items()
             if aid != "prometheus-rules/changed"}
    owned["prometheus-rules/changed"] = Observed("prometheus-rules/changed", None, art("changed").digest,
                                                 read=lambda: b"a: 1\n")
    plan = make_plan(desired, owned)
    assert plan.summary() == {"create": 0, "update": 1, "delete": 0, "unchanged": 100}
    assert "-a: 1\n+a: 2\n" in plan.writes[0].diff()  # the one body read: the changed artifact's, for its diff
    sink = FlakySink({})
    result = apply_plan(sink, plan)
    assert sink.calls == ["changed"] and result.writes == 1
