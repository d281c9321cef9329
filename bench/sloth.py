"""The pinned Sloth binary: built once with `go install` into the bench cache."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from bench.common import CACHE

VERSION = "v0.16.0"
MODULE = "github.com/slok/sloth/cmd/sloth"


def path() -> Path:
    """Where the pinned binary lives."""
    return CACHE / f"sloth-{VERSION}" / "sloth"


def ensure(timeout: float = 900.0) -> tuple[Path | None, str]:
    """Build Sloth at the pinned version if needed; (binary or None, log of what happened)."""
    exe = path()
    if exe.exists():
        return exe, f"cached {exe}"
    go = shutil.which("go")
    if not go:
        return None, "go is not installed"
    exe.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(exe.parent), "GOFLAGS": "-buildvcs=false"}
    try:
        out = subprocess.run([go, "install", f"{MODULE}@{VERSION}"], capture_output=True, text=True, env=env,
                             timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, f"go install {MODULE}@{VERSION} timed out after {timeout:.0f}s"
    if out.returncode != 0 or not exe.exists():
        return None, f"go install {MODULE}@{VERSION} failed: {(out.stdout + out.stderr)[-800:]}"
    return exe, f"built {exe}"


def version_text() -> str:
    """`sloth version` of the cached binary, or why there is none."""
    exe = path()
    if not exe.exists():
        return f"{VERSION} (not built yet)"
    return f"{VERSION} (go install {MODULE}@{VERSION}; the binary itself reports 'dev')"
