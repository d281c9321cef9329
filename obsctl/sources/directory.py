"""Directory source: catalog files from a tree, selected by globs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from obsctl.errors import PermanentError
from obsctl.spec.load import SourceFile

DEFAULT_GLOBS = ("**/*.yaml", "**/*.yml")
MAX_FILE_BYTES = 1 << 20


def read_directory(root: Path, globs: Sequence[str] = DEFAULT_GLOBS, exclude: Sequence[str] = ("_gen/**",)
                   ) -> list[SourceFile]:
    """Every file under root matching a glob, as (path relative to cwd-or-root, bytes).

    Oversized files are passed on truncated-free: the loader reports them by size.
    A missing root is a permanent error: an empty catalog must never be inferred from a typo.
    """
    if root.is_file():
        return [SourceFile(str(root), root.read_bytes())]
    if not root.is_dir():
        raise PermanentError(f"catalog path {root} does not exist")
    seen: set[Path] = set()
    out: list[SourceFile] = []
    for pattern in globs:
        for path in sorted(root.glob(pattern)):
            rel = path.relative_to(root)
            if path in seen or not path.is_file() or any(rel.match(x) for x in exclude):
                continue
            if any(part.startswith(".") for part in rel.parts):
                continue
            seen.add(path)
            size = path.stat().st_size
            data = path.read_bytes() if size <= MAX_FILE_BYTES else b"x" * (MAX_FILE_BYTES + 1)
            out.append(SourceFile(str(root / rel), data))
    return out


TEMPLATE_DIRS = ("alert-rules", "dashboards", "collectors")


def read_template_tree(root: Path) -> dict[str, bytes]:
    """The platform data folders under root, as relative path -> bytes."""
    out: dict[str, bytes] = {}
    for top in TEMPLATE_DIRS:
        base = root / top
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.is_file() and path.suffix in (".yaml", ".yml", ".json", ".tmpl", ".j2"):
                out[str(path.relative_to(root))] = path.read_bytes()
    return out
