"""Golden files: examples/catalog (with the platform settings examples/obsctl.yaml) renders byte for
byte to the committed examples/_gen.

Update after a reviewed change with: OBSCTL_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/golden
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from obsctl.cli import main

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "examples" / "catalog"
GOLDEN = ROOT / "examples" / "_gen"
SETTINGS = ["--config", str(ROOT / "examples" / "obsctl.yaml")]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_sample_catalog_matches_golden_files(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    assert main([*SETTINGS, "render", str(CATALOG), "--out", str(out)]) == 0
    rendered = _tree(out)
    assert rendered, "render wrote nothing"
    if os.environ.get("OBSCTL_UPDATE_GOLDEN") == "1":
        shutil.rmtree(GOLDEN, ignore_errors=True)
        shutil.copytree(out, GOLDEN)
    golden = _tree(GOLDEN)
    assert sorted(rendered) == sorted(golden), "files differ from examples/_gen (OBSCTL_UPDATE_GOLDEN=1 to update)"
    for name, body in rendered.items():
        assert body == golden[name], f"{name} differs from examples/_gen (OBSCTL_UPDATE_GOLDEN=1 to update)"


def test_render_is_deterministic_and_idempotent(tmp_path: Path, capsys: object) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert main([*SETTINGS, "render", str(CATALOG), "--out", str(a)]) == 0
    assert main([*SETTINGS, "render", str(CATALOG), "--out", str(b)]) == 0
    assert _tree(a) == _tree(b)
    before = {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()}
    assert main([*SETTINGS, "render", str(CATALOG), "--out", str(a)]) == 0
    after = {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()}
    assert before == after, "a second render with nothing changed must write nothing"
