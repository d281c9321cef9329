"""Generate `promtool test rules` suites for obsctl's SLO rules, run them, and measure alert timings.

A scenario is a synthetic HTTP service (ok and 5xx counters) whose error ratio changes in
segments. Two kinds of suite are generated from it:

- an *assert* suite: ordinary promtool expectations (firing / not firing at chosen times), which
  must pass;
- a *probe* suite: "no alert" expected at every step, so promtool reports every step at which an
  alert fired. Parsing that report gives the measured detection and reset times.

Rules come from `obsctl.render.rules.service_groups` (annotations dropped: they hold `$value`,
which would make exact alert expectations depend on the value; labels are kept).
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from obsctl.model import conventions as cv
from obsctl.model.durations import format_duration, parse_duration
from obsctl.model.entities import SLO, AlertPolicy, AvailabilitySLI, EntityRef, Protocol, Service
from obsctl.render.options import RenderOptions
from obsctl.render.rules import service_groups
from obsctl.sources.directory import read_template_tree
from obsctl.spec.templates import Templates, parse_templates
from tests.support.binaries import require_binary

REPO_ROOT = Path(__file__).resolve().parents[2]
RATE = 10.0  # requests per second of the synthetic service
COUNT_METRIC = "http_server_request_duration_seconds_count"


def repo_templates() -> Templates:
    """The repository's own template tree, parsed."""
    return parse_templates(read_template_tree(REPO_ROOT))


def availability_service(objective: float, period_days: int, tiers: Sequence[str] | None = None,
                         name: str = "checkout", min_events: float | None = None) -> Service:
    """A one-SLO HTTP service with the default availability SLI and only `tiers` enabled (None: all)."""
    policy = AlertPolicy(tiers=tuple(tiers) if tiers is not None else None, no_data=False, min_events=min_events)
    slo = SLO(name="availability", objective=objective, sli=AvailabilitySLI(), period_days=period_days,
              alerting=policy)
    return Service(ref=EntityRef("component", "default", name), team=EntityRef("group", "default", "team-payments"),
                   slos=(slo,), tier=1, protocol=Protocol.HTTP)


def rule_groups(svc: Service, templates: Templates, keep_annotations: bool = False) -> list[dict[str, Any]]:
    """The service's generated rule groups (annotations dropped unless asked)."""
    groups = service_groups(svc, templates, RenderOptions())
    if not keep_annotations:
        for group in groups:
            for rule in group["rules"]:
                rule.pop("annotations", None)
    return groups


def alert_labels(groups: Sequence[Mapping[str, Any]], tier: str) -> dict[str, str]:
    """The labels an alert of `tier` carries (rule labels; the expression adds none beyond them)."""
    for group in groups:
        for rule in group["rules"]:
            if rule.get("labels", {}).get(cv.LABEL_TIER) == tier:
                return dict(rule["labels"])
    raise KeyError(tier)


def counter_values(segments: Sequence[tuple[int, float]]) -> str:
    """promtool's expanding notation for a counter starting at 0 that grows by `inc` for `steps` steps per segment."""
    parts = ["0"]
    value = 0.0
    for steps, inc in segments:
        if steps <= 0:
            continue
        first = value + inc
        parts.append(f"{first!r}+{inc!r}x{steps - 1}")
        value += steps * inc
    return " ".join(parts)


@dataclass(frozen=True)
class Scenario:
    """Error-ratio segments of the synthetic service: [(seconds, error_ratio), ...] at `interval_s` steps."""

    interval_s: float
    segments: Sequence[tuple[float, float]]
    service: str = "checkout"

    def steps(self, seconds: float) -> int:
        """Whole steps in `seconds` (must divide evenly)."""
        n = round(seconds / self.interval_s)
        if not math.isclose(n * self.interval_s, seconds):
            raise ValueError(f"{seconds}s is not a multiple of the {self.interval_s}s interval")
        return n

    @property
    def end_s(self) -> float:
        """When the last segment ends."""
        return float(sum(s for s, _ in self.segments))

    def input_series(self) -> list[dict[str, str]]:
        """promtool input_series for the ok and the 5xx counters."""
        per_step = RATE * self.interval_s
        ok = [(self.steps(s), (1 - r) * per_step) for s, r in self.segments]
        bad = [(self.steps(s), r * per_step) for s, r in self.segments]
        sel = f'service_name="{self.service}",deployment_environment_name="production"'
        return [
            {"series": f'{COUNT_METRIC}{{{sel},http_response_status_code="200"}}', "values": counter_values(ok)},
            {"series": f'{COUNT_METRIC}{{{sel},http_response_status_code="500"}}', "values": counter_values(bad)},
        ]


@dataclass
class Check:
    """Expect at `at_s` exactly the alerts of `tiers` (label sets from the rules) for `alertname`."""

    at_s: float
    tiers: Sequence[str] = ()
    alertname: str = cv.ALERT_BURN


