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
    sink = FilesSink(Path(sys.argv[1]), flush_every=10_000)
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
