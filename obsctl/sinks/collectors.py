"""Collector config files (agents, gateways, operator manifests), optionally checked by a real collector.

With `otelcol_binary` set, every agent and gateway config is run through `otelcol validate` before it
replaces the old file; a rejected config is a permanent error and the old file stays.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from obsctl.errors import PermanentError, TemporaryError
from obsctl.model.artifact import Artifact, Kind
from obsctl.sinks.files import FilesSink

COLLECTOR_KINDS = frozenset({Kind.COLLECTOR_AGENT, Kind.COLLECTOR_GATEWAY, Kind.COLLECTOR_CRD})


def otelcol_validator(binary: str, timeout: float = 60.0) -> OtelcolValidator:
    """A validate hook for FilesSink that runs `<binary> validate --config=FILE`."""
    return OtelcolValidator(binary, timeout)


class OtelcolValidator:
    """Runs the real collector's own config validation."""

    def __init__(self, binary: str, timeout: float) -> None:
        self.binary = binary
        self.timeout = timeout

    def __call__(self, artifact: Artifact, path: Path) -> None:
        """Raise PermanentError with the collector's message when it rejects the config."""
        if artifact.kind not in (Kind.COLLECTOR_AGENT, Kind.COLLECTOR_GATEWAY):
            return
        try:
            proc = subprocess.run([self.binary, "validate", f"--config={path}"], capture_output=True, text=True,
                                  timeout=self.timeout, check=False)
        except FileNotFoundError as exc:
            raise PermanentError(f"collector binary {self.binary} not found") from exc
        except subprocess.TimeoutExpired as exc:
            raise TemporaryError(f"otelcol validate timed out after {self.timeout:g}s") from exc
        if proc.returncode != 0:
            message = (proc.stderr or proc.stdout).strip().splitlines()
            last = message[-1] if message else f"exit code {proc.returncode}"
            raise PermanentError(f"otelcol validate rejected {artifact.path}: {last}")


def collector_sink(root: Path, otelcol_binary: str | None = None) -> FilesSink:
    """A files sink for collector artifacts under root."""
    return FilesSink(root, COLLECTOR_KINDS, name="collectors",
                     validate=otelcol_validator(otelcol_binary) if otelcol_binary else None)
