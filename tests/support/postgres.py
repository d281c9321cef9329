"""A throw-away PostgreSQL server on 127.0.0.1 for tests.

PostgreSQL refuses to run as root, so when the tests run as root the cluster is owned by
the `postgres` OS user: initdb and the postmaster are started with Popen(user="postgres"),
which makes the child PID the postmaster itself (stop by PID works, no su/runuser in between).
The cluster then lives in its own directory under the system temp dir, because pytest's
tmp_path parents are mode 0700 root and the postgres user cannot traverse them.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tests.support.binaries import free_port, log_tail, missing_component, require_binary, stop_process

_START_ATTEMPTS = 3


class PostgresServer:
    """initdb + postgres on 127.0.0.1:free port, trust auth, superuser `postgres`, database `database`.

    `tmp_dir` holds the server log when the tests do not run as root; as root everything
    (data, socket, log) lives in a private dir under the system temp dir, removed by `stop()`.
    """

    def __init__(self, tmp_dir: Path | str | None = None, database: str = "obsctl") -> None:
        self.database = database
        self.port = free_port()
        self._as_root = os.geteuid() == 0
        self._run_user: str | None = None
        if self._as_root:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                missing_component("running as root and OS user 'postgres' is missing; install postgresql")
                raise
            self._run_user = "postgres"
            self.root = Path(tempfile.mkdtemp(prefix="obsctl-pg-"))
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._owns_root = True
        else:
            base = Path(tmp_dir) if tmp_dir is not None else None
            if base is not None:
                base.mkdir(parents=True, exist_ok=True)
            self.root = Path(tempfile.mkdtemp(prefix="obsctl-pg-", dir=base))
            self._owns_root = True
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log_path = self.root / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    # -- DSNs ----------------------------------------------------------------

    @property
    def dsn(self) -> str:
        """SQLAlchemy URL: postgresql+psycopg://postgres@127.0.0.1:PORT/<database>."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def libpq_dsn(self) -> str:
        """libpq/psycopg URL: postgresql://postgres@127.0.0.1:PORT/<database>."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def dsn_for(self, database: str, driver: str = "postgresql+psycopg") -> str:
        """URL for another database on this server."""
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    # -- lifecycle -------------------------------------------------------------

    def _popen_kwargs(self) -> dict[str, Any]:
        if self._run_user is None:
            return {}
        return {"user": self._run_user, "group": "postgres", "extra_groups": [], "cwd": str(self.root)}

    def _initdb(self) -> None:
        initdb = require_binary("initdb")
        result = subprocess.run(
            [
                initdb,
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",  # local, host 127.0.0.1/32 and ::1/128
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **self._popen_kwargs(),
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed rc={result.returncode}\n{result.stdout}{result.stderr}")

    def _command(self) -> list[str]:
        return [
            require_binary("postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.socket_dir}",
            # a disposable cluster: durability off for speed
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]

    def _connect(self, database: str, timeout: float = 5.0) -> Any:
        try:
            import psycopg  # only this helper needs the driver
        except ImportError:
            missing_component("python package psycopg is not installed (pip install -e '.[dev]')")
            raise
        return psycopg.connect(self.dsn_for(database, "postgresql"), connect_timeout=int(max(1, timeout)))

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}" + log_tail(self.log_path))
            try:
                with self._connect("postgres", timeout=2.0) as conn:
                    conn.execute("select 1")
                return
            except Exception as err:  # the server is starting: "the database system is starting up"
                last = err
            if time.monotonic() > deadline:
                raise TimeoutError(f"postgres not ready after {timeout}s: {last!r}" + log_tail(self.log_path))
            time.sleep(0.05)

    def start(self, timeout: float = 30.0) -> None:
        """initdb (first start only), start the postmaster, wait for a connection, create the database."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"postgres already running (pid {self.proc.pid})")
        t0 = time.monotonic()
        first_start = not self.data_dir.exists()
        if first_start:
            self._initdb()
        for attempt in range(_START_ATTEMPTS):
            self.socket_dir.mkdir(exist_ok=True)
            with self.log_path.open("ab") as log:
                offset = log.tell()
                if self._run_user is not None:
                    shutil.chown(self.socket_dir, self._run_user, "postgres")
                    shutil.chown(self.log_path, self._run_user, "postgres")
                self.proc = subprocess.Popen(
                    self._command(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    **self._popen_kwargs(),
                )
            try:
                self._wait_ready(timeout)
            except RuntimeError:
                stop_process(self.proc, term_signal=signal.SIGINT)
                this_run = self.log_path.read_bytes()[offset:]
                if attempt + 1 < _START_ATTEMPTS and b"Address already in use" in this_run:
                    self.port = free_port()
                    continue
                raise
            except BaseException:  # timeout, Ctrl-C: never leave the postmaster behind
                stop_process(self.proc, term_signal=signal.SIGINT)
                raise
            break
        if first_start and self.database != "postgres":
            self.create_database(self.database)
        self.startup_seconds = time.monotonic() - t0

    def create_database(self, name: str) -> None:
        """CREATE DATABASE `name` (for tests that want an isolated database on the same server)."""
        with self._connect("postgres") as conn:
            conn.autocommit = True
            conn.execute(f'CREATE DATABASE "{name}"')  # test-chosen identifier

    def stop(self, remove: bool = True) -> None:
        """Fast shutdown (SIGINT to the postmaster PID), wait for exit; remove the cluster dir if `remove`."""
        if self.proc is not None:
            stop_process(self.proc, 30.0, term_signal=signal.SIGINT)
        if remove and self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def pid(self) -> int | None:
        """PID of the running postmaster, or None."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
