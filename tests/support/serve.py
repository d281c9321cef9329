"""Run `obsctl serve` as a real process on a free 127.0.0.1 port, for integration tests and benchmarks.

``ServeProcess(workdir, settings)`` writes ``settings`` (merged over test defaults: a private
state database, out dir and catalog copy under ``workdir``) to a YAML config, starts
``python -m obsctl.cli serve --config ...`` in its own session, and stops it by PID.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from tests.support.alerting import UNDELIVERED
from tests.support.binaries import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples" / "catalog"
READ_TOKEN = "read-token-0123456789"
WRITE_TOKEN = "write-token-0123456789"


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """base updated recursively with extra (copies)."""
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def service_doc(name: str, objective: float = 99.9, owner: str = "team-reg", namespace: str = "default"
                ) -> dict[str, Any]:
    """A small obsctl.dev/v1 Service document."""
    return {"apiVersion": "obsctl.dev/v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"owner": owner, "tier": 2,
                     "slos": [{"name": "availability", "objective": objective, "sli": {"availability": {}}}]}}


class ServeProcess:
    """One `obsctl serve` replica."""

    def __init__(self, workdir: Path, settings: dict[str, Any] | None = None, copy_catalog: bool = True,
                 env: dict[str, str] | None = None, name: str = "serve") -> None:
        self.workdir = workdir
        self.name = name
        workdir.mkdir(parents=True, exist_ok=True)
        self.catalog_dir = workdir / "catalog"
        if copy_catalog and not self.catalog_dir.exists():
            shutil.copytree(EXAMPLES, self.catalog_dir)
        self.catalog_dir.mkdir(exist_ok=True)
        self.out_dir = workdir / "out"
        self.port = free_port()
        defaults: dict[str, Any] = {
            "out_dir": str(self.out_dir),
            "state_url": f"sqlite:///{workdir / 'state.db'}",
            "catalog": {"path": str(self.catalog_dir)},
            "alerting": UNDELIVERED,
            "serve": {"listen": f"127.0.0.1:{self.port}", "resync_seconds": 30,
                      "read_tokens": [READ_TOKEN], "write_tokens": [WRITE_TOKEN]},
        }
        self.settings = deep_merge(defaults, settings or {})
        self.settings["serve"]["listen"] = f"127.0.0.1:{self.port}"
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        self.stdout_path = workdir / f"{name}.out"
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30,
                                   headers={"Authorization": f"Bearer {WRITE_TOKEN}"})

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_ready: bool = True, timeout: float = 60.0) -> None:
        """Start the process (and wait for /readyz 200 unless told not to)."""
        self.config_path.write_text(yaml.safe_dump(self.settings))
        env = {k: v for k, v in os.environ.items() if not k.startswith("OBSCTL_")}
        env.update(self.env)
        with self.log_path.open("ab") as log, self.stdout_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "obsctl.cli", "serve", "--config", str(self.config_path)],
                cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=log, start_new_session=True)
        if wait_ready:
            self.wait_ready(timeout)
        else:
            self.wait_listening(timeout)

    def alive(self) -> bool:
        """The process is running."""
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self) -> None:
        if not self.alive():
            rc = self.proc.returncode if self.proc else None
            raise RuntimeError(f"{self.name} exited with {rc}\n{self.log_tail()}")

    def wait_listening(self, timeout: float = 60.0) -> None:
        """Until /healthz answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(httpx.TransportError):
                if self.client.get("/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not listening after {timeout}s\n{self.log_tail()}")

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until /readyz is 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(httpx.TransportError):
                if self.client.get("/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout}s\n{self.log_tail()}")

    def is_leader(self) -> bool:
        """What /readyz says about leadership (False when unreachable)."""
        try:
            return bool(self.client.get("/readyz", timeout=2).json().get("leader"))
        except (httpx.TransportError, ValueError):
            return False

    def wait_for(self, predicate: Any, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"
                 ) -> Any:
        """Poll predicate() until truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not met within {timeout}s\n{self.log_tail()}")
            time.sleep(interval)

    def service_status(self, namespace: str, name: str) -> dict[str, Any] | None:
        """GET /status/ns/name, None on 404."""
        resp = self.client.get(f"/status/{namespace}/{name}")
        return resp.json() if resp.status_code == 200 else None

    def last_round(self) -> dict[str, Any] | None:
        """The last recorded round."""
        got = self.client.get("/status").json().get("last_round")
        return got if isinstance(got, dict) else None

    def wait_round_after(self, wall: float, timeout: float = 30.0) -> dict[str, Any]:
        """Until a reconcile round that started after `wall` (time.time()) has finished; returns it."""
        def done() -> dict[str, Any] | None:
            last = self.last_round()
            return last if last and last.get("started_at", 0) > wall else None
        result: dict[str, Any] = self.wait_for(done, timeout, what=f"a round after {wall}")
        return result

    def send(self, sig: int) -> None:
        """Send a signal to the process."""
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Signal the process and wait; SIGKILL after timeout. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def close(self) -> None:
        """Stop and close the client."""
        self.stop()
        self.client.close()

    def log_tail(self, lines: int = 30) -> str:
        """The end of the JSON log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return f"--- {self.name} log tail ---\n" + "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ServeProcess:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root (manifest excluded) by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}
