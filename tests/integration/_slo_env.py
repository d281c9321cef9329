"""A real Prometheus holding synthetic SLI history and the SLO recording rules' results, for report tests.

Raw OpenTelemetry-style counters are backfilled with promtool; the recording rules (our own,
matching obsctl.model.conventions) are then backfilled level by level with
`promtool tsdb create-blocks-from rules` evaluated by the real Prometheus, so every recorded
series has a full history and a report at a fixed `now` is deterministic.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from obsctl.model import conventions as conv
from obsctl.model.artifact import Kind
from obsctl.model.durations import parse_duration
from obsctl.model.entities import (
    SLO,
    AvailabilitySLI,
    Catalog,
    EntityRef,
    Links,
    Service,
    Team,
)
from obsctl.render.options import RenderOptions
from obsctl.spec.templates import Templates
from tests.support.prom import Prometheus, backfill_counters

COUNT = "http_server_request_duration_seconds_count"
RAW_STEP = 60.0
START = datetime(2026, 10, 30, tzinfo=UTC).timestamp()
END = datetime(2026, 11, 2, tzinfo=UTC).timestamp()  # the reports' "now"
NAMESPACE = "default"

Rate = Callable[[float], float]


@dataclass(frozen=True)
class Synthetic:
    """One service's traffic: total and error rates (per second) as functions of time."""

    service: str
    objective: float
    total: Rate
    error_ratio: Rate

    def errors(self, t: float) -> float:
        return self.total(t) * self.error_ratio(t)


def diurnal(day: float, night: float) -> Rate:
    """Traffic peaking at 14:00 UTC and lowest at 02:00."""
    def rate(t: float) -> float:
        hour = (t % 86400) / 3600
        return night + (day - night) * (0.5 + 0.5 * math.cos((hour - 14) / 24 * 2 * math.pi))
    return rate


def _checkout_errors(t: float) -> float:
    if t > END - 40 * 60:
        return 0.03  # an incident in progress: the 14.4x tier pages now
    hour = (t % 86400) / 3600
    return 0.0004 if 6 <= hour < 22 else 0.004  # worse at night, when traffic is low


SERVICES = (
    Synthetic("checkout", 0.999, diurnal(500.0, 5.0), _checkout_errors),
    Synthetic("search", 0.995, lambda t: 50.0, lambda t: 0.0001),
    Synthetic("ledger", 0.999, diurnal(40.0, 4.0), lambda t: 0.02),
)
MISSING_SERVICE = "billing"  # in the catalog, never seen by Prometheus


def catalog(extra_slos: int = 0, *, with_missing: bool = True) -> Catalog:
    """The test catalog: the synthetic services, a service with no series, `extra_slos` more without data."""
    team = EntityRef("group", NAMESPACE, "team-payments")
    services = [Service(EntityRef("component", NAMESPACE, s.service), team,
                        (SLO("availability", s.objective, AvailabilitySLI(), period_days=30),),
                        title=s.service.title(), links=Links(runbook=f"https://runbooks.example/{s.service}"))
                for s in SERVICES]
    if with_missing:
        services.append(Service(EntityRef("component", NAMESPACE, MISSING_SERVICE),
                                EntityRef("group", NAMESPACE, "team-billing"),
                                (SLO("availability", 0.999, AvailabilitySLI()),)))
    for i in range(extra_slos):
        services.append(Service(EntityRef("component", NAMESPACE, f"extra-{i:03d}"), team,
                                (SLO("availability", 0.99, AvailabilitySLI(), period_days=(7, 28, 30)[i % 3]),)))
    teams = (Team(team, title="Payments"), Team(EntityRef("group", NAMESPACE, "team-billing"), title="Billing"))
    return Catalog(tuple(services), teams)


