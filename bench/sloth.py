"""The pinned Sloth binary: built once with `go install` by scripts/build-sloth.sh (shared with the tests)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

VERSION = "v0.16.0"
MODULE = "github.com/slok/sloth/cmd/sloth"


def path() -> Path:
    """Where the pinned binary lives: scripts/build-sloth.sh's cache (one build for tests and benchmarks)."""
    cache = Path(os.environ.get("OBSCTL_CACHE", Path.home() / ".cache" / "obsctl"))
    return cache / f"sloth-{VERSION}" / "sloth"


def ensure(timeout: float = 1800.0) -> tuple[Path | None, str]:
    """Build Sloth at the pinned version if needed (scripts/build-sloth.sh); (binary or None, log)."""
    exe = path()
    if exe.exists():
        return exe, f"cached {exe}"
    script = Path(__file__).resolve().parents[1] / "scripts" / "build-sloth.sh"
    try:
        out = subprocess.run([str(script)], capture_output=True, text=True, timeout=timeout, check=False,
                             env={**os.environ, "OBSCTL_SLOTH_VERSION": VERSION})
    except subprocess.TimeoutExpired:
        return None, f"go install {MODULE}@{VERSION} timed out after {timeout:.0f}s"
    if out.returncode != 0 or not exe.exists():
        return None, f"scripts/build-sloth.sh failed: {out.stderr[-800:]}"
    return exe, f"built {exe}"


def version_text() -> str:
    """`sloth version` of the cached binary, or why there is none."""
    exe = path()
    if not exe.exists():
        return f"{VERSION} (not built yet)"
    return f"{VERSION} (go install {MODULE}@{VERSION}; the binary itself reports 'dev')"
