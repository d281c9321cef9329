"""Leader election. With PostgreSQL one replica holds a lease (a row in `leader_lease`, timed by the
database clock) and reconciles; the others serve reads and try again every second.

- A leader renews its lease every third of its length. It counts itself leader only until the
  lease it last renewed would expire (measured on its own monotonic clock from before the renewal
  was sent), so a leader that cannot renew (database unreachable, process frozen) stops writing
  before anybody else may start.
- A follower takes the lease when it has expired (a frozen or partitioned leader), or at once when
  the holder's database session is gone (a crashed leader: no need to wait for expiry).
- The holder's epoch grows on every takeover; a renewal carries the epoch it holds, so a leader
  that resumes after being frozen finds the lease taken and steps down.
With SQLite there is one process: it is always the leader.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
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
    """Campaign for the lease row of `key`; renew it while leading.

    `on_change(is_leader)` is called on every transition.
    """

    def __init__(self, url: str, key: int = DEFAULT_LOCK_KEY, retry_seconds: float = 1.0, *,
                 check_seconds: float | None = None, on_change: Callable[[bool], None] | None = None,
                 lease_seconds: float = 10.0) -> None:
        self._dsn = libpq_url(url)
        self.key = key
        self.lease_seconds = lease_seconds
        self.retry_seconds = retry_seconds
        self.check_seconds = check_seconds if check_seconds is not None else lease_seconds / 3
        self._on_change = on_change
        self._conn: Any = None
        self._leader = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._valid_until = 0.0  # monotonic: leadership ends here unless renewed
        self._epoch: int | None = None
        self._renewed = False
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.acquired_at: float | None = None

    def is_leader(self) -> bool:
        """True while the lease this process last renewed has not run out (its own clock, with margin)."""
        if not self._leader.is_set():
            return False
        if time.monotonic() >= self._valid_until:
            log.error("leader election: lease not renewed in time; stepping down")
            self._set(False)
            return False
        return True

    def wait_leader(self, timeout: float) -> bool:
        """Block until leader (or timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_leader():
                return True
            self._leader.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.is_leader()

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self._dsn, autocommit=True, connect_timeout=3, keepalives=1, keepalives_idle=5,
                               keepalives_interval=2, keepalives_count=2, application_name="obsctl-leader",
                               options=f"-c statement_timeout={int(self.lease_seconds * 300)}")

    def _claim(self) -> int | None:
        """Take or renew the lease in one statement; the epoch held, or None when another holds it."""
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        row = self._conn.execute(
            """
            INSERT INTO leader_lease AS l (lock_key, holder, backend_pid, epoch, expires_at)
            VALUES (%(key)s, %(me)s, pg_backend_pid(), 1, extract(epoch FROM clock_timestamp()) + %(lease)s)
            ON CONFLICT (lock_key) DO UPDATE SET
                holder = EXCLUDED.holder, backend_pid = EXCLUDED.backend_pid,
                expires_at = EXCLUDED.expires_at,
                epoch = CASE WHEN l.holder = EXCLUDED.holder THEN l.epoch ELSE l.epoch + 1 END
            WHERE (l.holder = EXCLUDED.holder AND l.epoch = %(epoch)s)
               OR l.expires_at < extract(epoch FROM clock_timestamp())
               OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.backend_pid)
            RETURNING epoch
            """, {"key": self.key, "me": self.holder, "lease": self.lease_seconds,
                  "epoch": self._epoch if self._epoch is not None else -1}).fetchone()
        return int(row[0]) if row else None

    def try_acquire(self) -> bool:
        """One attempt (or renewal); True when this process now holds the lease."""
        sent = time.monotonic()
        try:
            epoch = self._claim()
        except Exception as exc:
            log.warning("leader election: cannot reach the database: %s", type(exc).__name__)
            self._close()
            self._renewed = False
            return self.is_leader()  # keep leading until the lease we hold runs out, no longer
        if epoch is None:
            if self._leader.is_set():
                log.error("leader election: the lease was taken over; stepping down")
            self._epoch = None
            self._set(False)
            return False
        # our own deadline starts before the statement was sent: never after the database's
        self._valid_until = sent + self.lease_seconds * 0.8
        self._renewed = True
        if not self._leader.is_set():
            self.acquired_at = time.time()
        self._epoch = epoch
        self._set(True)
        return True

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
            leading = self.try_acquire()
            # a failed renewal is retried at the campaign pace: the lease is running out
            self._stop.wait(self.check_seconds if leading and self._renewed else self.retry_seconds)

    def start(self) -> None:
        """Campaign on a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="obsctl-leader", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Give the lease up (expire it now, so a follower takes over at once) and stop campaigning."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._conn is not None and self._leader.is_set():
            with contextlib.suppress(Exception):
                self._conn.execute("UPDATE leader_lease SET expires_at = 0 WHERE lock_key = %s AND holder = %s",
                                   (self.key, self.holder))
        self._close()
        self._set(False)
