"""Files written before a crash (SIGKILL mid-apply, before the manifest is saved) are found by the
next listing and pruned when no longer desired; nothing foreign is touched."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from obsctl.model.artifact import Artifact, Kind
from obsctl.reconcile.converge import Policy, converge
from obsctl.sinks.files import MANIFEST, FilesSink

CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from obsctl.model.artifact import Artifact, Kind
    from obsctl.sinks.files import FilesSink
    sink = FilesSink(Path(sys.argv[1]))
    for i in range(50):
        sink.put(Artifact(Kind.PROMETHEUS_RULES, f"default/svc-{i}", f"rules/svc-{i}.yml", b"groups: []\\n",
                          f"component:default/svc-{i}"))
    os.kill(os.getpid(), signal.SIGKILL)  # mid-apply: the manifest was never saved
""")


def test_files_written_before_a_sigkill_are_owned_and_pruned(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    (root / "foreign.yml").write_text("not ours\n")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(root)], check=False,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == -9
    assert not (root / MANIFEST).exists() and len(list((root / "rules").iterdir())) == 50

    sink = FilesSink(root)
    owned = sink.list_owned()
    assert len(owned) == 50 and all(o.owner.startswith("component:default/svc-") for o in owned.values())
    keep = Artifact(Kind.PROMETHEUS_RULES, "default/svc-7", "rules/svc-7.yml", b"groups: []\n",
                    "component:default/svc-7")
    report = converge({keep.id: keep}, [sink], Policy(max_delete_fraction=1.0))
    assert not report.failed
    assert sorted(p.name for p in (root / "rules").iterdir()) == ["svc-7.yml"]
    assert (root / "foreign.yml").read_text() == "not ours\n"
    assert not list(root.glob(".obsctl-journal-*"))  # emptied once the manifest holds everything
    assert list(FilesSink(root).list_owned()) == [keep.id]


STAGED = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from obsctl.model.artifact import Artifact, Kind
    from obsctl.sinks import files
    root, mode = Path(sys.argv[1]), sys.argv[2]

    def art(i, body=b"groups: []\\\\n", path=None):
        return Artifact(Kind.PROMETHEUS_RULES, f"default/svc-{i}", path or f"rules/svc-{i}.yml", body,
                        f"component:default/svc-{i}")

    def die(*_args, **_kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    sink = files.FilesSink(root)
    for i in range(5):
        sink.put(art(i))
    sink.finish()  # folded: the manifest holds svc-0..4
    real_write = files.atomic_write
    if mode == "before-rename":  # announced in the journal, killed before the file is replaced
        files.atomic_write = die
        sink.put(art(0, b"groups: [changed]\\\\n"))
    elif mode == "before-rename-foreign":
        files.atomic_write = die
        sink.put(art(9, path="rules/foreign.yml"))
    elif mode == "mid-fold":  # the manifest replaced, the journal not yet removed
        def write_then_die(path, data, mode=0o644):
            real_write(path, data, mode)
            if path.name == files.MANIFEST:
                die()
        sink.put(art(5))
        files.atomic_write = write_then_die
        sink.finish()
    elif mode == "after-unlink":  # the file removed, its record not yet written
        files.FilesSink._disown = die
        sink.delete(sink.list_owned()["prometheus-rules/default/svc-3"])
    raise SystemExit("not killed")
""")


def crashed(tmp_path: Path, mode: str) -> Path:
    root = tmp_path / "out"
    (root / "rules").mkdir(parents=True)
    (root / "rules" / "foreign.yml").write_text("not ours\n")
    proc = subprocess.run([sys.executable, "-c", STAGED, str(root), mode], check=False,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == -9
    return root


def owned_files(root: Path) -> list[str]:
    return sorted(FilesSink(root).list_owned())


def prune_all(root: Path) -> None:
    report = converge({}, [FilesSink(root)], Policy(max_delete_fraction=1.0))
    assert not report.failed
    assert sorted(p.name for p in (root / "rules").iterdir()) == ["foreign.yml"]
    assert (root / "rules" / "foreign.yml").read_text() == "not ours\n"
    assert owned_files(root) == []


def ids(*numbers: int) -> list[str]:
    return [f"prometheus-rules/default/svc-{i}" for i in numbers]


def test_killed_after_announcing_a_write_the_path_stays_owned_and_drifted(tmp_path: Path) -> None:
    root = crashed(tmp_path, "before-rename")
    owned = FilesSink(root).list_owned()
    assert sorted(owned) == ids(0, 1, 2, 3, 4)
    assert owned[ids(0)[0]].drifted  # the journal has the new digest, the file the old bytes
    prune_all(root)


def test_killed_before_writing_over_a_foreign_file_never_owns_it(tmp_path: Path) -> None:
    root = crashed(tmp_path, "before-rename-foreign")
    assert owned_files(root) == ids(0, 1, 2, 3, 4)
    prune_all(root)


def test_killed_while_folding_the_journal_replays_to_the_same_owners(tmp_path: Path) -> None:
    root = crashed(tmp_path, "mid-fold")
    assert list(root.glob(".obsctl-journal-*")) and "rules/svc-5.yml" in (root / MANIFEST).read_text()
    owned = FilesSink(root).list_owned()
    assert sorted(owned) == ids(0, 1, 2, 3, 4, 5) and not any(o.drifted for o in owned.values())
    prune_all(root)


def test_killed_between_removing_a_file_and_recording_it(tmp_path: Path) -> None:
    root = crashed(tmp_path, "after-unlink")
    owned = FilesSink(root).list_owned()
    assert sorted(owned) == ids(0, 1, 2, 3, 4) and owned[ids(3)[0]].drifted  # listed, missing
    prune_all(root)
