"""The dashboard library: the `dashboards/` data (layout, panels, runtime panels, defaults) parsed and
checked once, the placeholder filling with per-target escaping, and how a library panel becomes
Grafana panel JSON (targets, thresholds, grid layout). No catalog knowledge beyond the values given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from obsctl.errors import Problem, SpecError
from obsctl.model import conventions as cv
from obsctl.model import placeholders
from obsctl.model.escape import promql
from obsctl.model.escape import url as url_escape
from obsctl.model.platform import (
    DashboardLibrary,
)
from obsctl.render import symbolic

_UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]*\]\]")
MAX_TITLE = 200
MAX_TEXT = 2000
DATASOURCE_VAR = "datasource"
ENVIRONMENT_VAR = "environment"
DATASOURCE_REF = {"type": "prometheus", "uid": "${" + DATASOURCE_VAR + "}"}


# ----------------------------------------------------------------------------- escaping and filling

def url_quote(value: str) -> str:
    return url_escape.component(value)


def clean_text(value: str, limit: int) -> str:
    """Whitespace runs as one space, at most `limit` characters, trimmed."""
    joined = " ".join(value.split())
    if symbolic.recording() is not None:
        symbolic.note_cleaned(joined, limit)
    return joined[:limit].strip()


def safe_url(url: str) -> str:
    """Only http(s) links leave the catalog for a dashboard; anything else (javascript:, data:) is dropped."""
    url = url.strip()
    return url if re.match(r"^https?://[^\s\"'<>]+$", url) else ""


@dataclass(frozen=True)
class Var:
    """A placeholder's value as text (titles, legends) and inside PromQL (expr)."""

    text: str
    expr: str

    @classmethod
    def label(cls, value: str) -> Var:
        """A catalog value: verbatim in text, escaped inside a PromQL string."""
        return cls(value, promql.grafana_string_body(value))

    @classmethod
    def fragment(cls, value: str) -> Var:
        """Something obsctl built (a selector, a metric name): the same everywhere."""
        return cls(value, value)


Vars = Mapping[str, Var]


class Filler:
    """Fills @{name} placeholders; every failure names the template and the missing name."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fill(self, template: str, values: Vars, context: str, where: str) -> str:
        def lookup(name: str) -> str | None:
            var = values.get(name)
            return None if var is None else (var.expr if context == "expr" else var.text)

        try:
            return placeholders.fill_text(template, lookup, lambda: sorted(values))
        except placeholders.PlaceholderError as exc:
            raise SpecError([Problem(self.source, 0, "", where, str(exc))]) from None

    def deep(self, value: Any, values: Vars, where: str) -> Any:
        """Fill every string inside a nested structure (text context)."""
        if isinstance(value, str):
            return self.fill(value, values, "text", where)
        if isinstance(value, list):
            return [self.deep(v, values, where) for v in value]
        if isinstance(value, dict):
            return {str(k): self.deep(v, values, f"{where}.{k}") for k, v in value.items()}
        return value


# ----------------------------------------------------------------------------- the template data

Library = DashboardLibrary  # loaded and checked with the other platform data (obsctl.spec.templates)


# ----------------------------------------------------------------------------- panels

def _number(text: Any, where: str, source: str) -> float:
    symbolic.refuse(str(text), where)
    try:
        return float(text)
    except (TypeError, ValueError):
        raise SpecError([Problem(source, 0, "", where, f"not a number: {text!r}")]) from None


def _copy(value: Any) -> Any:
    """A deep copy of parsed template data (dicts, lists, immutable scalars), without deepcopy's bookkeeping."""
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy(v) for v in value]
    return value


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = _copy(dict(base))
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else _copy(v)
    return out


@dataclass
class PanelContext:
    """What one dashboard's panels are filled from."""

    lib: Library
    filler: Filler
    values: dict[str, Var]
    windows: Sequence[str] = ()
    tiers: Sequence[Mapping[str, Var]] = ()
    exemplars: bool = False  # targets marked `exemplar: true` ask for exemplars (a traces datasource is set)


