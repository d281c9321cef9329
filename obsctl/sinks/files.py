"""Files sink: artifacts as files under a directory, written atomically.

Ownership lives in `.obsctl-manifest.json` at the root (path -> artifact id, digest as written and
the entity the artifact was rendered for). Only files in the manifest are ever deleted; a file whose
bytes no longer match the manifest was edited by hand (drift) and is rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from obsctl.errors import PermanentError, TemporaryError
from obsctl.model.artifact import Artifact, Kind, Observed
from obsctl.sinks.base import SinkContract

MANIFEST = ".obsctl-manifest.json"
JOURNAL_PREFIX = ".obsctl-journal-"  # + sink name: writes not yet in the manifest (a crash leaves them there)
# Beside the files while the backend has not loaded them (its last reload failed): a new process knows.
RELOAD_PENDING = ".obsctl-reload-pending"


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write via a temp file in the same directory and rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_join(root: Path, rel: str) -> Path:
    """root/rel, refusing anything that escapes root (absolute paths, '..')."""
    if rel.startswith("/") or "\\" in rel or any(p in ("..", "") for p in rel.split("/")):
        raise PermanentError(f"unsafe artifact path {rel!r}")
    return root / rel


class FilesSink:
    """Artifacts of the given kinds as files under `root`."""

    def __init__(self, root: Path, kinds: Iterable[Kind] | None = None, name: str = "files",
                 validate: Callable[[Artifact, Path], None] | None = None,
                 after_write: Callable[[], None] | None = None, *, flush_every: int = 500) -> None:
        self.root = root
        self.kinds = frozenset(kinds) if kinds is not None else frozenset(Kind)
        self.name = name
        self._validate = validate
        self._after_write = after_write
        self._dirty = False
        self._flush_every = flush_every
        self._lock = threading.Lock()
        # Manifest changes not yet saved: path -> entry (None: removed). Saved in finish() and every
        # flush_every writes, merged into what is on disk, so sinks sharing a root keep each other's
        # entries. A crash between a file write and the save at worst leaves a file unlisted (rewritten
        # by the next create) or listed but missing (seen as drift): never a foreign file deleted.
        self._pending: dict[str, dict[str, str] | None] = {}
        self._by_id: dict[str, str] | None = None
        # Every file is announced in the journal before it is written, and the journal is emptied once
        # the manifest holds it: after a crash (SIGKILL mid-apply) the next listing finds the files the
        # manifest missed, so they are owned, and pruned when no longer desired.
        self._journal = self.root / f"{JOURNAL_PREFIX}{name}"

    def _manifest(self) -> dict[str, dict[str, str]]:
        path = self.root / MANIFEST
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PermanentError(f"{path}: unreadable manifest ({exc}); refusing to guess what obsctl owns") from exc
        return {str(k): dict(v) for k, v in data.get("files", {}).items()}

    def _current(self) -> dict[str, dict[str, str]]:
        manifest = self._manifest()
        for rel, entry in self._pending.items():
            if entry is None:
                manifest.pop(rel, None)
            else:
                manifest[rel] = entry
        return manifest

    def _flush(self) -> None:
        if not self._pending:
            return
        manifest = self._current()
        body = json.dumps({"owner": "obsctl", "files": dict(sorted(manifest.items()))}, indent=2, sort_keys=True)
        atomic_write(self.root / MANIFEST, body.encode() + b"\n")
        self._pending.clear()
        self._journal.unlink(missing_ok=True)

    def _announce(self, rel: str, entry: dict[str, str]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._journal.open("a") as fh:  # the page cache survives a killed process: no fsync needed
            fh.write(json.dumps({"path": rel, **entry}, sort_keys=True) + "\n")

    def _replay(self) -> None:
        """Files announced before a crash but never saved in the manifest become owned again."""
        try:
            lines = self._journal.read_text().splitlines()
        except FileNotFoundError:
            return
        known = self._current()
        for line in lines:
            try:
                entry = json.loads(line)
                rel = str(entry.pop("path"))
                record = {"id": str(entry["id"]), "digest": str(entry["digest"]), "owner": str(entry.get("owner", ""))}
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a line cut short by the crash
            if rel not in known and safe_join(self.root, rel).exists():
                self._pending[rel] = record
                known[rel] = record

    def _paths_of(self, aid: str) -> list[str]:
        if self._by_id is None:
            self._by_id = {}
            for path, entry in self._current().items():
                self._by_id.setdefault(entry["id"], path)
        found = self._by_id.get(aid)
        return [found] if found is not None else []

    def _record(self, rel: str, entry: dict[str, str] | None) -> None:
        self._pending[rel] = entry
        if self._by_id is not None:
            if entry is None:
                self._by_id = {k: v for k, v in self._by_id.items() if v != rel}
            else:
                self._by_id[entry["id"]] = rel
        self._dirty = True
        if len(self._pending) >= self._flush_every:
            self._flush()

    @property
    def location(self) -> str:
        """The root directory, absolute."""
        return str(self.root.resolve())

    @property
    def contract(self) -> SinkContract:
        """One depth, sequential writes (the manifest is shared state)."""
        return SinkContract()

    def prepare(self, desired: Iterable[Artifact]) -> None:
        """Nothing to learn: files need no desired state before listing."""

    def list_owned(self, deep: bool = True) -> dict[str, Observed]:
        """Files in the manifest whose kind this sink handles (one depth: `deep` changes nothing)."""
        out: dict[str, Observed] = {}
        with self._lock:
            self._replay()
            manifest = self._current()
            self._by_id = None
        for rel, entry in manifest.items():
            aid = entry["id"]
            if not any(aid.startswith(k.value + "/") for k in self.kinds):
                continue
            path = safe_join(self.root, rel)
            body = path.read_bytes() if path.exists() else b""
            digest = hashlib.sha256(body).hexdigest()
            out[aid] = Observed(aid, body, entry["digest"], drifted=digest != entry["digest"] or not path.exists(),
                                owner=entry.get("owner", ""))
        return out

    def put(self, artifact: Artifact) -> None:
        """Validate (when configured), then write atomically and record in the manifest."""
        target = safe_join(self.root, artifact.path)
        if self._validate is not None:
            fd, tmp = tempfile.mkstemp(suffix=Path(artifact.path).suffix or ".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(artifact.body)
                self._validate(artifact, Path(tmp))
            finally:
                Path(tmp).unlink(missing_ok=True)
        with self._lock:
            for rel in self._paths_of(artifact.id):
                if rel != artifact.path:
                    safe_join(self.root, rel).unlink(missing_ok=True)
                    self._record(rel, None)
            entry = {"id": artifact.id, "digest": artifact.digest, "owner": artifact.owner}
            self._announce(artifact.path, entry)
            atomic_write(target, artifact.body)
            self._record(artifact.path, entry)

    def delete(self, observed: Observed) -> None:
        """Remove an owned file and its manifest entry; empty directories are removed too."""
        with self._lock:
            for rel in self._paths_of(observed.id):
                path = safe_join(self.root, rel)
                path.unlink(missing_ok=True)
                self._record(rel, None)
                parent = path.parent
                while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
                    parent = parent.parent

    def stale(self) -> str:
        """The error of the last failed after-write hook (a reload), until one succeeds; "" otherwise."""
        if self._after_write is None:
            return ""
        try:
            return (self.root / RELOAD_PENDING).read_text().strip() or "reload pending"
        except FileNotFoundError:
            return ""

    def finish(self) -> None:
        """Save the manifest, then run the after-write hook if anything changed or its last run failed.

        A failure is remembered in RELOAD_PENDING beside the files (so the next round, or the next
        `obsctl apply` process, runs the hook again) and re-raised; a success clears it.
        """
        with self._lock:
            self._flush()
        pending = self.stale()
        if (self._dirty or pending) and self._after_write is not None:
            self._dirty = False
            try:
                self._after_write()
            except (TemporaryError, PermanentError) as exc:
                atomic_write(self.root / RELOAD_PENDING, f"{exc}\n".encode())
                raise
            if pending:
                (self.root / RELOAD_PENDING).unlink(missing_ok=True)
        self._dirty = False
