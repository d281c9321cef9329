"""Files sink: artifacts as files under a directory, written atomically.

Ownership lives beside the files, so any process finds what obsctl owns there:

- `.obsctl-manifest.json`: path -> artifact id, digest as written and the entity the artifact was
  rendered for. Every sink writing under the root shares it (each keeps the others' entries).
- `.obsctl-journal-<sink name>`: one JSON line per change since that sink last folded its journal into
  the manifest: a write is announced before the file is replaced (`{"path", "id", "digest", "owner"}`),
  a removal is recorded once the file is gone (`{"path", "gone": true}`, also "no longer ours").
  A round appends only what it changed; `finish()` folds the journal into the manifest (atomic
  replace, then the journal is removed) once it holds an eighth as many lines as the manifest has
  entries, so a write costs O(1) amortised instead of a rewrite of every entry.

Crash safety (the process killed at any point):
- after announcing a write, before its rename: a path obsctl owned stays owned (its bytes no longer
  match: drift, rewritten or deleted as planned); a path it did not own is adopted only when its bytes
  are one that obsctl announced for it, so a file obsctl never wrote is never owned, never pruned;
- after removing a file, before recording it: the entry stays, the file reads as missing, and the
  next delete of it is a no-op;
- while folding: the manifest is replaced atomically, and a journal left beside a manifest that
  already holds it replays to the same state.
Only files in the manifest or the journal are ever deleted; a file whose bytes no longer match the
digest recorded for it was edited by hand (drift) and is rewritten.

Staged writes (`StagesWrites`, used by a streamed render): before the render forks its workers, the
sink reads its ownership records once (`begin_staging`); each worker compares the bytes it rendered
with the owned file (`observe`: what a deep listing would find) and writes the body of a change into
`.obsctl-staging-<sink>-<pid>/` under the root (`stage`: validated). Only the parent puts a staged body
in place (`commit_many`), through the same announce-then-rename protocol as `put`, after the whole
catalog rendered and the prune passed its guard: nothing is in place before that, a refused or failed
run leaves the files as they were, and a staging directory left by a killed process is removed by the
next run (it holds nothing anyone owns). A batch is announced in one journal write, then the filesystem
is flushed once before the first rename of the run (the staged bodies and the first batch's journal lines
reach the disk; a later batch's lines have `put`'s guarantee, no flush per line), then each body is renamed
into place. Once the workers are done staging, `start_flush` begins a flush in a background thread, while the
shared artifacts render and the plan is finished; the commit waits for it before its own flush, which then finds
little left to write (a head start only: the guarantee is the commit's flush). A flush that fails (a writeback
error: EIO, ENOSPC) fails every staged item of the run, none renamed, whichever flush met it: Linux reports such an
error to the first flush that asks only, so the head start's error is the commit's, and a later batch's flush would
find nothing wrong.

Listing depth (`SinkContract.deep_every_seconds`): a deep listing reads and hashes every owned file.
A fast listing stats each file and trusts the recorded digest while its size, mtime, ctime and inode
are those this process saw right after writing the file, or when it last hashed it and found the
recorded digest. Every write, rename over, truncate or utime moves ctime, which an edit cannot set
back, so a fast listing finds every edit and deletion made through the filesystem, except a write
of the same size in the same timestamp tick as the one seen (a jiffy at most; none on filesystems
with fine-grained timestamps). So a file someone else changed is trusted again only once its last
change is `settle_seconds` old (until then every listing hashes it: the editor may still be
writing). The deep listing on a full resync every `deep_every_seconds` covers the rest (such a
same-tick write, a filesystem with unreliable times, bytes restored beneath it).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from obsctl.errors import PermanentError, TemporaryError
from obsctl.model.artifact import Artifact, Kind, Observed, Staged
from obsctl.sinks.base import SinkContract

MANIFEST = ".obsctl-manifest.json"
JOURNAL_PREFIX = ".obsctl-journal-"  # + sink name: changes not yet folded into the manifest
# Beside the files while the backend has not loaded them (its last reload failed): a new process knows.
RELOAD_PENDING = ".obsctl-reload-pending"
STAGING_PREFIX = ".obsctl-staging-"  # + sink name + "-" + pid: bodies a streamed render staged, not yet in place
FOLD_RATIO = 8  # fold the journal once it has manifest entries / FOLD_RATIO lines (or more)
DEEP_EVERY_SECONDS = 3600.0
SETTLE_SECONDS = 2.0  # longer than any timestamp granularity of a local filesystem

log = logging.getLogger(__name__)
_RECORD = json.JSONEncoder(sort_keys=True)  # one journal line (json.dumps with options builds an encoder per call)
_Signature = tuple[int, int, int]  # inode, size, mtime_ns: has a file changed since we read or wrote it?
_Stat = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode of an owned file


class Entry(NamedTuple):
    """What the manifest records for one path."""

    id: str
    digest: str
    owner: str


def _announcement(rel: str, entry: Entry) -> str:
    """The journal line announcing `entry` at `rel`: `_RECORD.encode({"path": rel, **entry._asdict()})` and a
    newline, byte for byte, without the encoder's generic walk (a third of a 10k commit's journal write)."""
    quote = json.encoder.encode_basestring_ascii
    return (f'{{"digest": {quote(entry.digest)}, "id": {quote(entry.id)}, "owner": {quote(entry.owner)}, '
            f'"path": {quote(rel)}}}\n')


def manifest_text(files: Mapping[str, Entry]) -> str:
    """The manifest's JSON: `json.dumps({"owner": "obsctl", "files": ...}, indent=2, sort_keys=True)`, byte for
    byte, written line by line (the indenting encoder is pure Python: a second per 32,000 files)."""
    quote = json.encoder.encode_basestring_ascii
    if not files:
        return '{\n  "files": {},\n  "owner": "obsctl"\n}'
    entries = ",\n".join(
        f'    {quote(path)}: {{\n      "digest": {quote(e.digest)},\n      "id": {quote(e.id)},\n'
        f'      "owner": {quote(e.owner)}\n    }}'
        for path, e in sorted(files.items()))
    return f'{{\n  "files": {{\n{entries}\n  }},\n  "owner": "obsctl"\n}}'


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


def _check_rel(rel: str) -> str:
    wrapped = f"/{rel}/"  # an empty or ".." part of rel.split("/") is a "//" or "/../" here
    if rel.startswith("/") or "\\" in rel or "//" in wrapped or "/../" in wrapped:
        raise PermanentError(f"unsafe artifact path {rel!r}")
    return rel


def safe_join(root: Path, rel: str) -> Path:
    """root/rel, refusing anything that escapes root (absolute paths, '..')."""
    return root / _check_rel(rel)


def _signature(path: Path) -> _Signature | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _stat_key(st: os.stat_result) -> _Stat:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def _read_with_stat(path: str) -> tuple[bytes, os.stat_result]:
    """The bytes of a file and the stat of the very file read (not of what replaced it meanwhile)."""
    with open(path, "rb") as fh:
        return fh.read(), os.fstat(fh.fileno())


def _read_or_empty(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except (FileNotFoundError, IsADirectoryError):
        return b""


def _syncfs(directory: Path) -> None:
    """Flush every file written on the filesystem of `directory` to disk: one call for all the staged bodies
    instead of one fsync each (Linux's syncfs; where there is none, every filesystem's, os.sync).

    Raises OSError when the flush fails (a writeback error such as EIO or ENOSPC): os.sync reports no error,
    so it stands in only for a syncfs that does not exist, never for one that failed.
    """
    import ctypes

    fd = os.open(directory, os.O_RDONLY)
    try:
        syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
        if syncfs is None:
            os.sync()
        elif syncfs(fd) != 0:
            err = ctypes.get_errno()
            if err != errno.ENOSYS:
                raise OSError(err, f"{os.strerror(err)} (flushing the filesystem to disk)", os.fspath(directory))
            os.sync()
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _digest_or_none(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


class FilesSink:
    """Artifacts of the given kinds as files under `root`."""

    def __init__(self, root: Path, kinds: Iterable[Kind] | None = None, name: str = "files",
                 validate: Callable[[Artifact, Path], None] | None = None,
                 after_write: Callable[[], None] | None = None, *,
                 deep_every_seconds: float = DEEP_EVERY_SECONDS, settle_seconds: float = SETTLE_SECONDS) -> None:
        self.root = root
        self.kinds = frozenset(kinds) if kinds is not None else frozenset(Kind)
        self._kind_values = {k.value for k in self.kinds}
        self.name = name
        self._validate = validate
        self._after_write = after_write
        self._deep_every = deep_every_seconds
        self._settle_ns = int(settle_seconds * 1e9)
        self._dirty = False
        self._lock = threading.Lock()
        self._manifest = self.root / MANIFEST
        self._journal = self.root / f"{JOURNAL_PREFIX}{name}"
        # What the manifest and this sink's journal say, as of `_seen` (their signatures when last read
        # or written by this sink): read again only when another writer changed them.
        self._seen: tuple[_Signature | None, _Signature | None] | None = None
        self._files: dict[str, Entry] = {}  # path -> entry, every sink's
        self._by_id: dict[str, str] = {}  # artifact id -> path
        self._delta: dict[str, Entry | None] = {}  # this sink's journal folded by path (None: not ours any more)
        self._lines = 0  # records in the journal
        self._journal_checked = False  # the journal ends with a whole line (a crash may have cut one)
        # path -> (stat, entry, observed) when this process last hashed the file, found the entry's digest
        # and the stat settled: a fast listing answers with that observed while stat and entry are the same
        self._trusted: dict[str, tuple[_Stat, Entry, Observed]] = {}
        self._where: dict[str, str] = {}  # path -> absolute path, checked once
        # this sink's last listing (id -> observed), kept up to date with its own writes: a scoped listing
        # starts from it and looks at the scope again
        self._listed: dict[str, Observed] | None = None
        self._staging: Path | None = None  # where this process's workers stage bodies (see StagesWrites)
        self._staged = 0  # bodies this process staged (their file names)
        self._flushed = False  # the staged bodies were flushed to disk (before the first commit)
        self._head_start: threading.Thread | None = None  # a flush begun before the commit (start_flush)
        self._head_start_error: list[OSError] = []  # what that flush raised (read once its thread ended)
        # the error of this staging's first flush (the head start's or the commit's): every later commit fails
        # with it, since a flush after a writeback error no longer reports it (Linux reports it to one caller)
        self._flush_error: OSError | None = None

    # -- ownership records --------------------------------------------------------------------

    def _read_manifest(self) -> dict[str, Entry]:
        try:
            data = json.loads(self._manifest.read_text())
            files = data.get("files", {})
            return {str(path): Entry(str(e["id"]), str(e["digest"]), str(e.get("owner", "")))
                    for path, e in files.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            raise PermanentError(f"{self._manifest}: unreadable manifest ({exc}); "
                                 "refusing to guess what obsctl owns") from exc

    def _sync(self) -> None:
        """Read the manifest and replay the journal again if anyone but this sink changed them."""
        seen = (_signature(self._manifest), _signature(self._journal))
        if seen == self._seen:
            return
        files = self._read_manifest()
        delta, lines = self._replay(files)
        self._keep_listing_if_mine_unchanged(files)
        self._files, self._delta, self._lines = files, delta, lines
        self._by_id = {}
        for path in sorted(files):
            self._by_id.setdefault(files[path].id, path)
        self._seen = seen
        self._journal_checked = False

    def _replay(self, files: dict[str, Entry]) -> tuple[dict[str, Entry | None], int]:
        """Apply the journal to `files`; (the journal folded by path, its line count)."""
        try:
            text = self._journal.read_text()
        except FileNotFoundError:
            return {}, 0
        delta: dict[str, Entry | None] = {}
        # paths announced while not owned: adopted only when their bytes are one of these digests
        unverified: dict[str, set[str]] = {}
        lines = 0
        for line in text.splitlines():
            try:
                record = json.loads(line)
                rel = str(record["path"])
                entry = None if record.get("gone") else Entry(str(record["id"]), str(record["digest"]),
                                                              str(record.get("owner", "")))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a line cut short by a crash
            lines += 1
            if entry is None:
                files.pop(rel, None)
                unverified.pop(rel, None)
            else:
                if rel not in files or rel in unverified:
                    unverified.setdefault(rel, set()).add(entry.digest)
                files[rel] = entry
            delta[rel] = entry
        for rel, digests in unverified.items():
            if _digest_or_none(safe_join(self.root, rel)) not in digests:  # never written, or not ours
                files.pop(rel, None)
                delta[rel] = None
        return delta, lines

    def _keep_listing_if_mine_unchanged(self, files: dict[str, Entry]) -> None:
        """Forget the last listing unless the entries of this sink's kinds in `files` are the ones it knew
        (a fold, or another sink's fold of the shared manifest, changes nothing of this sink's)."""
        if self._listed is None:
            return
        kinds = self._kind_values

        def mine(entries: dict[str, Entry]) -> dict[str, Entry]:
            return {rel: e for rel, e in entries.items() if e.id.partition("/")[0] in kinds}

        if mine(files) != mine(self._files):
            self._listed = None

    def _append(self, record: dict[str, Any]) -> None:
        """One journal line, in one write (a killed process cannot leave half of it)."""
        self._append_lines([_RECORD.encode(record) + "\n"])

    def _append_lines(self, lines: list[str]) -> None:
        """Journal lines (each a record and its newline), in one write: a killed process leaves a prefix of them,
        the last one maybe cut short (replay skips it; the next append starts a new line)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._journal, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if not self._journal_checked:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    lines.insert(0, "\n")  # a line cut short before: never glue a whole one to it
                self._journal_checked = True
            data = memoryview("".join(lines).encode())
            while data:
                data = data[os.write(fd, data):]
            st = os.fstat(fd)
        finally:
            os.close(fd)
        self._lines += sum(1 for line in lines if line != "\n")
        self._seen = (self._seen[0] if self._seen else _signature(self._manifest),
                      (st.st_ino, st.st_size, st.st_mtime_ns))

    def _set(self, rel: str, entry: Entry | None) -> None:
        """Record in memory what the journal now says of `rel`."""
        old = self._files.get(rel)
        if old is not None and self._by_id.get(old.id) == rel:
            del self._by_id[old.id]
        if entry is None:
            self._files.pop(rel, None)
        else:
            self._files[rel] = entry
            self._by_id[entry.id] = rel
        self._delta[rel] = entry
        self._trusted.pop(rel, None)
        if self._listed is not None:
            if old is not None and old.id not in self._by_id:
                self._listed.pop(old.id, None)
            if entry is not None and entry.id.partition("/")[0] in self._kind_values:
                self._listed[entry.id] = Observed(entry.id, None, entry.digest, owner=entry.owner)

    def _disown(self, rel: str) -> None:
        self._append({"path": rel, "gone": True})
        self._set(rel, None)

    def _fold(self) -> None:
        """Write the manifest with this sink's journal folded in (others' entries as on disk), drop the journal."""
        files = self._read_manifest()
        for rel, entry in self._delta.items():
            if entry is None:
                files.pop(rel, None)
            else:
                files[rel] = entry
        atomic_write(self._manifest, manifest_text(files).encode() + b"\n")
        self._journal.unlink(missing_ok=True)
        self._keep_listing_if_mine_unchanged(files)
        self._files, self._delta, self._lines = files, {}, 0
        self._by_id = {}
        for path in sorted(files):
            self._by_id.setdefault(files[path].id, path)
        self._seen = (_signature(self._manifest), None)

    # -- the sink -----------------------------------------------------------------------------

    @property
    def location(self) -> str:
        """The root directory, absolute."""
        return str(self.root.resolve())

    @property
    def contract(self) -> SinkContract:
        """Sequential writes (the journal is shared state); fast listings by stat, deep ones by hash."""
        return SinkContract(deep_every_seconds=self._deep_every)

    def prepare(self, desired: Iterable[Artifact]) -> None:
        """Nothing to learn: files need no desired state before listing."""

    def list_owned(self, deep: bool = True) -> dict[str, Observed]:
        """Owned files of this sink's kinds; `deep` hashes every one, otherwise only those whose stat moved.

        A body is held only for a drifted file (for its diff); the others read theirs on demand.
        """
        return self._list(deep, None)

    def list_scoped(self, scope: Collection[str], deep: bool = False) -> dict[str, Observed]:
        """Owned files of this sink's kinds, only those in `scope` looked at on disk (see ListsScoped)."""
        return self._list(deep, scope)

    def _list(self, deep: bool, scope: Collection[str] | None) -> dict[str, Observed]:
        kinds = self._kind_values
        with self._lock:
            self._sync()
            now = time.time_ns()
            if scope is not None and self._listed is not None:  # the last listing, with the scope looked at again
                out = dict(self._listed)
                for aid in scope:
                    rel = self._by_id.get(aid)
                    if rel is not None and aid.partition("/")[0] in kinds:
                        out[aid] = self._observe(rel, self._files[rel], deep, now)
            else:
                out = {}
                for rel, entry in self._files.items():
                    if entry.id.partition("/")[0] not in kinds:
                        continue
                    if scope is not None and entry.id not in scope:  # counted, not planned: the index's word
                        trusted = self._trusted.get(rel)
                        out[entry.id] = trusted[2] if trusted is not None and trusted[1] == entry else Observed(
                            entry.id, None, entry.digest, owner=entry.owner)
                    else:
                        out[entry.id] = self._observe(rel, entry, deep, now)
            self._listed = dict(out)
        return out

    def _observe(self, rel: str, entry: Entry, deep: bool, now: int) -> Observed:
        """One owned file as it is on disk: from its trusted stat, else read and hashed."""
        path = self._where.get(rel)
        if path is None:
            path = self._where[rel] = os.path.join(os.fspath(self.root), _check_rel(rel))
        try:
            st = os.stat(path)
            trusted = self._trusted.get(rel)
            if not deep and trusted is not None and trusted[0] == _stat_key(st) and trusted[1] == entry:
                return trusted[2]
            body, st = _read_with_stat(path)
        except FileNotFoundError:
            self._trusted.pop(rel, None)
            return Observed(entry.id, b"", entry.digest, drifted=True, owner=entry.owner)
        drifted = hashlib.sha256(body).hexdigest() != entry.digest
        observed = Observed(entry.id, body if drifted else None, entry.digest, drifted, owner=entry.owner,
                            read=functools.partial(_read_or_empty, path))
        if not drifted and now - st.st_ctime_ns >= self._settle_ns:
            self._trusted[rel] = (_stat_key(st), entry, observed)
        else:
            self._trusted.pop(rel, None)
        return observed

    def _placed(self, artifact: Artifact) -> Artifact:
        """The artifact as this sink places it (a subclass may lay files out its own way)."""
        return artifact

    def put(self, artifact: Artifact) -> None:
        """Validate (when configured), then announce in the journal and write atomically."""
        artifact = self._placed(artifact)
        target = safe_join(self.root, artifact.path)
        if self._validate is not None:
            fd, tmp = tempfile.mkstemp(suffix=Path(artifact.path).suffix or ".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(artifact.body)
                self._validate(artifact, Path(tmp))
            finally:
                Path(tmp).unlink(missing_ok=True)
        self._install(Entry(artifact.id, artifact.digest, artifact.owner), artifact.path, target,
                      lambda: atomic_write(target, artifact.body))

    def _install(self, entry: Entry, rel: str, target: Path | str, write: Callable[[], None]) -> None:
        """Announce `entry` at `rel` in the journal, then `write` the file (atomically) and trust what it wrote."""
        with self._lock:
            self._sync()
            moved = self._by_id.get(entry.id)
            if moved is not None and moved != rel:
                safe_join(self.root, moved).unlink(missing_ok=True)
                self._disown(moved)
            before = self._files.get(rel)
            self._append_lines([_announcement(rel, entry)])
            self._set(rel, entry)
            self._dirty = True
            try:
                write()
            except BaseException:
                self._revert([(rel, before)])
                raise
            # what obsctl just wrote needs no hashing before a fast listing trusts it (see the module doc)
            path = os.fspath(target)
            observed = Observed(entry.id, None, entry.digest, owner=entry.owner,
                                read=functools.partial(_read_or_empty, path))
            self._trusted[rel] = (_stat_key(os.stat(path)), entry, observed)
            if self._listed is not None:
                self._listed[entry.id] = observed

    # -- staged writes (StagesWrites) ---------------------------------------------------------

    def begin_staging(self) -> dict[str, Observed]:
        """Read the ownership records (no file is read) and forget bodies staged by processes that are gone.

        Everything owned of this sink's kinds, each Observed with neither its body nor a reader (a diff is
        made by `observe`'s caller): what `observe` and `commit` (and a plan's prune) start from. Raises
        PermanentError when the manifest is unreadable.
        """
        with self._lock:
            self._sync()
            self._drop_stale_staging()
            self._staging = self.root / f"{STAGING_PREFIX}{self.name}-{os.getpid()}"
            self._staged, self._flushed, self._flush_error = 0, False, None
            kinds = self._kind_values
            out: dict[str, Observed] = {}
            for aid, rel in self._by_id.items():  # no reader each: a diff is made where the body is (observe)
                if aid.partition("/")[0] in kinds:
                    entry = self._files[rel]
                    out[aid] = Observed(aid, None, entry.digest, owner=entry.owner)
            return out

    def _drop_stale_staging(self) -> None:
        prefix = f"{STAGING_PREFIX}{self.name}-"
        try:
            found = [p for p in os.listdir(self.root) if p.startswith(prefix)]
        except FileNotFoundError:
            return
        for name in found:
            pid = name[len(prefix):]
            if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
                continue  # another process's staging, still running
            shutil.rmtree(self.root / name, ignore_errors=True)

    def start_flush(self) -> None:
        """Begin writing the bodies staged so far to disk in a background thread (the workers are done staging).

        A head start only: the commit still flushes the filesystem before its first rename, and waits for this
        one first, so that flush finds little left to write (about 1 GB at 10,000 services otherwise). Nothing
        is started when nothing was staged. An error here is the commit's own: Linux reports a writeback error
        to the first flush that asks, not to a later one, so the commit fails every staged item with it.
        """
        if self._staging is None or self._head_start is not None or not os.path.isdir(self._staging):
            return
        root, failed = self.root, self._head_start_error
        failed.clear()

        def flush() -> None:
            try:
                _syncfs(root)
            except OSError as exc:
                failed.append(exc)

        self._head_start = threading.Thread(target=flush, name=f"obsctl-flush-{self.name}", daemon=True)
        self._head_start.start()

    def _await_head_start(self) -> OSError | None:
        """Wait for the head start's flush, if one runs; what it raised (None: nothing, or it succeeded)."""
        thread, self._head_start = self._head_start, None
        if thread is None:
            return None
        thread.join()
        failed = self._head_start_error[:1]
        self._head_start_error.clear()
        return failed[0] if failed else None

    def observe(self, artifact: Artifact) -> Observed | None:
        """What a deep listing finds under the artifact's id (None: not owned), read to compare with what
        obsctl would write: the owned file's bytes are compared with the body instead of hashed."""
        rel = self._by_id.get(artifact.id)
        if rel is None or artifact.kind not in self.kinds:
            return None
        entry = self._files[rel]
        path = os.path.join(self.root, _check_rel(rel))
        read = functools.partial(_read_or_empty, path)
        if entry.digest != artifact.digest:  # an update whatever the file holds: not read now
            return Observed(entry.id, None, entry.digest, owner=entry.owner, read=read)
        try:
            with open(path, "rb") as fh:
                body = fh.read()
        except FileNotFoundError:
            return Observed(entry.id, b"", entry.digest, drifted=True, owner=entry.owner)
        if body == artifact.body:
            return Observed(entry.id, None, entry.digest, owner=entry.owner, read=read)
        return Observed(entry.id, body, entry.digest, drifted=True, owner=entry.owner, read=read)

    def stage(self, artifact: Artifact) -> Staged:
        """Write the body aside (validated when configured), ready for `commit`; raises like `put`.

        Not synced one by one: the first `commit` flushes the filesystem once, before any staged body is
        renamed into place (so a rename never exposes bytes that are not on disk yet, as with `put`).
        """
        if self._staging is None:
            raise PermanentError(f"{self.name}: stage() before begin_staging()")
        placed = self._placed(artifact)
        _check_rel(placed.path)
        self._staged += 1
        name = f"{os.getpid()}-{self._staged}{Path(placed.path).suffix or '.tmp'}"
        tmp = os.path.join(self._staging, name)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            self._staging.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:  # plain writes: a buffered file object costs more than the write of a body this size
                data = memoryview(placed.body)
                while data:
                    data = data[os.write(fd, data):]
                os.fchmod(fd, 0o644)
            finally:
                os.close(fd)
            if self._validate is not None:
                self._validate(placed, Path(tmp))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return Staged(artifact.path, artifact.digest, artifact.owner, target=placed.path, token=name)

    def commit(self, artifact_id: str, staged: Staged) -> None:
        """Put a staged body in place: announced in the journal, then renamed over its path (as `put` does)."""
        error = self.commit_many([(artifact_id, staged)])[0]
        if error is not None:
            raise error

    def commit_many(self, items: Sequence[tuple[str, Staged]]) -> list[Exception | None]:
        """Put staged bodies in place: every one announced in the journal (one write), the filesystem flushed
        once (the staged bodies and those lines), then each renamed over its path. The error of each item (None
        when in place): one that fails is reverted alone, as a failed `put` is; a journal or flush that fails is
        the error of every item (none is renamed), so the rest of a plan still runs.

        The crash rules are `put`'s, item by item (see the module doc): an announced path not renamed yet is
        owned and drifted when it was owned, and not adopted when it was not (its bytes are not the announced
        ones).
        """
        errors: list[Exception | None] = [None] * len(items)
        todo: list[tuple[int, str, str, str, Entry]] = []  # (item, source, target, rel, entry)
        root, staging = os.fspath(self.root), os.fspath(self._staging or "")
        with self._lock:
            self._sync()
            if items and not self._flushed and self._flush_error is None:
                self._flush_error = self._await_head_start()
            for i, (aid, staged) in enumerate(items):
                try:
                    if self._staging is None or not staged.token or "/" in staged.token:
                        raise PermanentError(f"{self.name}: {aid} was not staged here")
                    rel = _check_rel(staged.target)
                except PermanentError as exc:
                    errors[i] = exc
                    continue
                if self._flush_error is not None:  # a flush failed: the staged bodies may not be on disk
                    errors[i] = self._flush_error
                    continue
                moved = self._by_id.get(aid)
                if moved is not None and moved != rel:
                    safe_join(self.root, moved).unlink(missing_ok=True)
                    self._disown(moved)
                todo.append((i, f"{staging}/{staged.token}", f"{root}/{rel}", rel,
                             Entry(aid, staged.digest, staged.owner)))
            if not todo:
                return errors
            befores = [self._files.get(rel) for _i, _s, _t, rel, _e in todo]
            try:
                self._append_lines([_announcement(rel, entry) for _i, _s, _t, rel, entry in todo])
            except Exception as exc:  # the journal refused the batch (a full disk): no item of it is in place
                for i, *_ in todo:
                    errors[i] = exc
                return errors
            for _i, _s, _t, rel, entry in todo:
                self._set(rel, entry)
            self._dirty = True
            reverted: list[tuple[str, Entry | None]] = []
            done = 0
            try:
                if not self._flushed:  # before the first rename, so no rename exposes bytes not on disk yet
                    try:
                        _syncfs(self.root)
                    except Exception as exc:  # an I/O error: nothing renamed (the bodies might not be on disk)
                        if isinstance(exc, OSError):
                            self._flush_error = exc  # a later flush would not see it again: later batches fail too
                        for i, *_ in todo:
                            errors[i] = exc
                        reverted.extend((rel, before) for (_i, _s, _t, rel, _e), before in zip(todo, befores,
                                                                                             strict=True))
                        return errors
                    self._flushed = True
                for i, source, target, rel, entry in todo:
                    try:
                        try:
                            os.replace(source, target)
                        except FileNotFoundError:  # its directory is new (or the staged body is gone: raised again)
                            os.makedirs(os.path.dirname(target), exist_ok=True)
                            os.replace(source, target)
                    except Exception as exc:  # OSError (a full disk): this item only
                        errors[i] = exc
                        reverted.append((rel, befores[done]))
                    else:
                        # what obsctl just wrote needs no hashing before a fast listing trusts it (module doc)
                        observed = Observed(entry.id, None, entry.digest, owner=entry.owner,
                                            read=functools.partial(_read_or_empty, target))
                        with contextlib.suppress(OSError):  # in place either way; untrusted, it is hashed
                            self._trusted[rel] = (_stat_key(os.stat(target)), entry, observed)
                        if self._listed is not None:
                            self._listed[entry.id] = observed
                    done += 1
            except BaseException:  # interrupted: what was not renamed is what obsctl owned there before
                reverted.extend((rel, before) for (_i, _s, _t, rel, _e), before in zip(todo[done:], befores[done:],
                                                                                     strict=True))
                raise
            finally:
                self._revert(reverted)
        return errors

    def _revert(self, paths: Sequence[tuple[str, Entry | None]]) -> None:
        """Announced and not written: what each path held before is what obsctl owns there (if anything).
        Should the journal refuse these lines too (a full disk), replay's digest check reaches the same
        answer: the path's bytes are not the announced ones."""
        for rel, before in paths:
            self._set(rel, before)
        if paths:
            with contextlib.suppress(OSError):
                self._append_lines([_RECORD.encode({"path": rel, "gone": True}) + "\n" if before is None
                                    else _announcement(rel, before) for rel, before in paths])

    def end_staging(self) -> None:
        """Remove whatever was staged and not committed."""
        failed = self._await_head_start()
        if failed is not None:  # no commit came to fail with it (nothing staged is put in place): said here
            log.warning("%s: flushing %s to disk failed: %s", self.name, self.root, failed)
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def delete(self, observed: Observed) -> None:
        """Remove an owned file, then its record; empty directories are removed too."""
        with self._lock:
            self._sync()
            rel = self._by_id.get(observed.id)
            if rel is None:
                return
            path = safe_join(self.root, rel)
            path.unlink(missing_ok=True)
            self._disown(rel)
            self._dirty = True
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
        """Fold the journal when it has grown, then run the after-write hook if anything changed or its
        last run failed.

        A failure is remembered in RELOAD_PENDING beside the files (so the next round, or the next
        `obsctl apply` process, runs the hook again) and re-raised; a success clears it.
        """
        with self._lock:
            self._sync()
            if self._lines and self._lines * FOLD_RATIO >= len(self._files):
                self._fold()
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
