"""Prometheus rule files: checked with `promtool check rules` before they replace the old file, then reloaded.

Files land flat under `root` as `<namespace>__<service>.rules.yml` (catalog namespaces hold no
`_`, so the name is unambiguous): Prometheus globs only the last path element, so point it at
`rule_files: [<root>/*.rules.yml]`.
Prometheus is reloaded (POST /-/reload) once per batch, only when something was written.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx

from obsctl.model.artifact import Artifact, Kind
from obsctl.sinks.files import FilesSink
from obsctl.sinks.reload import check_with, reloader

SUFFIX = ".rules.yml"


class RuleFilesSink(FilesSink):
    """Kind.PROMETHEUS_RULES as validated files under `root`, with a Prometheus reload after a batch."""

    def __init__(self, root: Path, prometheus_url: str = "", promtool: str = "promtool",
                 client: httpx.Client | None = None, name: str = "prometheus-rules") -> None:
        super().__init__(root, {Kind.PROMETHEUS_RULES}, name=name,
                         validate=check_with([promtool, "check", "rules"], "promtool check rules"),
                         after_write=reloader(prometheus_url, "Prometheus", client) if prometheus_url else None)

    def _placed(self, artifact: Artifact) -> Artifact:
        """One rule file, flat in the rules directory."""
        return replace(artifact, path=rule_file_name(artifact.key))


def rule_file_name(key: str) -> str:
    """The file name of a service's rules from its artifact key `<namespace>/<service>`."""
    return key.replace("/", "__") + SUFFIX