@dataclass
class Suite:
    """One rule file and the promtool tests run against it."""

    groups: list[dict[str, Any]]
    tests: list[dict[str, Any]] = field(default_factory=list)
    evaluation_interval_s: float = 60.0

    def add(self, scenario: Scenario, checks: Sequence[Check]) -> None:
        """A test case: the scenario's input and one alert_rule_test per check."""
        tests = []
        for check in checks:
            exp = [{"exp_labels": alert_labels(self.groups, t)} for t in check.tiers]
            tests.append({"eval_time": format_duration(check.at_s), "alertname": check.alertname, "exp_alerts": exp})
        self.tests.append({"interval": format_duration(scenario.interval_s), "input_series": scenario.input_series(),
                           "alert_rule_test": tests})

    def add_expr(self, scenario: Scenario, exprs: Sequence[tuple[str, float]]) -> None:
        """A test case whose promql_expr_tests expect an impossible value, to read what promtool got."""
        self.tests.append({
            "interval": format_duration(scenario.interval_s), "input_series": scenario.input_series(),
            "promql_expr_test": [{"expr": e, "eval_time": format_duration(t),
                                  "exp_samples": [{"labels": "{}", "value": -1}]} for e, t in exprs],
        })

    def write(self, directory: Path, name: str) -> Path:
        """Write `<name>.rules.yml` and `<name>.test.yml`; return the test file."""
        directory.mkdir(parents=True, exist_ok=True)
        rules = directory / f"{name}.rules.yml"
        rules.write_text(yaml.safe_dump({"groups": self.groups}, sort_keys=False, width=1 << 20))
        test = directory / f"{name}.test.yml"
        test.write_text(yaml.safe_dump({
            "rule_files": [rules.name],
            "evaluation_interval": format_duration(self.evaluation_interval_s),
            "group_eval_order": [g["name"] for g in self.groups],
            "tests": self.tests,
        }, sort_keys=False, width=1 << 20))
        return test


def run_promtool_test(path: Path) -> subprocess.CompletedProcess[str]:
    """`promtool test rules PATH` (fails/skips the test when promtool is missing)."""
    return subprocess.run([require_binary("promtool"), "test", "rules", str(path)], capture_output=True, text=True,
                          timeout=600, check=False)


_ALERT_FAIL = re.compile(r"alertname: (?P<name>\S+), time: (?P<time>[0-9a-z.]+),")
_GOT_LABELS = re.compile(r"Labels:\{(?P<labels>[^}]*)\}")
_EXPR_FAIL = re.compile(r'expr: "(?P<expr>(?:[^"\\]|\\.)*)", time: (?P<time>[0-9a-z.]+),\s*\n'
                        r'\s*exp:.*\n\s*got: (?P<got>.*)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def firing_from_probe(output: str) -> dict[float, list[dict[str, str]]]:
    """From a probe run's report: time (s) -> label sets of the alerts that fired (steps with none are absent)."""
    out: dict[float, list[dict[str, str]]] = {}
    blocks = re.split(r"\n(?=\s*alertname: )", output)
    for block in blocks:
        m = _ALERT_FAIL.search(block)
        if not m:
            continue
        got = [dict(_LABEL.findall(lm.group("labels"))) for lm in _GOT_LABELS.finditer(block)]
        out[parse_duration(m.group("time")) if m.group("time") != "0s" else 0.0] = got
    return out


def values_from_probe(output: str) -> dict[tuple[str, float], float | None]:
    """From an expression probe's report: (expr, time) -> the value promtool got (None when empty)."""
    out: dict[tuple[str, float], float | None] = {}
    for m in _EXPR_FAIL.finditer(output):
        got = m.group("got").strip()
        number = re.search(r"\}\s+(\S+)\s*$", got)
        expr = m.group("expr").encode().decode("unicode_escape")
        out[(expr, parse_duration(m.group("time")))] = float(number.group(1)) if number else None
    return out


@dataclass(frozen=True)
class Timing:
    """Measured first firing after `start_s` and first resolution after `end_s` (seconds after each)."""

    detection_s: float | None
    reset_s: float | None


def measure(firing: Mapping[float, Sequence[Mapping[str, str]]], tier: str, start_s: float,
            end_s: float | None, probe_times: Sequence[float]) -> Timing:
    """First probe time >= start at which `tier` fired, and first time >= end at which it no longer did."""
    def fires(t: float) -> bool:
        return any(lbl.get(cv.LABEL_TIER) == tier for lbl in firing.get(t, []))

    detection = next((t - start_s for t in probe_times if t >= start_s and fires(t)), None)
    reset = None
    if end_s is not None:
        reset = next((t - end_s for t in probe_times if t >= end_s and not fires(t)), None)
    return Timing(detection, reset)
