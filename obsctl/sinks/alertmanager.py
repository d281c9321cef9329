"""The Alertmanager config file: checked with `amtool check-config` before it replaces the old one, then reloaded.

The file is written as `<root>/alertmanager.yml` (the artifact path without its `alertmanager/`
prefix); Alertmanager is reloaded (POST /-/reload) once per batch when it changed.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx

from obsctl.model.artifact import Artifact, Kind
from obsctl.sinks.files import FilesSink
from obsctl.sinks.reload import check_with, reloader

PREFIX = "alertmanager/"


class AlertmanagerSink(FilesSink):
    """Kind.ALERTMANAGER_CONFIG as a validated file under `root`, with an Alertmanager reload after a batch."""

    def __init__(self, root: Path, alertmanager_url: str = "", amtool: str = "amtool",
                 client: httpx.Client | None = None, name: str = "alertmanager") -> None:
        super().__init__(root, {Kind.ALERTMANAGER_CONFIG}, name=name,
                         validate=check_with([amtool, "check-config"], "amtool check-config"),
                         after_write=reloader(alertmanager_url, "Alertmanager", client) if alertmanager_url else None)

    def _placed(self, artifact: Artifact) -> Artifact:
        """The config, its path relative to `root`."""
        path = artifact.path[len(PREFIX):] if artifact.path.startswith(PREFIX) else artifact.path
        return replace(artifact, path=path)
