"""Directory source: catalog files from a tree, selected by globs."""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
import stat
import threading
import time
from collections.abc import Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from obsctl.errors import PermanentError, TemporaryError
from obsctl.model.source import SourceFile
from obsctl.sources.base import FetchResult, Wake

log = logging.getLogger("obsctl.sources.directory")

DEFAULT_GLOBS = ("**/*.yaml", "**/*.yml")
MAX_FILE_BYTES = 1 << 20


def read_directory(root: Path, globs: Sequence[str] = DEFAULT_GLOBS, exclude: Sequence[str] = ("_gen/**",),
                   cache: dict[str, tuple[tuple[int, int, int], SourceFile]] | None = None) -> list[SourceFile]:
    """Every file under root matching a glob, as (path relative to cwd-or-root, bytes).

    Oversized files are passed on truncated-free: the loader reports them by size.
    A missing root is a permanent error: an empty catalog must never be inferred from a typo.
    With `cache` (path -> (stat key, file), updated in place), a file whose (mtime, size, inode) did not
    change is not read again: the same SourceFile is returned.
    """
    if root.is_file():
        return [SourceFile(str(root), root.read_bytes())]
    if not root.is_dir():
        raise PermanentError(f"catalog path {root} does not exist")
    names = [g[3:] for g in globs if g.startswith("**/") and "/" not in g[3:] and "**" not in g[3:]]
    found = _walk(root, names) if len(names) == len(globs) else _glob(root, globs)
    out: list[SourceFile] = []
    kept: set[str] = set()
    patterns = tuple(exclude)
    for rel in found:
        if _excluded(patterns, rel):
            continue
        path = f"{root}/{rel}"
        got = _read(path, cache)
        if got is not None:
            kept.add(path)
            out.append(got)
    if cache is not None:
        for gone in set(cache) - kept:
            del cache[gone]
    return out


@functools.lru_cache(maxsize=1 << 17)
def _excluded(patterns: tuple[str, ...], rel: str) -> bool:
    """Whether a relative path matches an exclude pattern, remembered (every walk sees the same paths again)."""
    return any(PurePosixPath(rel).match(x) for x in patterns)


def _glob(root: Path, globs: Sequence[str]) -> list[str]:
    """Paths (relative, `/`-separated) matching any glob, pattern by pattern, each sorted, without hidden parts."""
    seen: set[str] = set()
    out: list[str] = []
    for pattern in globs:
        for path in sorted(root.glob(pattern)):
            rel = path.relative_to(root)
            if any(part.startswith(".") for part in rel.parts) or rel.as_posix() in seen:
                continue
            seen.add(rel.as_posix())
            out.append(rel.as_posix())
    return out


def _walk(root: Path, names: Sequence[str]) -> list[str]:
    """As `_glob` for patterns `**/NAME` (the defaults), in one walk of the tree: pathlib's order (pattern by
    pattern, sorted by parts), symlinked directories not entered, hidden directories skipped."""
    found: list[list[tuple[list[str], str]]] = [[] for _ in names]
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        prefix = os.path.relpath(folder, root).replace(os.sep, "/")
        prefix = "" if prefix == "." else prefix + "/"
        for name in files:
            if name.startswith("."):
                continue
            for i, pattern in enumerate(names):
                if fnmatch.fnmatchcase(name, pattern):
                    rel = prefix + name
                    found[i].append((rel.split("/"), rel))
                    break
    return [rel for group in found for _parts, rel in sorted(group)]


