"""Files sink: artifacts as files under a directory, written atomically.

Ownership lives in `.obsctl-manifest.json` at the root (path -> artifact id and digest as
written). Only files in the manifest are ever deleted; a file whose bytes no longer match the
manifest was edited by hand (drift) and is rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from obsctl.errors import PermanentError
from obsctl.model.artifact import Artifact, Kind
from obsctl.sinks.base import Observed

MANIFEST = ".obsctl-manifest.json"


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
                 after_write: Callable[[], None] | None = None) -> None:
        self.root = root
        self.kinds = frozenset(kinds) if kinds is not None else frozenset(Kind)
        self.name = name
        self._validate = validate
        self._after_write = after_write
        self._dirty = False

    def _manifest(self) -> dict[str, dict[str, str]]:
        path = self.root / MANIFEST
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise PermanentError(f"{path}: unreadable manifest ({exc}); refusing to guess what obsctl owns") from exc
        return {str(k): dict(v) for k, v in data.get("files", {}).items()}

    def _save_manifest(self, manifest: Mapping[str, Mapping[str, str]]) -> None:
        body = json.dumps({"owner": "obsctl", "files": dict(sorted(manifest.items()))}, indent=2, sort_keys=True)
        atomic_write(self.root / MANIFEST, body.encode() + b"\n")

    def list_owned(self) -> dict[str, Observed]:
        """Files in the manifest whose kind this sink handles."""
        out: dict[str, Observed] = {}
        for rel, entry in self._manifest().items():
            aid = entry["id"]
            if not any(aid.startswith(k.value + "/") for k in self.kinds):
                continue
            path = safe_join(self.root, rel)
            body = path.read_bytes() if path.exists() else b""
            digest = hashlib.sha256(body).hexdigest()
            out[aid] = Observed(aid, body, entry["digest"], drifted=digest != entry["digest"] or not path.exists())
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
        manifest = self._manifest()
        for rel, entry in list(manifest.items()):
            if entry["id"] == artifact.id and rel != artifact.path:
                safe_join(self.root, rel).unlink(missing_ok=True)
                del manifest[rel]
        atomic_write(target, artifact.body)
        manifest[artifact.path] = {"id": artifact.id, "digest": artifact.digest}
        self._save_manifest(manifest)
        self._dirty = True

    def delete(self, observed: Observed) -> None:
        """Remove an owned file and its manifest entry; empty directories are removed too."""
        manifest = self._manifest()
        for rel, entry in list(manifest.items()):
            if entry["id"] == observed.id:
                path = safe_join(self.root, rel)
                path.unlink(missing_ok=True)
                del manifest[rel]
                parent = path.parent
                while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()
                    parent = parent.parent
        self._save_manifest(manifest)
        self._dirty = True

    def finish(self) -> None:
        """Run the after-write hook once if anything changed."""
        if self._dirty and self._after_write is not None:
            self._after_write()
        self._dirty = False
