"""The otelcol-obsctl collector for tests: built once from collectors/builder-config.yaml, run on loopback.

`otelcol_binary()` returns the binary: `$OBSCTL_OTELCOL` if set, else whatever
`scripts/build-collector.sh` prints (it builds on a cache miss, several minutes on 2 cores).
Without Go the test is skipped locally and fails under CI=true.

`run_collector(config_path)` starts the collector, waits until its health_check extension answers,
yields a `RunningCollector`, then stops it by PID (SIGTERM, wait) however the block exits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.binaries import log_tail, missing_component, stop_process, wait_http_ok

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-collector.sh"
MANIFEST = REPO / "collectors" / "builder-config.yaml"

# Internal telemetry listens on localhost:8888 by default; two collectors would collide there.
NO_INTERNAL_METRICS = "--set=service::telemetry::metrics::level=none"

_built: Path | None = None


def otelcol_binary() -> Path:
    """Path of otelcol-obsctl, building it (once per process) when needed; fail/skip if impossible."""
    global _built  # noqa: PLW0603 - one build per test process
    override = os.environ.get("OBSCTL_OTELCOL")
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            pytest.fail(f"OBSCTL_OTELCOL={override} is not an executable file", pytrace=False)
        return path
    if _built is not None:
        return _built
    # The script answers from its cache without Go; only a cache miss needs Go.
    proc = subprocess.run(
        [str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=3600, check=False, cwd=REPO
    )
    if proc.returncode != 0 and shutil.which("go") is None:
        missing_component("otelcol-obsctl is not built and Go is missing to build it (scripts/build-collector.sh)")
    if proc.returncode != 0:
        pytest.fail(
            f"scripts/build-collector.sh failed with {proc.returncode}:\n{proc.stderr[-4000:]}", pytrace=False
        )
    path = Path(proc.stdout.strip().splitlines()[-1])
    if not os.access(path, os.X_OK):
        pytest.fail(f"scripts/build-collector.sh printed {path}, which is not executable", pytrace=False)
    _built = path
    return path


@dataclass
class RunningCollector:
    """A started collector: its process, health URL and log file."""

    proc: subprocess.Popen[bytes]
    health_url: str
    log_path: Path
    config_path: Path

    @property
    def pid(self) -> int:
        """The collector's PID."""
        return self.proc.pid

    def log_text(self) -> str:
        """Everything the collector logged so far."""
        return self.log_path.read_text(errors="replace")


def health_check_url(config: Mapping[str, Any]) -> str:
    """The URL of the health_check extension that `service.extensions` enables in `config`."""
    service = config.get("service") or {}
    extensions = config.get("extensions") or {}
    for ext_id in service.get("extensions") or ():
        if str(ext_id).split("/", 1)[0] != "health_check":
            continue
        body = extensions.get(ext_id) or {}
        endpoint = str(body.get("endpoint") or "localhost:13133")
        path = str(body.get("path") or "/")
        host, _, port = endpoint.rpartition(":")
        if port == "0":
            raise ValueError(f"health_check {ext_id} listens on port 0; give it a fixed free port")
        return f"http://{host or '127.0.0.1'}:{port}{path}"
    raise ValueError("the config needs a health_check extension listed in service.extensions")


@contextmanager
def run_collector(
    config_path: Path | str,
    *,
    timeout: float = 60.0,
    extra_args: Sequence[str] = (),
    internal_metrics: bool = False,
    binary: Path | None = None,
    log_dir: Path | str | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[RunningCollector]:
    """Start otelcol-obsctl with `config_path`, wait for health_check readiness, stop it on exit.

    The config must enable a health_check extension on a fixed port (pick one with
    tests.support.binaries.free_port). Internal telemetry is switched off unless
    `internal_metrics` is true, so parallel collectors do not fight over port 8888. Raises
    RuntimeError (with the log tail) if the collector exits before it is ready, TimeoutError if it
    never becomes ready.
    """
    config_path = Path(config_path)
    url = health_check_url(yaml.safe_load(config_path.read_text()) or {})
    exe = binary or otelcol_binary()
    own_dir = None if log_dir is not None else tempfile.mkdtemp(prefix="otelcol-")
    log_path = Path(log_dir or own_dir or ".") / f"otelcol-{config_path.stem}.log"
    args = [str(exe), f"--config={config_path}", *([] if internal_metrics else [NO_INTERNAL_METRICS]), *extra_args]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **env} if env is not None else None,
        )
    try:
        wait_http_ok(url, timeout, proc=proc, log_path=log_path)
        yield RunningCollector(proc, url, log_path, config_path)
    finally:
        code = stop_process(proc)
        if own_dir is not None and code in (0, -15):
            shutil.rmtree(own_dir, ignore_errors=True)


READY_MESSAGE = "Everything is ready. Begin running and processing data."


def collector_exits_with_error(
    config_path: Path | str, *, binary: Path | None = None, timeout: float = 30.0
) -> tuple[bool, str]:
    """Start the collector; (True, log tail) if it exits non-zero before it logs that it is ready.

    For checks the collector makes only at start-up (tail_sampling policies). A collector that
    reports readiness counts as started (False, log tail) and is stopped by PID at once.
    """
    exe = binary or otelcol_binary()
    with tempfile.TemporaryDirectory(prefix="otelcol-start-") as tmp:
        log_path = Path(tmp) / "otelcol.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [str(exe), f"--config={config_path}", NO_INTERNAL_METRICS],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                code = proc.poll()
                if code is not None:
                    return code != 0, log_tail(log_path)
                if READY_MESSAGE in log_path.read_text(errors="replace"):
                    return False, log_tail(log_path)
                time.sleep(0.05)
            raise TimeoutError(f"collector neither exited nor became ready in {timeout}s" + log_tail(log_path))
        finally:
            stop_process(proc)
