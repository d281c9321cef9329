"""Loading the platform data folders (alert-rules/, dashboards/, collectors/) into obsctl.model.platform values."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from obsctl.errors import Problem, SpecError
from obsctl.model.durations import parse_duration
from obsctl.model.platform import PAGING_MODES, CollectorTemplates, SliShape, Templates, TierDefaults
from obsctl.model.windows import AlertTier, WindowTable

__all__ = ["PAGING_MODES", "SliShape", "Templates", "TierDefaults", "parse_templates"]

_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _period_days(text: str) -> int:
    seconds = parse_duration(str(text))
    if seconds % 86400:
        raise ValueError(f"period {text!r} is not a whole number of days")
    return int(seconds // 86400)


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
    if problems:
        raise SpecError(problems)
    return Templates(windows, tier_defaults, default_tier, default_period, shapes, default_owner, documents, paging,
                     CollectorTemplates(*collector_docs))