def raw_families() -> dict[str, list[tuple[dict[str, str], list[tuple[float, float]]]]]:
    """Counters per service and status code, one sample a minute over [START, END]."""
    series = []
    n = int((END - START) / RAW_STEP)
    for s in SERVICES:
        ok = err = 0.0
        ok_samples, err_samples = [(START, 0.0)], [(START, 0.0)]
        for i in range(1, n + 1):
            t = START + i * RAW_STEP
            err += s.errors(t) * RAW_STEP
            ok += (s.total(t) - s.errors(t)) * RAW_STEP
            ok_samples.append((t, ok))
            err_samples.append((t, err))
        env = {"service_name": s.service, "deployment_environment_name": "production"}
        series.append(({**env, "http_response_status_code": "200"}, ok_samples))
        series.append(({**env, "http_response_status_code": "500"}, err_samples))
    return {COUNT: series}


def exact_ratio(s: Synthetic, start: float, end: float) -> tuple[float, float]:
    """(bad events, total events) in (start, end], from the generating functions (independent of Prometheus)."""
    bad = tot = 0.0
    t = max(start, START) + RAW_STEP
    while t <= min(end, END) + 1e-6:
        bad += s.errors(t) * RAW_STEP
        tot += s.total(t) * RAW_STEP
        t += RAW_STEP
    return bad, tot


