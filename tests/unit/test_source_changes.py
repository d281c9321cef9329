"""Sources that know what changed: a read after an event re-reads only the changed files, and always
answers what a whole read would."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from obsctl.sources import directory
from obsctl.sources.directory import DirectorySource, read_directory
from obsctl.sources.registrations import RegistrationSource


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[DirectorySource, list[str]]]:
    root = tmp_path / "catalog"
    (root / "sub").mkdir(parents=True)
    for i in range(5):
        (root / f"s{i}.yaml").write_text(f"n: {i}\n")
    (root / "sub" / "t.yml").write_text("t: 1\n")
    src = DirectorySource(root)
    woke: list[str] = []
    stop = threading.Event()
    t = threading.Thread(target=src.watch, args=(woke.append, stop), daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while src.watch_mode != "inotify" and time.monotonic() < deadline:
        time.sleep(0.01)
    if src.watch_mode != "inotify":
        stop.set()
        pytest.skip("inotify is not available here")  # the polling fallback walks: covered elsewhere
    src.fetch()  # the first (full) read
    try:
        yield src, woke
    finally:
        stop.set()
        t.join(5)


def _settle(woke: list[str], before: int) -> None:
    deadline = time.monotonic() + 5
    while len(woke) <= before and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.15)  # the rest of a burst


def _same_as_a_walk(src: DirectorySource) -> list:
    got = src.fetch_changed().files
    assert [(f.path, f.data) for f in got] == [(f.path, f.data) for f in read_directory(src.root, src.globs)]
    return got


def test_a_read_after_events_equals_a_walk_and_rereads_only_what_changed(
        watched: tuple[DirectorySource, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    src, woke = watched
    root = src.root
    first = _same_as_a_walk(src)
    walks: list[Path] = []

    def counted(root: Path, *args: object, **kwargs: object) -> object:
        walks.append(root)
        return read_directory(root, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(directory, "read_directory", counted)
    files = [
        lambda: (root / "s1.yaml").write_text("n: changed\n"),
        lambda: (root / "new.yaml").write_text("n: new\n"),
        (root / "s2.yaml").unlink,
        lambda: (root / ".s3.yaml.tmp").write_text("n: 3b\n") or os.replace(root / ".s3.yaml.tmp", root / "s3.yaml"),
        lambda: (root / "notes.txt").write_text("not a catalog file\n"),
    ]
    directories = [
        lambda: (root / "d2").mkdir() or (root / "d2" / "x.yaml").write_text("x: 1\n"),
        lambda: shutil.rmtree(root / "sub"),
        lambda: (root / "_gen").mkdir() or (root / "_gen" / "g.yaml").write_text("g: 1\n"),
    ]
    for step in files + directories:
        before = len(woke)
        step()
        _settle(woke, before)
        _same_as_a_walk(src)
        if step in files:
            assert not walks  # only the reported files were read
    assert walks  # a directory that came or went: walked
    last = {f.path: f for f in _same_as_a_walk(src)}
    # an unchanged file is the very same SourceFile (not read again)
    assert last[str(root / "s0.yaml")] is next(f for f in first if f.path == str(root / "s0.yaml"))


def test_without_a_watcher_a_changed_read_walks(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("a: 1\n")
    src = DirectorySource(tmp_path)
    assert [f.path for f in src.fetch_changed().files] == [str(tmp_path / "a.yaml")]
    (tmp_path / "b.yaml").write_text("b: 1\n")
    assert len(src.fetch_changed().files) == 2


@dataclass
class _Reg:
    namespace: str
    name: str
    document: bytes


class _Store:
    def __init__(self) -> None:
        self.regs: list[_Reg] = []
        self.revision = 0
        self.listings = 0

    def list_registrations(self) -> list[_Reg]:
        self.listings += 1
        return list(self.regs)

    def registrations_revision(self) -> int:
        return self.revision


def test_registrations_are_listed_again_only_when_the_revision_moved() -> None:
    store = _Store()
    store.regs.append(_Reg("default", "a", b"a"))
    src = RegistrationSource(store)
    assert [f.path for f in src.fetch_changed().files] == ["registration:default/a"]
    assert [f.path for f in src.fetch_changed().files] == ["registration:default/a"]
    assert store.listings == 1
    store.regs.append(_Reg("default", "b", b"b"))
    store.revision += 1
    assert [f.path for f in src.fetch_changed().files] == ["registration:default/a", "registration:default/b"]
    assert store.listings == 2
    src.fetch()  # a full read always lists
    assert store.listings == 3


def test_a_replaced_root_is_walked(watched: tuple[DirectorySource, list[str]], tmp_path: Path) -> None:
    src, _woke = watched
    src.root.rename(tmp_path / "away")
    src.root.mkdir()  # an empty catalog where the watched one was: never the old files from memory
    assert src.fetch_changed().files == []
