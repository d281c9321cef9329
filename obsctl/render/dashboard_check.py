"""Checks every rendered dashboard passes before it becomes an artifact: uid, title, grid bounds, unique
panel ids and refIds, numeric thresholds, and every PromQL expression parses (Grafana's variables
stood in for). The full dashboard JSON-schema validation runs in the tests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from obsctl.render.promql import parse_error

_UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]*\]\]")


def _promql_check(expr: str) -> str | None:
    """Parse an expression with Grafana's variables stood in for; the error text when it does not parse."""
    probe = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return parse_error(_GRAFANA_VAR.sub("x", probe))


def self_check(dashboard: Mapping[str, Any]) -> list[str]:
    """Structural checks of a rendered dashboard (the full JSON-schema validation runs in the tests)."""
    errs: list[str] = []
    uid = dashboard.get("uid")
    if not isinstance(uid, str) or not _UID.match(uid):
        errs.append(f"uid {uid!r} does not fit [A-Za-z0-9_-]{{1,40}}")
    title = dashboard.get("title")
    if not isinstance(title, str) or not title or title != title.strip():
        errs.append("title must be a non-empty trimmed string")
    for key in ("schemaVersion", "templating", "annotations"):
        if key not in dashboard:
            errs.append(f"missing {key}")
    ids: set[int] = set()
    for panel in dashboard.get("panels", []):
        pid = panel.get("id")
        if pid in ids:
            errs.append(f"duplicate panel id {pid}")
        ids.add(pid)
        pos = panel.get("gridPos", {})
        if not (0 < pos.get("w", 0) <= 24 and 0 <= pos.get("x", -1) < 24 and pos["x"] + pos["w"] <= 24
                and pos.get("h", 0) > 0):
            errs.append(f"panel {pid}: gridPos out of bounds {pos}")
        if panel.get("type") == "row":
            continue
        refs = [t.get("refId") for t in panel.get("targets", [])]
        if len(set(refs)) != len(refs):
            errs.append(f"panel {pid}: duplicate refIds")
        for t in panel.get("targets", []):
            problem = _promql_check(str(t.get("expr", "")))
            if problem:
                errs.append(f"panel {pid} ({panel.get('title')}): PromQL does not parse: {problem}: {t.get('expr')}")
        for step in panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {}).get("steps", []):
            if not isinstance(step.get("value"), float | int):
                errs.append(f"panel {pid}: threshold value must be a number")
    return errs