def _read(path: str, cache: dict[str, tuple[tuple[int, int, int], SourceFile]] | None) -> SourceFile | None:
    """The file (None when it is not a regular file), from the cache while its stat did not change."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    key = (st.st_mtime_ns, st.st_size, st.st_ino)
    hit = cache.get(path) if cache is not None else None
    if hit is not None and hit[0] == key:
        return hit[1]
    with open(path, "rb") as fh:
        data = fh.read() if st.st_size <= MAX_FILE_BYTES else b"x" * (MAX_FILE_BYTES + 1)
    found = SourceFile(path, data)
    if cache is not None:
        cache[path] = (key, found)
    return found


TEMPLATE_DIRS = ("alert-rules", "dashboards", "collectors")
TEMPLATE_SUFFIXES = (".yaml", ".yml", ".json", ".tmpl", ".j2")


def packaged_templates() -> Traversable:
    """The template folders shipped inside the package (obsctl/templates), wherever it is installed."""
    return resources.files("obsctl") / "templates"


def read_template_tree(root: Traversable | Path | None = None) -> dict[str, bytes]:
    """The platform data folders as relative path -> bytes: root's, else the packaged ones.

    root (the `templates_dir` setting) overrides per folder: a folder it lacks (say it holds only
    alert-rules/) comes from the package. Paths always use `/` (`alert-rules/windows/30d.yaml`).
    A root that is not a directory is a permanent error, never an empty set of templates.
    """
    packaged = packaged_templates()
    if root is not None and not root.is_dir():
        raise PermanentError(f"templates_dir {root} is not a directory")
    out: dict[str, bytes] = {}

    def walk(node: Traversable, rel: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            path = f"{rel}/{child.name}"
            if child.is_dir():
                walk(child, path)
            elif child.is_file() and child.name.endswith(TEMPLATE_SUFFIXES):
                out[path] = child.read_bytes()

    for top in TEMPLATE_DIRS:
        own = None if root is None else root / top
        walk(own if own is not None and own.is_dir() else packaged / top, top)
    return out


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


class DirectorySource:
    """A catalog directory as a source; `watch` wakes the loop on file changes.

    Changes come from inotify through watchfiles; when that is unavailable (no inotify, watch
    limits reached, a network file system) it falls back to polling the tree's fingerprint.
    `fetch` walks the whole tree (a file whose stat did not change is not read again); while inotify
    watches, `fetch_changed` reads only the paths it reported since the last read.
    """

    def __init__(self, root: Path, globs: Sequence[str] = DEFAULT_GLOBS, poll_seconds: float = 1.0,
                 force_polling: bool = False) -> None:
        self.root = root
        self.globs = tuple(globs)
        self.poll_seconds = poll_seconds
        self.force_polling = force_polling
        self.name = f"directory:{root}"
        self.watch_mode = ""
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple[int, int, int], SourceFile]] = {}
        self._scanned = False  # the cache holds a whole walk of the tree
        self._changed: set[Path] | None = None  # paths reported since the last read; None: unknown, walk
        self._root_id: tuple[int, int] | None = None  # (device, inode) of the root at the last walk
        self._walk_started: float | None = None  # monotonic time the last walk began

    def fetch(self) -> FetchResult:
        """Every catalog file now; an unreadable tree is an outage (no prune), not an empty catalog."""
        with self._lock:
            self._changed = set() if self.watch_mode == "inotify" else None
            self._walk_started = time.monotonic()
        try:
            with self._lock:
                files = read_directory(self.root, self.globs, cache=self._cache)
                self._scanned = True
                self._root_id = _identity(self.root)
            return FetchResult(files, True)
        except PermanentError as exc:
            raise TemporaryError(str(exc)) from exc
        except OSError as exc:
            raise TemporaryError(f"reading {self.root}: {exc}") from exc

    def fetch_changed(self) -> FetchResult:
        """What `fetch` answers, reading only the paths inotify reported since the last read (a walk
        when it cannot know: polling, no walk yet, a directory changed, a glob that is not `**/name`)."""
        with self._lock:
            changed, self._changed = self._changed, (set() if self.watch_mode == "inotify" else None)
            known = changed is not None and self._scanned and self.watch_mode == "inotify" \
                and _identity(self.root) == self._root_id  # a root replaced (moved away, recreated): walk
        if not known or changed is None or not self._reread(changed):
            return self.fetch()
        with self._lock:
            return FetchResult([f for _, (_, f) in sorted(self._cache.items())], True)

    def _reread(self, changed: set[Path]) -> bool:
        """Update the cache for the changed paths; False when only a walk can tell what changed."""
        names = []
        for pattern in self.globs:
            if not pattern.startswith("**/") or "/" in pattern[3:] or "**" in pattern[3:]:
                return False
            names.append(pattern[3:])
        try:
            with self._lock:
                for path in sorted(changed):
                    rel = path.relative_to(self.root)
                    if any(part.startswith(".") for part in rel.parts) or rel.match("_gen/**"):
                        continue
                    if path.is_dir() or any(k.startswith(f"{path}/") for k in self._cache):
                        return False  # a directory came or went: walk
                    selected = any(rel.match(n) for n in names)
                    if not (selected and _read(str(path), self._cache)):
                        self._cache.pop(str(path), None)
        except (ValueError, OSError):
            return False
        return True

    def _note(self, paths: Sequence[str]) -> None:
        with self._lock:
            if self._changed is not None:
                self._changed.update(Path(p) for p in paths)

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

                started = time.monotonic()  # it reports every change from here on
                for changes in watchfiles.watch(self.root, stop_event=stop, debounce=50, step=20,
                                                raise_interrupt=False, rust_timeout=1000, yield_on_timeout=True):
                    with self._lock:  # the watcher is up: it reports every change since `started`
                        if self.watch_mode != "inotify":
                            self.watch_mode = "inotify"
                            # a walk that began before the watcher may have missed a change: walk once more
                            walked_since = self._walk_started is not None and self._walk_started >= started
                            self._changed = set() if walked_since else None
                    if not changes:
                        continue
                    paths = sorted({p for _, p in changes})
                    self._note(paths)
                    wake(f"file changed: {paths[0]}" + (f" (+{len(paths) - 1})" if len(paths) > 1 else ""))
                return
            except Exception as exc:  # no inotify, limits, missing root: fall back to polling
                log.warning("watching %s with inotify failed (%s); polling every %.1fs", self.root, exc,
                            self.poll_seconds)
        last = self.fingerprint()
        with self._lock:
            self.watch_mode = "polling"
            self._changed = None
        while not stop.wait(self.poll_seconds):
            now = self.fingerprint()
            if now != last:
                last = now
                wake("file changed (polling)")
