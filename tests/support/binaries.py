"""Locate external binaries for tests, pick free loopback ports, poll HTTP endpoints.

A missing binary fails the test when CI=true (CI must exercise the real component) and
skips it elsewhere, with the install hint in the reason.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

# Debian keeps the PostgreSQL server tools off PATH, one directory per major version.
_POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"

_INSTALL_HINT = "install it with `scripts/setup.sh apt` (as root)"


def _version_key(path: str) -> tuple[int, ...]:
    match = re.search(r"/postgresql/([0-9.]+)/bin", path)
    if not match:
        return (0,)
    return tuple(int(part) for part in match.group(1).split(".") if part)


def find_binary(name: str) -> str | None:
    """Return the path of `name` on PATH or in Debian's PostgreSQL bin dirs (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = [
        os.path.join(d, name) for d in glob.glob(_POSTGRES_BIN_GLOB) if os.access(os.path.join(d, name), os.X_OK)
    ]
    if candidates:
        return max(candidates, key=_version_key)
    return None


def missing_component(reason: str) -> None:
    """Fail (CI=true) or skip (elsewhere) the current test because a component is unavailable."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: real components are required)", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str) -> str:
    """Return the absolute path of binary `name`, or fail (CI=true) / skip the test if it is missing."""
    found = find_binary(name)
    if found is None:
        missing_component(f"binary {name!r} not found on PATH or in {_POSTGRES_BIN_GLOB}; {_INSTALL_HINT}")
        raise AssertionError("unreachable")  # pytest.fail/skip raise
    return found


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (callers retry on a bind race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET `url`; return (status, body) for any HTTP status, raise OSError on connection failure."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_http_ok(
    url: str,
    timeout: float = 30.0,
    *,
    interval: float = 0.05,
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> float:
    """Poll `url` until it answers 200; return the seconds waited.

    With `proc`, stop early with RuntimeError if the process exits (the tail of `log_path`,
    if given, goes into the message). Raise TimeoutError after `timeout` seconds.
    """
    start = time.monotonic()
    last: str = "no attempt"
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"process {proc.args!r} exited with {proc.returncode} before {url} was ready" + log_tail(log_path)
            )
        try:
            status, body = http_get(url, timeout=min(2.0, max(timeout, 0.1)))
            if status == 200:
                return time.monotonic() - start
            last = f"HTTP {status}: {body[:200]!r}"
        except OSError as err:
            last = repr(err)
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{url} not ready after {timeout}s (last: {last})" + log_tail(log_path))
        time.sleep(interval)


def log_tail(path: Path | None, lines: int = 30) -> str:
    """Return the last `lines` lines of a log file, formatted for an error message ('' if none)."""
    if path is None or not path.exists():
        return ""
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last {len(text)} lines of {path} ---\n" + "\n".join(text)


def stop_process(proc: subprocess.Popen[bytes], sig_timeout: float = 10.0, *, term_signal: int | None = None) -> int:
    """Signal `proc` (SIGTERM unless `term_signal` is given), wait for it, SIGKILL if it lingers."""
    if proc.poll() is None:
        if term_signal is None:
            proc.terminate()
        else:
            proc.send_signal(term_signal)
        try:
            proc.wait(timeout=sig_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode
