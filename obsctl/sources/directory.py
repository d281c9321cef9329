"""Directory source: catalog files from a tree, selected by globs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

from obsctl.errors import PermanentError, TemporaryError
from obsctl.sources.base import FetchResult, Wake
from obsctl.spec.load import SourceFile

log = logging.getLogger("obsctl.sources.directory")

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


class DirectorySource:
    """A catalog directory as a source; `watch` wakes the loop on file changes.

    Changes come from inotify through watchfiles; when that is unavailable (no inotify, watch
    limits reached, a network file system) it falls back to polling the tree's fingerprint.
    """

    def __init__(self, root: Path, globs: Sequence[str] = DEFAULT_GLOBS, poll_seconds: float = 1.0,
                 force_polling: bool = False) -> None:
        self.root = root
        self.globs = tuple(globs)
        self.poll_seconds = poll_seconds
        self.force_polling = force_polling
        self.name = f"directory:{root}"
        self.watch_mode = ""

    def fetch(self) -> FetchResult:
        """Every catalog file now; an unreadable tree is an outage (no prune), not an empty catalog."""
        try:
            return FetchResult(read_directory(self.root, self.globs), True)
        except PermanentError as exc:
            raise TemporaryError(str(exc)) from exc
        except OSError as exc:
            raise TemporaryError(f"reading {self.root}: {exc}") from exc

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """(path, mtime_ns, size) of every file under the root: cheap change detection for polling."""
        out: list[tuple[str, int, int]] = []
        if not self.root.exists():
            return ()
        for pattern in self.globs:
            for path in self.root.glob(pattern):
                try:
                    st = path.stat()
                except OSError:
                    continue
                out.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(sorted(set(out)))

    def watch(self, wake: Wake, stop: threading.Event) -> None:
        """Wake on changes until stop is set."""
        if not self.force_polling:
            try:
                import watchfiles

                self.watch_mode = "inotify"
                for changes in watchfiles.watch(self.root, stop_event=stop, debounce=50, step=20,
                                                raise_interrupt=False, rust_timeout=1000, yield_on_timeout=False):
                    paths = sorted({p for _, p in changes})
                    wake(f"file changed: {paths[0]}" + (f" (+{len(paths) - 1})" if len(paths) > 1 else ""))
                return
            except Exception as exc:  # no inotify, limits, missing root: fall back to polling
                log.warning("watching %s with inotify failed (%s); polling every %.1fs", self.root, exc,
                            self.poll_seconds)
        last = self.fingerprint()
        self.watch_mode = "polling"
        while not stop.wait(self.poll_seconds):
            now = self.fingerprint()
            if now != last:
                last = now
                wake("file changed (polling)")
