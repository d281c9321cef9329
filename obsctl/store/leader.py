"""Leader election. With PostgreSQL one replica holds a session-level advisory lock on a dedicated
connection and reconciles; the others serve reads and try again every second. When the leader
dies its connection closes, PostgreSQL releases the lock, and a follower takes it over.
With SQLite there is one process: it is always the leader.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy.engine import make_url

log = logging.getLogger("obsctl.leader")

DEFAULT_LOCK_KEY = 0x0B5C_7100  # obsctl's advisory lock id (any bigint; the same for every replica)


class Elector(Protocol):
    """Who reconciles."""

    def is_leader(self) -> bool:
        """True while this process may write."""
        ...

    def start(self) -> None:
        """Begin campaigning."""
        ...

    def stop(self) -> None:
        """Give up leadership (release the lock) and stop."""
        ...


class AlwaysLeader:
    """The single-process elector (SQLite)."""

    def is_leader(self) -> bool:
        """Always."""
        return True

    def start(self) -> None:
        """Nothing to do."""

    def stop(self) -> None:
        """Nothing to do."""


def libpq_url(sqlalchemy_url: str) -> str:
    """postgresql+psycopg://... -> postgresql://... for psycopg.connect."""
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresLeader:
    """Campaign for a PostgreSQL advisory lock; keep the holding connection alive and checked.

    The lock connection uses TCP keepalives and is pinged every `check_seconds`: if the ping fails
    (database restarted, network cut) leadership is dropped at once and the campaign resumes.
    `on_change(is_leader)` is called on every transition.
    """

    def __init__(self, url: str, key: int = DEFAULT_LOCK_KEY, retry_seconds: float = 1.0,
                 check_seconds: float = 1.0, on_change: Callable[[bool], None] | None = None) -> None:
        self._dsn = libpq_url(url)
        self.key = key
        self.retry_seconds = retry_seconds
        self.check_seconds = check_seconds
        self._on_change = on_change
        self._conn: Any = None
        self._leader = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.acquired_at: float | None = None

    def is_leader(self) -> bool:
        """True while the lock is held."""
        return self._leader.is_set()

    def wait_leader(self, timeout: float) -> bool:
        """Block until leader (or timeout)."""
        return self._leader.wait(timeout)

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self._dsn, autocommit=True, connect_timeout=3, keepalives=1, keepalives_idle=5,
                               keepalives_interval=2, keepalives_count=2, application_name="obsctl-leader")

    def try_acquire(self) -> bool:
        """One attempt; True when this process now holds the lock."""
        if self._leader.is_set():
            return True
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except Exception as exc:
            log.warning("leader election: cannot reach the database: %s", type(exc).__name__)
            self._close()
            return False
        if row and row[0]:
            self.acquired_at = time.time()
            self._set(True)
            return True
        return False

    def _check(self) -> None:
        try:
            self._conn.execute("SELECT 1").fetchone()
        except Exception as exc:
            log.error("leader election: lost the lock connection (%s); stepping down", type(exc).__name__)
            self._close()
            self._set(False)

    def _set(self, leader: bool) -> None:
        was = self._leader.is_set()
        if leader:
            self._leader.set()
        else:
            self._leader.clear()
        if was != leader:
            log.info("leadership %s", "acquired" if leader else "lost", extra={"fields": {"lock_key": self.key}})
            if self._on_change is not None:
                self._on_change(leader)

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._leader.is_set():
                self._check()
                self._stop.wait(self.check_seconds)
            elif not self.try_acquire():
                self._stop.wait(self.retry_seconds)

    def start(self) -> None:
        """Campaign on a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="obsctl-leader", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Release the lock (explicitly, then by closing the session) and stop campaigning."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._conn is not None and self._leader.is_set():
            with contextlib.suppress(Exception):
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        self._close()
        self._set(False)
