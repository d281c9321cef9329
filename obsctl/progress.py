"""A progress line for long CLI runs: one line on a terminal's stderr, rewritten in place.

Silent when the stream is not a terminal (pipes, CI logs, files) and during the first
`after` seconds, so quick commands and scripts see nothing but their usual output.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

AFTER_SECONDS = 0.5


class Progress:
    """`phase("rendering")`, `step()` per finished item, `close()` erases the line."""

    def __init__(self, stream: TextIO, after: float | None = None, interval: float = 0.1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        isatty = getattr(stream, "isatty", None)
        self.enabled = bool(isatty and isatty())
        self.stream = stream
        self.after = AFTER_SECONDS if after is None else after
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self._last = float("-inf")
        self._label = ""
        self._done = 0
        self._total = 0
        self._width = 0
        self._lock = threading.Lock()

    def phase(self, label: str, total: int = 0) -> None:
        """Start a phase (`rendering`, `writing`); total > 0 shows done/total."""
        with self._lock:
            self._label, self._done, self._total = label, 0, total
            self._show(force=True)

    def step(self, count: int = 1) -> None:
        """count more items of the phase are done (callable from worker threads)."""
        with self._lock:
            self._done += count
            self._show(force=self._total > 0 and self._done >= self._total)

    def close(self) -> None:
        """Erase the line, if one was drawn."""
        with self._lock:
            if self.enabled and self._width:
                self.stream.write("\r" + " " * self._width + "\r")
                self.stream.flush()
            self._width = 0

    def _show(self, force: bool) -> None:
        now = self.clock()
        if not self.enabled or now - self.started < self.after or (not force and now - self._last < self.interval):
            return
        self._last = now
        text = f"obsctl: {self._label}" + (f" {self._done}/{self._total}" if self._total else "") + " …"
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
