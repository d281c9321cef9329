"""Prometheus rule files: checked with `promtool check rules` before they replace the old file, then reloaded.

Files land under `root` without the `prometheus/rules/` prefix of the artifact path
(`root/<namespace>/<service>.rules.yml`): point Prometheus at `rule_files: [<root>/*/*.rules.yml]`.
Prometheus is reloaded (POST /-/reload) once per batch, only when something was written.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx

from obsctl.model.artifact import Artifact, Kind
from obsctl.sinks.files import FilesSink
from obsctl.sinks.reload import check_with, reloader

PREFIX = "prometheus/rules/"


class RuleFilesSink(FilesSink):
    """Kind.PROMETHEUS_RULES as validated files under `root`, with a Prometheus reload after a batch."""

    def __init__(self, root: Path, prometheus_url: str = "", promtool: str = "promtool",
                 client: httpx.Client | None = None, name: str = "prometheus-rules") -> None:
        super().__init__(root, {Kind.PROMETHEUS_RULES}, name=name,
                         validate=check_with([promtool, "check", "rules"], "promtool check rules"),
                         after_write=reloader(prometheus_url, "Prometheus", client) if prometheus_url else None)

    def put(self, artifact: Artifact) -> None:
        """Validate and write one rule file (path relative to the rules directory)."""
        path = artifact.path[len(PREFIX):] if artifact.path.startswith(PREFIX) else artifact.path
        super().put(replace(artifact, path=path))