def recording_rules(windows: Iterable[float], period_days: Iterable[int]) -> dict[str, Any]:
    """Our own recording rules following the conventions: raw counters -> 5m rates -> windows and period."""
    rules: list[dict[str, Any]] = []
    short = conv.SHORT_RESOLUTION
    err5, tot5 = conv.series(conv.SERIES_ERRORS, short), conv.series(conv.SERIES_TOTAL, short)
    for s in SERVICES:
        labels = {conv.LABEL_SERVICE: s.service, conv.LABEL_NAMESPACE: NAMESPACE, conv.LABEL_SLO: "availability"}
        sel = f'{conv.LABEL_SERVICE}="{s.service}",{conv.LABEL_SLO}="availability"'
        bad = f'{COUNT}{{service_name="{s.service}",http_response_status_code=~"5.."}}'
        all_ = f'{COUNT}{{service_name="{s.service}"}}'
        rules.append({"record": err5, "expr": f"sum(rate({bad}[{short}]))", "labels": labels})
        rules.append({"record": tot5, "expr": f"sum(rate({all_}[{short}]))", "labels": labels})
        rules.append({"record": conv.SERIES_OBJECTIVE, "expr": f"vector({s.objective})", "labels": labels})
        for secs in windows:
            w = conv.window_name(secs)
            if secs <= 300:
                expr = f"{err5}{{{sel}}} / {tot5}{{{sel}}}"
            elif secs < 86400:  # short alert windows: on the counters themselves
                expr = f"sum(rate({bad}[{w}])) / sum(rate({all_}[{w}]))"
            else:  # long windows: ratio of the averaged recorded 5m rates (traffic-weighted)
                expr = f"sum_over_time({err5}{{{sel}}}[{w}]) / sum_over_time({tot5}{{{sel}}}[{w}])"
            rules.append({"record": conv.series(conv.SERIES_ERROR_RATIO, w), "expr": expr, "labels": labels})
        for days in sorted(set(period_days))[:1]:
            rules.append({"record": conv.SERIES_PERIOD_ERROR_RATIO,
                          "expr": f"sum_over_time({err5}{{{sel}}}[{days}d]) / sum_over_time({tot5}{{{sel}}}[{days}d])",
                          "labels": labels})
    return {"groups": [{"name": "obsctl-slo-test", "rules": rules}]}


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def split_levels(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Split recording rules into dependency levels (a rule reading a recorded series comes after it)."""
    rules = [r for g in doc["groups"] for r in g["rules"] if "record" in r]
    recorded = {r["record"] for r in rules}
    level: dict[int, int] = {}

    def lvl(i: int, seen: frozenset[int] = frozenset()) -> int:
        if i in level:
            return level[i]
        if i in seen:
            raise ValueError(f"recording rule cycle at {rules[i]['record']}")
        # a tile reads its own series (it records once per span): not a dependency (see `backfill_rules`)
        deps = (set(_NAME.findall(str(rules[i]["expr"]))) & recorded) - {rules[i]["record"]}
        below = [lvl(j, seen | {i}) for j, r in enumerate(rules) if r["record"] in deps]
        level[i] = 1 + max(below, default=0)
        return level[i]

    for i in range(len(rules)):
        lvl(i)
    out = []
    for k in range(1, max(level.values(), default=0) + 1):
        out.append({"groups": [{"name": f"level-{k}", "rules": [r for i, r in enumerate(rules) if level[i] == k]}]})
    return out


def backfill_rules(prom: Prometheus, rules_doc: Mapping[str, Any], start: float, end: float,
                   evaluation_interval: float = 60.0) -> None:
    """Evaluate recording rules over [start, end] with the real Prometheus, level by level, into its TSDB.

    Each rule's expression is evaluated by one range query stepping at its group's interval (the
    global `evaluation_interval` when the group sets none), as a running Prometheus would: the tiles
    count the samples of the series they sum, so a coarser step would change what they add up. This
    is what `promtool tsdb create-blocks-from rules` does per 2h block, which takes minutes here; the
    results, labelled as the rule says, are backfilled with promtool. Prometheus restarts between
    levels to load the new blocks.
    """
    every = {str(r["record"]): parse_duration(str(g["interval"])) if g.get("interval") else evaluation_interval
             for g in rules_doc["groups"] for r in g["rules"] if "record" in r}
    for level in split_levels(rules_doc):
        if prom.pid is None:
            prom.start()
        families: dict[str, list[tuple[dict[str, str], list[tuple[float, float]]]]] = {}
        for rule in level["groups"][0]["rules"]:
            record, expr, step = str(rule["record"]), str(rule["expr"]), every[str(rule["record"])]
            if record in _NAME.findall(expr):
                # a tile records only when its own series has no sample in the span before (`unless` its own
                # count): one evaluation per span, which a range query stepping by the span reproduces
                expr, _, _ = expr.partition("\nunless\n")
                step = parse_duration(record.rsplit(":", 1)[1].removeprefix("sum").removeprefix("count"))
            for item in prom.query_range(expr, start, end, step):
                labels = {n: v for n, v in item["metric"].items() if n != "__name__"}
                labels.update(rule.get("labels") or {})
                samples = [(float(t), float(v)) for t, v in item["values"]]
                families.setdefault(rule["record"], []).append((labels, samples))
        prom.stop()
        if families:
            backfill_counters(prom.data_dir, families)
    prom.start()


def generated_rules(cat: Catalog, templates: Templates) -> dict[str, Any] | None:
    """The recording rules obsctl renders for `cat` (None when the rules renderer is absent)."""
    try:
        from obsctl.render.rules import render
    except ModuleNotFoundError:
        return None
    groups: list[Any] = []
    for art in render(cat, templates, RenderOptions()):
        if art.kind is Kind.PROMETHEUS_RULES:
            groups.extend(yaml.safe_load(art.body)["groups"])
    return {"groups": groups}


def start_prometheus(tmp: Path, templates: Templates) -> tuple[Prometheus, str]:
    """Backfill counters and recorded series, start Prometheus; the caller stops it.

    Returns the server and which rules made the series ("generated" or "own").
    """
    prom = Prometheus(tmp / "prom", evaluation_interval="60s")
    backfill_counters(prom.data_dir, raw_families())
    rules = generated_rules(catalog(), templates)
    origin = "generated"
    if rules is None:
        windows = sorted({w for t in templates.windows.values() for w in t.windows_s} | {300.0})
        rules, origin = recording_rules(windows, [30]), "own"
    prom.start()
    try:
        # past END so the last evaluation at END is included (the reports read at END)
        backfill_rules(prom, rules, START, END + 600)
    except BaseException:
        prom.stop()
        raise
    return prom, origin
