"""Headless Chromium (Debian's /usr/bin/chromium) for DOM dumps and screenshots in tests.

Every run gets a new empty profile dir and the flags that keep Chromium off the network on
this closed machine (without them it retries connections to Google hosts at every start).
The run is its own process group, killed as a whole on timeout so no renderer lingers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tests.support.binaries import require_binary

BASE_FLAGS = (
    "--headless",
    "--no-sandbox",  # tests run as root; the sandbox refuses root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
)


class ChromiumError(RuntimeError):
    """Chromium exited non-zero, timed out, or did not produce its output."""


def _target(url_or_path: str | Path) -> str:
    text = str(url_or_path)
    if "://" in text or text.startswith(("about:", "data:")):
        return text
    return Path(text).resolve().as_uri()


def run_chromium(args: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run chromium with BASE_FLAGS, a fresh --user-data-dir and `args`; raise ChromiumError on failure."""
    chromium = require_binary("chromium")
    profile = tempfile.mkdtemp(prefix="obsctl-chromium-")
    cmd = [chromium, *BASE_FLAGS, f"--user-data-dir={profile}", *args]
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as err:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise ChromiumError(f"chromium timed out after {timeout}s: {cmd!r}") from err
        finally:
            # the browser may leave helper processes (zygote, crashpad) in its group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        if proc.returncode != 0:
            raise ChromiumError(f"chromium exited {proc.returncode}: {cmd!r}\n{stderr[-3000:]}")
        return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def dump_dom(url_or_path: str | Path, timeout: float = 60.0, virtual_time_budget: int = 5000) -> str:
    """Return the serialized DOM of a page after its scripts ran (`--dump-dom`).

    `virtual_time_budget` (ms of virtual time) lets timers and fetches settle before the dump.
    """
    args = [f"--virtual-time-budget={virtual_time_budget}", "--dump-dom", _target(url_or_path)]
    return run_chromium(args, timeout).stdout


def screenshot(
    html_path_or_url: str | Path,
    png_path: str | Path,
    width: int = 1280,
    height: int = 2000,
    timeout: float = 60.0,
    virtual_time_budget: int = 5000,
) -> Path:
    """Render a page to a PNG of width x height pixels (`--screenshot`); return the PNG path."""
    out = Path(png_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    args = [
        f"--window-size={width},{height}",
        f"--virtual-time-budget={virtual_time_budget}",
        f"--screenshot={out}",
        _target(html_path_or_url),
    ]
    result = run_chromium(args, timeout)
    if not out.exists() or out.stat().st_size == 0:
        raise ChromiumError(f"chromium wrote no screenshot to {out}\n{result.stderr[-3000:]}")
    return out
