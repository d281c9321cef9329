"""Loading the platform data folders (alert-rules/, dashboards/, collectors/) into obsctl.model.platform values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from obsctl.errors import Problem, SpecError
from obsctl.model.durations import parse_duration
from obsctl.model.platform import (
    DASHBOARD_DEFAULTS,
    DASHBOARD_LAYOUT,
    DASHBOARD_PANELS,
    DASHBOARD_RUNTIMES,
    PAGING_MODES,
    PANEL_KEYS,
    PANEL_TYPES,
    CollectorTemplates,
    DashboardLibrary,
    SliShape,
    Templates,
    TierDefaults,
)
from obsctl.model.windows import AlertTier, WindowTable

__all__ = ["PAGING_MODES", "SliShape", "Templates", "TierDefaults", "parse_templates"]

_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _period_days(text: str) -> int:
    seconds = parse_duration(str(text))
    if seconds % 86400:
        raise ValueError(f"period {text!r} is not a whole number of days")
    return int(seconds // 86400)


def parse_dashboard_library(documents: Mapping[str, Any], problems: list[Problem]) -> DashboardLibrary:
    """The dashboards/ data, checked (panels, runtimes, layout rows naming known panels); problems appended."""
    before = len(problems)

    def doc(path: str) -> dict[str, Any]:
        data = documents.get(path)
        if not isinstance(data, dict):
            problems.append(Problem(path, 0, "", "", "must be a mapping"))
            return {}
        return data

    layout, panels = doc(DASHBOARD_LAYOUT), doc(DASHBOARD_PANELS)
    runtimes, defaults = doc(DASHBOARD_RUNTIMES), doc(DASHBOARD_DEFAULTS)
    for name, panel in panels.items():
        _check_panel(panel, DASHBOARD_PANELS, str(name), problems)
    for runtime, items in runtimes.items():
        if not isinstance(items, list):
            problems.append(Problem(DASHBOARD_RUNTIMES, 0, "", str(runtime), "must be a list of panels"))
            continue
        for i, panel in enumerate(items):
            _check_panel(panel, DASHBOARD_RUNTIMES, f"{runtime}[{i}]", problems)
    for kind in ("service", "team", "org"):
        spec = layout.get(kind)
        if not isinstance(spec, dict) or not isinstance(spec.get("rows"), list):
            problems.append(Problem(DASHBOARD_LAYOUT, 0, "", kind, "needs a mapping with a `rows` list"))
            continue
        for i, row in enumerate(spec["rows"]):
            names = row.get("panels", []) if isinstance(row, dict) else None
            if not isinstance(names, list):
                problems.append(Problem(DASHBOARD_LAYOUT, 0, "", f"{kind}.rows[{i}]", "needs a `panels` list"))
                continue
            for name in names:
                if name not in panels:
                    problems.append(Problem(DASHBOARD_LAYOUT, 0, "", f"{kind}.rows[{i}]",
                                            f"unknown panel {name!r}"))
    if not isinstance(layout.get("settings"), dict):
        problems.append(Problem(DASHBOARD_LAYOUT, 0, "", "settings", "missing"))
    if len(problems) > before:
        return DashboardLibrary({}, {}, {}, {}, {})
    return DashboardLibrary(layout["settings"], {k: layout[k] for k in ("service", "team", "org")}, panels,
                            runtimes, defaults)


def _check_panel(panel: Any, path: str, name: str, problems: list[Problem]) -> None:
    if not isinstance(panel, dict):
        problems.append(Problem(path, 0, "", name, "a panel must be a mapping"))
        return
    unknown = set(panel) - PANEL_KEYS
    if unknown:
        problems.append(Problem(path, 0, "", name, f"unknown panel keys: {', '.join(sorted(map(str, unknown)))}"))
    if panel.get("type") not in PANEL_TYPES:
        problems.append(Problem(path, 0, "", name, f"type must be one of {', '.join(PANEL_TYPES)}"))
    targets = panel.get("targets")
    if not isinstance(targets, list) or not targets or \
            not all(isinstance(t, dict) and isinstance(t.get("expr"), str) for t in targets):
        problems.append(Problem(path, 0, "", name, "targets must be a non-empty list of {expr: ...}"))
    width = panel.get("width", 12)
    if not isinstance(width, int) or not 1 <= width <= 24:
        problems.append(Problem(path, 0, "", name, "width must be an integer from 1 to 24"))


def parse_templates(files: Mapping[str, bytes]) -> Templates:
    """Parse the template tree (relative path -> bytes); every problem at once in a SpecError."""
    problems: list[Problem] = []
    windows: dict[int, WindowTable] = {}
    for path in sorted(p for p in files if p.startswith("alert-rules/windows/") and p.endswith((".yaml", ".yml"))):
        try:
            doc = yaml.safe_load(files[path])
            days = _period_days(doc["period"])
            tiers = tuple(
                AlertTier(
                    name=str(t["name"]),
                    severity=str(t["severity"]),
                    long_window_s=parse_duration(str(t["long_window"])),
                    short_window_s=parse_duration(str(t["short_window"])),
                    budget_percent=float(t["budget_percent"]),
                    period_s=days * 86400.0,
                )
                for t in doc["tiers"]
            )
            for t in tiers:
                if t.short_window_s >= t.long_window_s:
                    raise ValueError(f"tier {t.name}: short window must be shorter than the long window")
                if t.severity not in ("page", "ticket"):
                    raise ValueError(f"tier {t.name}: severity must be page or ticket")
            windows[days] = WindowTable(days, tiers)
        except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
            problems.append(Problem(path, 0, "", "", f"bad window table: {exc}"))
    tier_defaults: dict[int, TierDefaults] = {}
    paging: dict[str, str] = {"default": "page"}
    default_tier, default_period, default_owner = 2, 30, "group:default/unowned"
    try:
        doc = yaml.safe_load(files["alert-rules/defaults.yaml"])
        default_tier = int(doc.get("default_tier", 2))
        default_period = _period_days(doc.get("default_period", "30d"))
        default_owner = str(doc.get("default_owner", default_owner))
        paging = {str(k): str(v) for k, v in (doc.get("paging") or {"default": "page"}).items()}
        bad = sorted(f"{k}: {v}" for k, v in paging.items() if v not in PAGING_MODES)
        if bad:
            raise ValueError(f"paging modes must be one of {', '.join(PAGING_MODES)}: {', '.join(bad)}")
        paging.setdefault("default", "page")
        for tier, spec in doc["tiers"].items():
            tier_defaults[int(tier)] = TierDefaults(
                availability=float(spec["availability"]),
                latency_percent=float(spec["latency"]["percent"]),
                latency_threshold_s=parse_duration(str(spec["latency"]["threshold"]))
                if not isinstance(spec["latency"]["threshold"], int | float)
                else float(spec["latency"]["threshold"]),
            )
    except (KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError) as exc:
        problems.append(Problem("alert-rules/defaults.yaml", 0, "", "", f"bad defaults: {exc}"))
    shapes: dict[str, SliShape] = {}
    try:
        doc = yaml.safe_load(files["alert-rules/sli.yaml"])
        for proto, spec in doc.items():
            shapes[str(proto)] = SliShape(
                selector=str(spec["selector"]),
                count_metric=str(spec["count_metric"]),
                bucket_metric=str(spec["bucket_metric"]),
                error_matcher=str(spec["error_matcher"]),
                buckets=tuple(float(b) for b in spec["buckets"]),
                environment_label=str(spec.get("environment_label", "")),
            )
            if shapes[str(proto)].environment_label and \
                    not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", shapes[str(proto)].environment_label):
                raise ValueError(f"{proto}.environment_label is not a Prometheus label name")
    except (KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError) as exc:
        problems.append(Problem("alert-rules/sli.yaml", 0, "", "", f"bad SLI shapes: {exc}"))
    if default_period not in windows and not problems:
        problems.append(Problem("alert-rules/defaults.yaml", 0, "", "default_period", "no window table for it"))
    documents: dict[str, Any] = {}
    for path in sorted(p for p in files if p.endswith((".yaml", ".yml"))):
        try:
            documents[path] = yaml.load(files[path], Loader=_LOADER)  # noqa: S506 - a safe loader
        except yaml.YAMLError as exc:
            problems.append(Problem(path, 0, "", "", f"not YAML: {exc}"))
    collector_docs: list[Mapping[str, Any]] = []
    for path in ("collectors/settings.yaml", "collectors/agent.yaml", "collectors/gateway.yaml",
                 "collectors/sampler.yaml"):
        doc = documents.get(path)
        if not isinstance(doc, dict):
            problems.append(Problem(path, 0, "", "", "missing" if path not in files else "must be a mapping"))
            doc = {}
        collector_docs.append(doc)
    dashboards = parse_dashboard_library(documents, problems)
    if problems:
        raise SpecError(problems)
    return Templates(windows, tier_defaults, default_tier, default_period, shapes, default_owner, documents, paging,
                     CollectorTemplates(*collector_docs), dashboards)