def _panel(spec: Mapping[str, Any], ctx: PanelContext, where: str) -> dict[str, Any]:
    fill = ctx.filler.fill
    values = ctx.values
    ptype = str(spec["type"])
    targets: list[dict[str, Any]] = []
    for i, t in enumerate(spec["targets"]):
        scopes: Iterable[Mapping[str, Var]] = [{}]
        if t.get("for_each") == "window":
            scopes = [{"window": Var.fragment(w),
                       "window_burn_rate_series": Var.fragment(cv.series(cv.SERIES_BURN_RATE, w)),
                       "window_error_ratio_series": Var.fragment(cv.series(cv.SERIES_ERROR_RATIO, w))}
                      for w in ctx.windows]
        for extra in scopes:
            scope = {**values, **extra}
            target: dict[str, Any] = {
                "datasource": dict(DATASOURCE_REF),
                "expr": fill(str(t["expr"]), scope, "expr", f"{where}.targets[{i}].expr"),
                "refId": str(t.get("ref") or _ref_id(len(targets))),
            }
            if "legend" in t:
                target["legendFormat"] = fill(str(t["legend"]), scope, "text", f"{where}.targets[{i}].legend")
            if t.get("instant"):
                target["instant"] = True
                target["range"] = False
            if t.get("format"):
                target["format"] = str(t["format"])
            if t.get("exemplar") and ctx.exemplars:
                target["exemplar"] = True
            targets.append(target)
    defaults = ctx.lib.defaults.get(ptype, {})
    field_defaults: dict[str, Any] = {
        "custom": _deep_merge(defaults.get("custom") or {}, ctx.filler.deep(spec.get("custom") or {}, values, where)),
    }
    for key in ("unit",):
        if key in spec:
            field_defaults[key] = fill(str(spec[key]), values, "text", f"{where}.{key}")
    for key in ("decimals", "min", "max"):
        if key in spec:
            field_defaults[key] = _number(spec[key], f"{where}.{key}", ctx.filler.source)
    if "thresholds" in spec:
        steps: list[dict[str, Any]] = []
        for j, step in enumerate(spec["thresholds"]):
            scopes2: Iterable[Mapping[str, Var]] = ctx.tiers if step.get("for_each") == "tier" else [{}]
            for extra in scopes2:
                scope = {**values, **extra}
                w = f"{where}.thresholds[{j}]"
                steps.append({"color": fill(str(step["color"]), scope, "text", w),
                              "value": _number(fill(str(step["value"]), scope, "text", w), w, ctx.filler.source)})
        for step in steps:
            symbolic.refuse(step["color"], f"{where}.thresholds")  # a sort key
        # The first step is Grafana's base colour (its value is ignored); the rest ascend.
        steps = steps[:1] + sorted(steps[1:], key=lambda s: (s["value"], s["color"]))
        field_defaults["thresholds"] = {"mode": "absolute", "steps": steps}
        if spec.get("thresholds_style") and ptype == "timeseries":
            field_defaults["custom"]["thresholdsStyle"] = {"mode": str(spec["thresholds_style"])}
        if ptype == "stat":
            field_defaults["color"] = {"mode": "thresholds"}
    overrides = ctx.filler.deep(spec.get("overrides") or [], values, f"{where}.overrides")
    panel: dict[str, Any] = {
        "type": ptype,
        "title": clean_text(fill(str(spec.get("title", "")), values, "text", f"{where}.title"), MAX_TITLE),
        "datasource": dict(DATASOURCE_REF),
        "targets": targets,
        "fieldConfig": {"defaults": field_defaults, "overrides": overrides},
        "options": _deep_merge(defaults.get("options") or {},
                               ctx.filler.deep(spec.get("options") or {}, values, where)),
    }
    if spec.get("description"):
        panel["description"] = clean_text(fill(str(spec["description"]), values, "text", f"{where}.description"),
                                           MAX_TEXT)
    if spec.get("time_from"):
        panel["timeFrom"] = fill(str(spec["time_from"]), values, "text", f"{where}.time_from")
    if spec.get("transformations"):
        panel["transformations"] = ctx.filler.deep(spec["transformations"], values, f"{where}.transformations")
    return panel


def _ref_id(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"Q{i}"


def layout_rows(rows: Sequence[tuple[str, list[dict[str, Any]]]], height: int) -> list[dict[str, Any]]:
    """Rows and their panels in Grafana's flat list, with grid positions flowing left to right."""
    out: list[dict[str, Any]] = []
    y = 0
    next_id = 1
    for title, panels in rows:
        out.append({"type": "row", "title": title, "collapsed": False, "id": next_id, "panels": [],
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
        next_id += 1
        y += 1
        x = 0
        line_h = 0
        for panel in panels:
            w = int(panel.pop("_width", 12))
            h = int(panel.pop("_height", height))
            if x + w > 24:
                y += line_h
                x, line_h = 0, 0
            panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
            panel["id"] = next_id
            next_id += 1
            x += w
            line_h = max(line_h, h)
            out.append(panel)
        y += line_h
    return out


def build_panel(spec: Mapping[str, Any], ctx: PanelContext, where: str) -> dict[str, Any]:
    panel = _panel(spec, ctx, where)
    panel["_width"] = int(spec.get("width", 12))
    panel["_height"] = int(spec.get("height", ctx.lib.settings.get("panel_height", 8)))
    return panel
