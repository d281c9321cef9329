"""Shared helpers of the file-backed sinks: run a validator binary, POST a server's /-/reload."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from obsctl.errors import PermanentError, TemporaryError, status_error
from obsctl.model.artifact import Artifact


def check_with(argv: Sequence[str], what: str, timeout: float = 60.0) -> Callable[[Artifact, Path], None]:
    """A FilesSink validate hook running `argv + [tmp_path]`; PermanentError with the tool's output on failure."""
    def validate(artifact: Artifact, tmp: Path) -> None:
        try:
            result = subprocess.run([*argv, str(tmp)], capture_output=True, text=True, timeout=timeout, check=False)
        except FileNotFoundError:
            raise PermanentError(f"{artifact.id}: {argv[0]} not found: cannot run {what}") from None
        except subprocess.TimeoutExpired:
            raise TemporaryError(f"{artifact.id}: {what} timed out after {timeout:g}s") from None
        if result.returncode != 0:
            output = (result.stdout + result.stderr).replace(str(tmp), artifact.path).strip()
            raise PermanentError(f"{artifact.id}: {what} failed, not written: {output}")
    return validate


def raise_for(resp: httpx.Response, what: str) -> None:
    """TemporaryError for 5xx, 408 and 429 (with Retry-After), PermanentError for other 4xx; nothing below 400."""
    if resp.status_code < 400:
        return
    text = resp.text.strip()[:500]
    raise status_error(resp.status_code, f"{what}: HTTP {resp.status_code}: {text}", resp.headers.get("Retry-After"))


def reloader(base_url: str, what: str, client: httpx.Client | None = None,
             timeout: float = 10.0) -> Callable[[], None]:
    """An after-write hook POSTing `<base_url>/-/reload`; connection errors and 5xx are temporary."""
    url = base_url.rstrip("/") + "/-/reload"

    def reload() -> None:
        try:
            if client is not None:
                resp = client.post(url, timeout=timeout)
            else:
                with httpx.Client(timeout=timeout) as c:
                    resp = c.post(url)
        except httpx.HTTPError as exc:
            raise TemporaryError(f"{what} reload ({url}): {exc}") from exc
        raise_for(resp, f"{what} reload ({url})")
    return reload
