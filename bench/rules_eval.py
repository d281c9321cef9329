"""Rule evaluation cost and accuracy in a real Prometheus: obsctl vs Sloth (optimized, unoptimized) vs Pyrra-style.

1. Traffic: `services` availability SLOs over `http_server_request_duration_seconds_count` with labels
   service_name, http_route, http_response_status_code (200, 404, 500, 503) and instance, at 1-min
   resolution for 30 days, ending at the current minute. Each service has a diurnal shape (day peak
   100x the night), more errors at night, and random bursts (traffic spikes with error storms).
   The exact traffic-weighted error ratio over the period is summed in Python from the increments.
2. Backfill with `promtool tsdb create-blocks-from openmetrics` (tests/support/prom.py), start
   Prometheus (retention 400d), then backfill the short recorded series the period rules read
   (obsctl's 5m error and request rates, Sloth's 5m error ratio) with
   `promtool tsdb create-blocks-from rules` over the same 30 days, and restart.
3. Accuracy: each rule set's period expression as an instant query at the end of the data,
   against the exact value (before any rule is loaded, so no live sample mixes in).
   From the first start on, Prometheus also scrapes the counters live every 15 s (`LiveCounters`: each
   series goes on at its last minute's rate), so every rule set's recent windows read real samples.
4. Cost: first wait until Prometheus has compacted the backfilled blocks (`_settle`: every rule set
   then meets the same compaction state); each rule set loaded alone;
   `prometheus_rule_group_last_duration_seconds` read from /metrics after every evaluation (several per
   rule set; the median per group), plus samples touched per evaluation:
   the sum of `totalQueryableSamples` (`stats=all`) over every rule expression, queried once
   (Prometheus 2.42 has no `prometheus_engine_query_samples_total`). Beside each set's figures: the
   machine's 1-minute load and Prometheus' process CPU over its phase (wall-clock durations of long
   raw reads stretch more than short ones under CPU contention, so the ratios move with the load).

Rule sets: obsctl's (`obsctl.render.rules.service_groups`), Sloth's real output (`sloth generate`
at the pinned version; unoptimized through its sli_rules plugin's `disableOptimized`), and
Pyrra-style rules reproduced from Pyrra's published shapes (its Go module cannot be fetched here).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import sloth as sloth_bin
from bench.common import Context, Row, fmt_s, say, verdict

NAME = "rules"
PERIOD_S = 30 * 86400
STEP_S = 60
OBJECTIVE = 0.999
CODES = ("200", "404", "500", "503")
METRIC = "http_server_request_duration_seconds_count"
EVAL_INTERVAL_S = 20
# The hour of the traffic's day at which the data ends, where the cost phase's live scrapes go on. Before,
# the day was counted from the data's start, 30 whole days earlier, so every service ended at night (1-6 %
# errors) and nearly every SLO paged all through the cost phase (18 of 20 page-fast alerts firing).
# Prometheus expands each firing alert's labels and annotations as templates at every evaluation, which
# then weighed on every rule set by its alerts' label count rather than its rule shapes. The storm state is
# measured apart, after the others (`LiveCounters.storm`), for obsctl and Pyrra-style: both are in the results.
END_HOUR = 14.0
STORM_SETS = ("obsctl", "pyrra-style")
# A storm fails half the requests: every tier of every SLO fires once its long window passes its threshold.
# The last are the ticket tiers: the 1d window passes 3 x 0.1 % after 0.6 % of a day, the 3d window 1 x 0.1 %
# after 0.2 % of 3 days: about 9 minutes each.
STORM_WAIT_S = 10 * 60


@dataclass(frozen=True)
class Shape:
    """How much traffic: services x routes x instances x status codes, 30 days at STEP_S."""

    services: int
    routes: int
    instances: int
    evaluations: int  # live evaluations measured per rule set

    @property
    def series_per_slo(self) -> int:
        return self.routes * self.instances * len(CODES)


@dataclass
class RuleSet:
    """A named rule file and how to read its period error ratio for one service."""

    name: str
    text: str
    period_expr: dict[str, str]  # service -> PromQL giving the period error ratio
    origin: str
    results: dict[str, Any] = field(default_factory=dict)
    storm: dict[str, Any] = field(default_factory=dict)  # the same figures, measured in the storm


# --------------------------------------------------------------------------- traffic


def _service_profile(rnd: random.Random, minutes: int) -> tuple[list[float], list[float]]:
    """Per-minute total rate (req/s) and error fraction of one service."""
    peak = math.exp(rnd.uniform(math.log(20), math.log(800)))  # day peak, req/s
    night_floor = 0.01
    day_err = rnd.uniform(0.0002, 0.0015)
    night_err = rnd.uniform(0.01, 0.06)
    phase = rnd.uniform(-1.5, 1.5)  # hours
    rate = [0.0] * minutes
    err = [0.0] * minutes
    for m in range(minutes):
        # the data ends at the traffic's early afternoon (END_HOUR, give or take the phase)
        hour = ((m - minutes) / 60.0 + END_HOUR + phase) % 24.0
        day = max(0.0, math.sin(math.pi * (hour - 6.0) / 16.0)) if 6.0 <= hour <= 22.0 else 0.0
        level = night_floor + (1 - night_floor) * day ** 1.5
        rate[m] = peak * level
        err[m] = night_err + (day_err - night_err) * min(1.0, day * 3)
    # bursts: traffic spikes (x2..x5) with error storms (10..60 %), 5..90 minutes, ~4 per 30 days
    for _ in range(rnd.randint(2, 6)):
        start = rnd.randrange(minutes)
        length = rnd.randint(5, 90)
        spike = rnd.uniform(1.0, 5.0)
        storm = rnd.uniform(0.1, 0.6)
        for m in range(start, min(minutes, start + length)):
            rate[m] *= spike
            err[m] = max(err[m], storm)
    return rate, err


Last = dict[tuple[tuple[str, str], ...], tuple[float, float]]  # series labels -> (last value, last rate /s)


def _traffic(shape: Shape, seed: int, t_start: int, exact: dict[str, tuple[float, float]],
             last: Last | None = None) -> dict[str, Any]:
    """OpenMetrics families (one-shot iterables) and, filled as they are consumed, exact sums and (in `last`)
    each series' last value and rate, which `LiveCounters` carries on past the data."""
    minutes = PERIOD_S // STEP_S
    rnd = random.Random(seed)
    series: list[tuple[dict[str, str], Iterator[tuple[float, float]]]] = []
    for s in range(shape.services):
        svc = f"svc-{s:03d}"
        rate, err = _service_profile(rnd, minutes)
        route_w = [rnd.uniform(0.5, 2.0) for _ in range(shape.routes)]
        inst_w = [rnd.uniform(0.8, 1.2) for _ in range(shape.instances)]
        rsum, isum = sum(route_w), sum(inst_w)
        exact[svc] = (0.0, 0.0)
        for r in range(shape.routes):
            for i in range(shape.instances):
                share = route_w[r] / rsum * inst_w[i] / isum
                for code in CODES:
                    labels = {"service_name": svc, "deployment_environment_name": "production",
                              "http_route": f"/api/v1/r{r}", "instance": f"10.0.{s}.{i}:8080",
                              "job": svc, "http_response_status_code": code}
                    initial = float(rnd.randrange(1000, 100000))
                    series.append((labels, _series(svc, code, share, rate, err, t_start, initial, exact,
                                                   last, tuple(sorted(labels.items())))))
    return {METRIC: series}


def _series(svc: str, code: str, share: float, rate: list[float], err: list[float], t_start: int, initial: float,
            exact: dict[str, tuple[float, float]], last: Last | None = None,
            key: tuple[tuple[str, str], ...] = ()) -> Iterator[tuple[float, float]]:
    value = initial
    inc_sum = 0.0
    inc = 0.0
    yield float(t_start), value
    for m in range(len(rate)):
        e = err[m]
        frac = (1 - e) * 0.98 if code == "200" else (1 - e) * 0.02 if code == "404" else \
            e * 0.7 if code == "500" else e * 0.3
        inc = rate[m] * STEP_S * share * frac
        value += inc
        inc_sum += inc
        yield float(t_start + (m + 1) * STEP_S), value
    errors, total = exact[svc]
    exact[svc] = (errors + (inc_sum if code in ("500", "503") else 0.0), total + inc_sum)
    if last is not None:
        last[key] = (value, inc / STEP_S)


class LiveCounters:
    """The traffic's counters served past the backfilled data, for Prometheus to scrape while rules run.

    Each series goes on from its last backfilled value at its last minute's rate. Without it, the data
    ends minutes before the cost phase: every rule set's recent raw windows (5m, 30m) would read little or
    nothing, which flatters whichever set reads mostly recent raw windows. With it, every set reads a
    live 15 s scrape in its recent windows, as in production.
    """

    def __init__(self, t_end: int) -> None:
        import http.server
        import threading

        self.t_end = t_end
        self.last: Last = {}
        live = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = live.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def scrape_config(self) -> dict[str, Any]:
        """A 15 s scrape that keeps the series' own job/instance labels (the backfilled series go on)."""
        return {"job_name": "bench-live", "honor_labels": True, "scrape_interval": "15s",
                "static_configs": [{"targets": [self.target]}]}

    def exposition(self) -> str:
        elapsed = max(0.0, time.time() - self.t_end)
        lines = [f"# TYPE {METRIC} counter"]
        for key, (value, rate) in self.last.items():
            labels = ",".join(f'{k}="{v}"' for k, v in key)
            lines.append(f"{METRIC}{{{labels}}} {value + rate * elapsed!r}")
        return "\n".join(lines) + "\n"

    def storm(self) -> None:
        """From now on every 5xx series runs at its route and instance's 2xx rate: half the requests fail."""
        now = time.time()
        elapsed = max(0.0, now - self.t_end)
        ok = {tuple(kv for kv in key if kv[0] != "http_response_status_code"): rate
              for key, (_v, rate) in self.last.items() if dict(key)["http_response_status_code"] == "200"}
        rebased: Last = {}
        for key, (value, rate) in self.last.items():
            now_value = value + rate * elapsed  # the value served so far stays continuous
            new_rate = rate
            if dict(key)["http_response_status_code"] in ("500", "503"):
                new_rate = ok[tuple(kv for kv in key if kv[0] != "http_response_status_code")]
            rebased[key] = (now_value - new_rate * elapsed, new_rate)
        self.last = rebased

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------- rule sets


def _sel(svc: str, extra: str = "") -> str:
    return f'{METRIC}{{service_name="{svc}"{"," + extra if extra else ""}}}'


ERR_MATCH = 'http_response_status_code=~"5.."'


def obsctl_rules(services: list[str]) -> tuple[str, dict[str, str], str, str]:
    """obsctl's rules for the availability SLOs (its default http SLI shape reads exactly our metric).

    Returns the rule text, each service's period error ratio as one expression (the recorded
    period rates it divides inlined), the 5m rate rules and the tile rules (backfilled per pass).
    """
    from bench.common import templates
    from obsctl.model import conventions as cv
    from obsctl.model.entities import SLO, AvailabilitySLI, EntityRef, Service
    from obsctl.render.options import RenderOptions
    from obsctl.render.rules import service_groups
    from obsctl.render.sli import selector, sli_queries

    tpl = templates()
    groups: list[dict[str, Any]] = []
    period: dict[str, str] = {}
    short: list[dict[str, Any]] = []
    tiles: list[dict[str, Any]] = []
    tile_names = {cv.series(t, w) for t in (cv.SERIES_ERRORS_SUM, cv.SERIES_TOTAL_SUM, cv.SERIES_RATE_SAMPLES)
                  for w in TILE_INTERVALS}
    for name in services:
        svc = Service(EntityRef("component", "default", name), EntityRef("group", "default", "bench"),
                      (SLO("availability", OBJECTIVE, AvailabilitySLI(), period_days=30),))
        gs = service_groups(svc, tpl, RenderOptions())
        groups.extend(gs)
        slo = svc.slos[0]
        raw = sli_queries(svc, slo, tpl, "5m", cv.service_environment(svc, RenderOptions().environment),
                          total_ref=cv.series(cv.SERIES_TOTAL, "5m") + selector(cv.alert_selector(svc, slo)))
        short_raw = {cv.series(cv.SERIES_ERRORS, "5m"): raw.errors, cv.series(cv.SERIES_TOTAL, "5m"): raw.total}
        recorded: dict[str, str] = {}
        for g in gs:
            for rule in g["rules"]:
                if "record" in rule:
                    recorded[rule["record"]] = rule["expr"]
                if rule.get("record") in short_raw:
                    # checked against the backfill as the two raw reads the one read by error class sums up
                    short.append({**rule, "expr": short_raw[rule["record"]]})
                if rule.get("record") in tile_names:
                    tiles.append(rule)
        # the period's figures inlined down to the tiles (the accuracy query runs before any rule is loaded)
        inline = {cv.SERIES_PERIOD_RATE_SAMPLES: recorded[cv.SERIES_PERIOD_RATE_SAMPLES]}
        errors, total = (_inlined(recorded[n], inline) for n in (cv.SERIES_PERIOD_ERRORS, cv.SERIES_PERIOD_TOTAL))
        period[name] = f"({errors})\n/\n({total})"
    return (_dump(groups), period, _dump([{"name": "obsctl-backfill-5m", "rules": short}]),
            _dump([{"name": "obsctl-backfill-tiles", "rules": tiles}]))


def _inlined(expr: str, recorded: dict[str, str]) -> str:
    """`expr` with every selector of a recorded series (`name{...}`) replaced by that series' expression."""
    for name, body in recorded.items():
        expr = re.sub(re.escape(name) + r"\{[^}]*\}", lambda _m, b=body: f"({b})", expr)
    return expr


def sloth_spec(services: list[str]) -> str:
    """A Sloth prometheus/v1 spec per service (several YAML documents), same SLI queries as obsctl's."""
    docs = []
    for name in services:
        docs.append({
            "version": "prometheus/v1", "service": name, "labels": {"owner": "bench"},
            "slos": [{
                "name": "availability", "objective": OBJECTIVE * 100,
                "sli": {"events": {
                    "error_query": f"sum(rate({_sel(name, ERR_MATCH)}[{{{{.window}}}}]))",
                    "total_query": f"sum(rate({_sel(name)}[{{{{.window}}}}]))"}},
                "alerting": {"name": "SLOErrorBudgetBurn", "page_alert": {"labels": {"severity": "page"}},
                             "ticket_alert": {"labels": {"severity": "ticket"}}}}],
        })
    return yaml.safe_dump_all(docs, sort_keys=False)


SLOTH_UNOPTIMIZED_CHAIN = (
    '{"id":"sloth.dev/core/validate/v1","priority":-1000}',
    '{"id":"sloth.dev/core/sli_rules/v1","priority":0,"config":{"disableOptimized":true}}',
    '{"id":"sloth.dev/core/metadata_rules/v1","priority":100}',
    '{"id":"sloth.dev/core/alert_rules/v1","priority":200}',
)


def sloth_rules(exe: Path, services: list[str], work: Path, optimized: bool) -> tuple[str, dict[str, str], str]:
    """Run the real `sloth generate`; return the rule text, period expressions, the 5m-ratio rules."""
    work.mkdir(parents=True, exist_ok=True)
    spec_dir = work / "sloth-specs"
    spec_dir.mkdir(exist_ok=True)
    texts = []
    period: dict[str, str] = {}
    short: list[dict[str, Any]] = []
    for name, doc in zip(services, sloth_spec(services).split("\n---\n"), strict=True):
        spec = spec_dir / f"{name}.yml"
        spec.write_text(doc)
        out = work / f"sloth-{'opt' if optimized else 'unopt'}-{name}.yml"
        args = [str(exe), "generate", "-i", str(spec), "-o", str(out), "--no-log"]
        if not optimized:
            args.append("--disable-default-slo-plugins")
            for plugin in SLOTH_UNOPTIMIZED_CHAIN:
                args += ["-s", plugin]
        res = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"sloth generate failed: {res.stdout}{res.stderr}")
        text = out.read_text()
        texts.append(text)
        for g in yaml.safe_load(text)["groups"]:
            for rule in g["rules"]:
                if rule.get("record") == "slo:sli_error:ratio_rate30d":
                    period[name] = rule["expr"]
                if rule.get("record") == "slo:sli_error:ratio_rate5m":
                    short.append(rule)
    groups = [g for t in texts for g in yaml.safe_load(t)["groups"]]
    return _dump(groups), period, _dump([{"name": "sloth-backfill-5m", "rules": short}])


def _pyrra_window(seconds_28d: int) -> str:
    """Pyrra scales its 28d window table to the SLO window, rounded to the minute."""
    s = round(seconds_28d * 30 / 28 / 60) * 60
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m = rem // 60
    return "".join(f"{v}{u}" for v, u in ((d, "d"), (h, "h"), (m, "m")) if v) or "0m"


# Pyrra's own group intervals (its slo/rules.go): the increase group of a 28-35d window every 150 s, the burn-rate
# and generic groups every 30 s, whatever Prometheus' evaluation interval.
PYRRA_INTERVALS = {"increase": "150s", "burnrates": "30s", "generic": "30s"}


def pyrra_rules(services: list[str], own_intervals: bool = False) -> tuple[str, dict[str, str]]:
    """Pyrra-style rules reproduced from its published shapes (not generated by Pyrra).

    Per SLO: an increase group recording `sum by (status) (increase(counter[30d]))`, the
    availability from it, and a burn-rate group over the raw counters at Pyrra's windows
    (5m, 30m, 1h, 2h, 6h, 1d, 4d for 28d, scaled to 30d) with its four MWMB alerts. Every group
    runs at Prometheus' evaluation interval (the same as every other rule set), or with
    `own_intervals` at Pyrra's own (PYRRA_INTERVALS).
    """
    groups = []
    period: dict[str, str] = {}
    windows = [_pyrra_window(s) for s in (300, 1800, 3600, 7200, 21600, 86400, 4 * 86400)]
    short_long = [(windows[0], windows[2], 14), (windows[1], windows[4], 7), (windows[3], windows[5], 2),
                  (windows[4], windows[6], 1)]
    for name in services:
        slo = f"{name}-availability"
        inc = "http_server_request_duration_seconds:increase30d"
        groups.append({"name": f"{slo}-increase", "rules": [
            {"record": inc, "expr": f"sum by (http_response_status_code) (increase({_sel(name)}[30d]))",
             "labels": {"slo": slo}},
            {"alert": "SLOMetricAbsent", "expr": f"absent({_sel(name)}) == 1", "for": "10m",
             "labels": {"slo": slo, "severity": "critical"}},
        ]})
        rules: list[dict[str, Any]] = []
        for w in windows:
            rules.append({"record": f"http_server_request_duration_seconds:burnrate{w}",
                          "expr": f"sum(rate({_sel(name, ERR_MATCH)}[{w}])) / sum(rate({_sel(name)}[{w}]))",
                          "labels": {"slo": slo}})
        for short, long, factor in short_long:
            rules.append({"alert": "ErrorBudgetBurn",
                          "expr": f'http_server_request_duration_seconds:burnrate{short}{{slo="{slo}"}} > '
                                  f"({factor} * (1-{OBJECTIVE})) and "
                                  f'http_server_request_duration_seconds:burnrate{long}{{slo="{slo}"}} > '
                                  f"({factor} * (1-{OBJECTIVE}))",
                          "labels": {"slo": slo, "severity": "critical" if factor >= 7 else "warning",
                                     "short": short, "long": long}})
        groups.append({"name": slo, "rules": rules})
        groups.append({"name": f"{slo}-generic", "rules": [
            {"record": "pyrra_availability",
             "expr": f'1 - sum({inc}{{slo="{slo}",http_response_status_code=~"5.."}} or vector(0)) / '
                     f'sum({inc}{{slo="{slo}"}})',
             "labels": {"slo": slo}},
            {"record": "pyrra_objective", "expr": f"vector({OBJECTIVE})", "labels": {"slo": slo}},
        ]})
        # the recorded increase, inlined: what pyrra_availability reads at the end of the data
        period[name] = (f"sum(increase({_sel(name, ERR_MATCH)}[30d])) / sum(increase({_sel(name)}[30d]))")
    if own_intervals:
        groups = [{"name": g["name"], "interval": PYRRA_INTERVALS[_group_kind(g["name"])], "rules": g["rules"]}
                  for g in groups]
    return _dump(groups), period


def _by_service(expr_of_selector: str, label: str) -> str:
    """`sum by (label) (...)` over every service at once, the service name copied into `label`."""
    return f'sum by ({label}) (label_replace({expr_of_selector}, "{label}", "$1", "service_name", "(.*)"))'


def vectorised_backfill_rules() -> str:
    """One rule per recorded 5m series for all services at once: the per-service rules' values and labels.

    `promtool tsdb create-blocks-from rules` runs one range query per rule and 2h block; with one rule
    per service that is services x 360 queries per series. These equivalents compute the same sums
    grouped by service (checked against the generated per-service expressions after the backfill).
    """
    from obsctl.model import conventions as cv

    err = f"rate({METRIC}{{{ERR_MATCH}}}[5m])"
    tot = f"rate({METRIC}[5m])"
    obs_labels = {cv.LABEL_NAMESPACE: "default", cv.LABEL_SLO: "availability"}
    sloth_ratio = (f'sum by (sloth_service) (label_replace(sum by (service_name) ({err}) / '
                   f'sum by (service_name) ({tot}), "sloth_service", "$1", "service_name", "(.*)"))')
    rules = [
        {"record": cv.series(cv.SERIES_ERRORS, "5m"),
         "expr": f"{_by_service(err, cv.LABEL_SERVICE)} or (0 * {_by_service(tot, cv.LABEL_SERVICE)})",
         "labels": dict(obs_labels)},
        {"record": cv.series(cv.SERIES_TOTAL, "5m"), "expr": _by_service(tot, cv.LABEL_SERVICE),
         "labels": dict(obs_labels)},
        {"record": "slo:sli_error:ratio_rate5m",
         "expr": f'label_replace({sloth_ratio}, "sloth_id", "$1-availability", "sloth_service", "(.*)")',
         "labels": {"owner": "bench", "sloth_slo": "availability", "sloth_window": "5m"}},
    ]
    return _dump([{"name": "bench-backfill-5m", "rules": rules}])


# Tiles hold one sample per span (the generated rules record a tile only when their own series has none in
# the span before): backfilled at their span, from the first span boundary of the data on.
TILE_INTERVALS = {"5m": 300, "10m": 600}


def vectorised_tile_rules(tile: str) -> str:
    """obsctl's tile sums and counts of the recorded 5m rates over `tile`, for all services at once (a
    backfill pass per tile, one evaluation per span: what the generated rules' `unless` keeps live)."""
    from obsctl.model import conventions as cv
    from obsctl.model.durations import parse_duration
    from obsctl.render.rules import _under

    rules = []
    span = _under(parse_duration(tile))
    for name, src, fn in ((cv.SERIES_ERRORS_SUM, cv.SERIES_ERRORS, "sum"),
                          (cv.SERIES_TOTAL_SUM, cv.SERIES_TOTAL, "sum"),
                          (cv.SERIES_RATE_SAMPLES, cv.SERIES_TOTAL, "count")):
        rules.append({"record": cv.series(name, tile), "expr": f"{fn}_over_time({cv.series(src, '5m')}[{span}])"})
    return _dump([{"name": f"bench-backfill-tiles-{tile}", "rules": rules}])


def _dump(groups: list[dict[str, Any]]) -> str:
    return yaml.safe_dump({"groups": groups}, sort_keys=False, width=1 << 20)


# --------------------------------------------------------------------------- Prometheus helpers


def _query(url: str, expr: str, at: float, stats: bool = False) -> dict[str, Any]:
    params = {"query": expr, "time": repr(float(at))}
    if stats:
        params["stats"] = "all"
    req = urllib.request.Request(f"{url}/api/v1/query", data=urllib.parse.urlencode(params).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=300) as resp:
        doc: dict[str, Any] = json.loads(resp.read())
    if doc.get("status") != "success":
        raise RuntimeError(f"query {expr!r}: {doc}")
    data: dict[str, Any] = doc["data"]
    return data


def _scalar(data: dict[str, Any]) -> float | None:
    result = data.get("result") or []
    if not result:
        return None
    return float(result[0]["value"][1])


_SUBQUERY = re.compile(r"\[(\d+[smhdwy]):5m\]")
_METRIC_LINE = re.compile(r'^(prometheus_rule_group_last_(?:duration_seconds|evaluation_timestamp_seconds))'
                          r'\{rule_group="(?:[^";]*;)?([^"]*)"\} (\S+)$')


def _group_metrics(url: str) -> dict[str, dict[str, float]]:
    """{rule_group: {"duration": s, "ts": unix}} from /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        m = _METRIC_LINE.match(line)
        if m:
            key = "duration" if m.group(1).endswith("duration_seconds") else "ts"
            out.setdefault(m.group(2), {})[key] = float(m.group(3))
    return out


# --------------------------------------------------------------------------- the benchmark


def run(ctx: Context) -> list[Row]:
    """Backfill, load each rule set, measure cost and accuracy."""
    from tests.support.prom import Prometheus, backfill_counters

    if not shutil.which("prometheus") or not shutil.which("promtool"):
        ctx.note("rules: prometheus/promtool not installed (scripts/setup.sh apt); skipped")
        return [Row(NAME, "", "skipped", "prometheus/promtool missing", "", "n/a")]
    shape = Shape(services=4, routes=1, instances=1, evaluations=2) if ctx.quick else \
        Shape(services=20, routes=3, instances=2, evaluations=3)
    seed = ctx.seed + 3
    services = [f"svc-{s:03d}" for s in range(shape.services)]
    work = ctx.work / "rules"
    work.mkdir(parents=True, exist_ok=True)
    t_end = int(time.time()) // STEP_S * STEP_S
    t_start = t_end - PERIOD_S
    n_series = shape.services * shape.series_per_slo
    n_samples = n_series * (PERIOD_S // STEP_S + 1)
    inputs = (f"N={shape.services} SLOs x {shape.series_per_slo} series ({shape.routes} routes x "
              f"{shape.instances} instances x {len(CODES)} codes), 30d @ {STEP_S}s, seed={seed}")
    say(f"[rules] {inputs}: {n_series} series, {n_samples / 1e6:.1f} M samples, data ends {t_end}")

    # rule sets first: a Sloth build failure is reported, the rest still runs
    sets: list[RuleSet] = []
    backfill_rules: list[str] = []
    text, period, short, tile_rules = obsctl_rules(services)
    sets.append(RuleSet("obsctl", text, period, "obsctl.render.rules"))
    backfill_rules.append(short)
    exe, how = sloth_bin.ensure()
    say(f"[rules] sloth {sloth_bin.VERSION}: {how}")
    if exe is not None:
        text, period, short = sloth_rules(exe, services, work, optimized=True)
        sets.append(RuleSet("sloth-optimized", text, period, f"sloth generate {sloth_bin.VERSION}"))
        backfill_rules.append(short)
        text, period, _ = sloth_rules(exe, services, work, optimized=False)
        sets.append(RuleSet("sloth-unoptimized", text, period,
                            f"sloth generate {sloth_bin.VERSION} (sli_rules disableOptimized)"))
    else:
        ctx.note(f"rules: Sloth could not be built ({how}); Sloth rows are missing")
    text, period = pyrra_rules(services)
    sets.append(RuleSet("pyrra-style", text, period, "Pyrra's published shapes, reproduced (Pyrra not fetchable)"))
    text, period = pyrra_rules(services, own_intervals=True)
    sets.append(RuleSet("pyrra-own-intervals", text, period,
                        "the same, at Pyrra's own group intervals: increase 150s, burn rates and generic 30s"))
    ctx.note("rules: Pyrra could not be built (the Go module proxy answers 403 for github.com/pyrra-dev/pyrra); "
             "its rules are reproduced from its published shapes: sum by(code)(increase(counter[30d])) recorded per "
             "SLO, availability from it, raw-counter burn rates at 5m..4d (scaled to 30d) and four MWMB alerts")

    exact: dict[str, tuple[float, float]] = {}
    live = LiveCounters(t_end)
    prom = Prometheus(work / "prom", evaluation_interval=f"{EVAL_INTERVAL_S}s", scrape_interval="15s",
                      extra_scrape_configs=[live.scrape_config()])
    t0 = time.monotonic()
    bf = backfill_counters(prom.data_dir, _traffic(shape, seed, t_start, exact, live.last), work_dir=work / "om")
    live.start()
    say(f"[rules] raw backfill: {bf.samples / 1e6:.1f} M samples, {len(bf.files)} files, generated in "
        f"{bf.write_seconds:.0f} s, promtool {bf.promtool_seconds:.0f} s")
    rows = [Row(NAME, inputs, "raw backfill (generate + promtool)", f"{bf.write_seconds + bf.promtool_seconds:.0f} s")]
    try:
        prom.start(timeout=120)
        # recorded 5m series the period rules read, backfilled over the same 30 days; then, from them,
        # obsctl's tiles (a second pass: promtool evaluates rules against the running Prometheus only)
        rules_bf = 0.0
        # promtool (2.42) gives up on a rule when its first aligned evaluation falls past the end of the first
        # 2h block, which a 1h interval does for part of every 2h of start times: it then writes nothing. Its
        # range starts on a 2h boundary (before the data: nothing recorded there) so the first block has room.
        rules_start = t_start // 7200 * 7200
        for stage, text, every in (("5m rates", vectorised_backfill_rules(), STEP_S),
                                   *((f"{t} tiles", vectorised_tile_rules(t), s) for t, s in TILE_INTERVALS.items())):
            rb = work / f"recorded-{stage.replace(' ', '-')}"
            path = work / f"backfill-{stage.replace(' ', '-')}.yml"
            path.write_text(text)
            t1 = time.monotonic()
            # promtool aligns every evaluation to the group's interval (plus an offset from its hash, as a live
            # Prometheus does), so the tiles come one span apart
            res = subprocess.run(["promtool", "tsdb", "create-blocks-from", "rules", "-q", f"--start={rules_start}",
                                  f"--end={t_end}", f"--url={prom.url}", f"--output-dir={rb}",
                                  f"--eval-interval={every}s", str(path)],
                                 capture_output=True, text=True, timeout=3600, check=False)
            if res.returncode != 0:
                raise RuntimeError("promtool create-blocks-from rules failed: "
                                   f"{res.stdout[-1500:]}{res.stderr[-1500:]}")
            took = time.monotonic() - t1
            rules_bf += took
            say(f"[rules] recorded-series backfill, {stage} (promtool create-blocks-from rules, vectorised rules "
                f"standing for the per-service ones): {took:.0f} s")
            if not rb.is_dir():
                raise RuntimeError(f"promtool create-blocks-from rules wrote nothing for {stage} in {took:.0f} s: "
                                   f"{res.stdout[-1500:]}{res.stderr[-1500:]}")
            prom.stop()
            for block in rb.iterdir():
                if block.is_dir():
                    shutil.move(str(block), prom.data_dir / block.name)
            prom.start(timeout=120)
        rows.append(Row(NAME, inputs, "recorded 5m series and tiles backfill (promtool rules)", f"{rules_bf:.0f} s"))
        _wait_complete(ctx, prom.url, t_end)
        _check_backfill(ctx, prom.url, [*backfill_rules, tile_rules], t_end - 3600)
        diag = _accuracy(ctx, prom.url, sets, exact, t_end)
        _settle(ctx, prom.url)
        for rs in sets:
            _cost(ctx, prom, rs, shape)
        storm = [rs for rs in sets if rs.name in STORM_SETS]
        if storm:
            live.storm()
            wait = 180 if ctx.quick else STORM_WAIT_S
            say(f"[rules] storm: half of every service's requests fail from now; measuring {len(storm)} rule sets "
                f"again after {wait // 60} minutes")
            time.sleep(wait)
            for rs in storm:
                _cost(ctx, prom, rs, shape, rs.storm)
    finally:
        prom.stop()
        live.stop()
        shutil.rmtree(prom.data_dir, ignore_errors=True)
    say(f"[rules] done in {time.monotonic() - t0:.0f} s")
    return rows + _rows(ctx, sets, inputs, diag)


def _metric_values(url: str, names: tuple[str, ...]) -> dict[str, float]:
    """The values of some unlabelled metrics of Prometheus' own /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            out[name] = float(value)
    return out


def _settle(ctx: Context, url: str, quiet_s: float = 90.0, timeout: float = 900.0) -> None:
    """Wait until Prometheus has compacted the backfilled blocks: no compaction for `quiet_s`.

    Freshly backfilled data sits in hundreds of overlapping 2h blocks that Prometheus merges in the
    background for minutes; a long raw read pays per block, and the compactor takes CPU. Measured in
    that phase, the rule set that runs first pays for it (the Pyrra-style cost doubled between two
    sessions for that reason). Every rule set is measured in the same, settled compaction state.
    """
    names = ("prometheus_tsdb_compactions_total", "prometheus_tsdb_blocks_loaded",
             "prometheus_tsdb_vertical_compactions_total")
    t0 = time.monotonic()
    prev = _metric_values(url, names)
    quiet_since = time.monotonic()
    while time.monotonic() - t0 < timeout:
        time.sleep(10)
        now = _metric_values(url, names)
        if now != prev:
            quiet_since = time.monotonic()
            prev = now
        elif time.monotonic() - quiet_since >= quiet_s:
            break
    ctx.note(f"rules: waited {time.monotonic() - t0:.0f} s for the backfilled blocks' compaction to settle "
             f"(no compaction for {quiet_s:.0f} s; {prev.get('prometheus_tsdb_blocks_loaded', 0):.0f} blocks, "
             f"{prev.get('prometheus_tsdb_compactions_total', 0):.0f} compactions) before any rule set was measured")


def _wait_complete(ctx: Context, url: str, t_end: int, timeout: float = 600.0) -> None:
    """Wait until every backfilled series shows (nearly) all its 30 days at the end of the data.

    Right after a start on hundreds of overlapping backfilled blocks, Prometheus compacts them;
    measured here, queries in that phase saw a fifth of the recorded samples. Accuracy is read
    only once every raw and recorded series is complete.
    """
    steps = {name: STEP_S for name in ("obsctl:slo_errors:rate5m", "obsctl:slo_requests:rate5m",
                                        "slo:sli_error:ratio_rate5m", METRIC)}
    steps["obsctl:slo_rate_samples:count5m"] = TILE_INTERVALS["5m"]
    steps["obsctl:slo_requests:sum10m"] = TILE_INTERVALS["10m"]
    t0 = time.monotonic()
    short: float | None = None  # the most samples any series still misses
    while time.monotonic() - t0 < timeout:
        counts = {name: _scalar(_query(url, f"min(count_over_time({name}[30d]))", t_end)) for name in steps}
        short = None if None in counts.values() else max(
            PERIOD_S // steps[name] - (count or 0.0) for name, count in counts.items())
        if short is not None and short <= 10:
            say(f"[rules] all series complete (each misses {short:.0f} samples at most) after "
                f"{time.monotonic() - t0:.0f} s")
            return
        time.sleep(5)
    raise RuntimeError(f"backfilled series still incomplete after {timeout:.0f}s (one misses {short} samples)")


def _check_backfill(ctx: Context, url: str, backfill_rules: list[str], at: int) -> None:
    """The generated per-service 5m rules, evaluated near the end of the data, against what was backfilled."""
    worst = 0.0
    stamp: float | None = None
    rate_stamp: float | None = None  # of a 5m rate: the offset of promtool's evaluations (tiles lie a span apart)
    for text in backfill_rules:
        for g in yaml.safe_load(text)["groups"]:
            for rule in g["rules"]:
                sel = ",".join(f'{k}="{v}"' for k, v in sorted(rule.get("labels", {}).items()))
                # a tile holds one sample per span (promtool offsets them within it by the group's hash): the
                # latest one in the span before `at`
                span = next((s for w, s in TILE_INTERVALS.items() if _is_tile(rule["record"], w)), 0)
                last = (f"max_over_time(timestamp({rule['record']}{{{sel}}})[{span}s:{STEP_S}s])" if span
                        else f"timestamp({rule['record']}{{{sel}}})")
                stamp = _scalar(_query(url, last, at))
                if not span:
                    rate_stamp = stamp
                if stamp is None:
                    raise RuntimeError(f"backfilled {rule['record']}{{{sel}}} missing")
                got = _scalar(_query(url, f"{rule['record']}{{{sel}}}", stamp))
                # at the sample's own time; a tile's own `unless` (no tile in the span before) left out: the
                # backfilled tile itself is in that span
                want = _scalar(_query(url, rule["expr"].split("\nunless\n")[0], stamp))
                if want is None or got is None:
                    raise RuntimeError(f"backfilled {rule['record']}{{{sel}}} missing (want {want}, got {got})")
                worst = max(worst, abs(got - want) / abs(want) if want else abs(got))
    ctx.note(f"rules: promtool evaluated the backfilled rules {at - (rate_stamp or at):.3f} s before the raw samples' "
             "minute grid (live Prometheus offsets rule groups and scrapes by per-group/per-target hashes the same "
             "way), so a 5m rate recorded there spans 5 raw samples (4 increments), not 6")
    ctx.note(f"rules: the 5m series were backfilled with vectorised equivalents of the generated per-service "
             f"rules (one promtool query per block instead of one per service); at the end of the data they match "
             f"the generated expressions within {worst:.2e} (relative, 1 h before the end)")
    if worst > 1e-9:
        raise RuntimeError(f"vectorised backfill differs from the generated rules by {worst:.3e}")


def _is_tile(record: str, window: str) -> bool:
    """Whether `record` is one of obsctl's tile series over `window` (sums and count of the 5m rates)."""
    from obsctl.model import conventions as cv

    return record in {cv.series(t, window) for t in (cv.SERIES_ERRORS_SUM, cv.SERIES_TOTAL_SUM, cv.SERIES_RATE_SAMPLES)}


def _accuracy(ctx: Context, url: str, sets: list[RuleSet], exact: dict[str, tuple[float, float]],
              t_end: int) -> RuleSet | None:
    diag: RuleSet | None = None
    ob = next((rs for rs in sets if rs.name == "obsctl"), None)
    if ob is not None and any(_SUBQUERY.search(e) for e in ob.period_expr.values()):
        # diagnostic: the same ratio over every recorded sample instead of a [P:5m] subquery
        full = RuleSet("obsctl-full-resolution", "", {k: _SUBQUERY.sub(r"[\1]", e) for k, e in ob.period_expr.items()},
                       "obsctl's period expression without its :5m subquery step (diagnostic, not loaded)")
        _accuracy(ctx, url, [full], exact, t_end)
        diag = full
        ctx.note(f"rules: obsctl's period rule reads its recorded 5m rates through a [P:5m] subquery (one sample "
                 f"per 5 minutes): max relative error {full.results['rel_err_max']:.4%} without that step, reading "
                 f"{full.results['period_samples'] / 1e6:.2f} M samples in {fmt_s(full.results['period_query_s'])} "
                 f"for all SLOs instead of the subquery's (see the obsctl period-query row)")
    for rs in sets:
        errs = []
        samples = 0
        t = time.perf_counter()
        for svc, expr in rs.period_expr.items():
            e, tot = exact[svc]
            truth = e / tot
            data = _query(url, expr, t_end, stats=True)
            got = _scalar(data)
            samples += int(data.get("stats", {}).get("samples", {}).get("totalQueryableSamples", 0))
            errs.append(math.inf if got is None else abs(got - truth) / truth)
        rs.results["period_query_s"] = time.perf_counter() - t
        rs.results["period_samples"] = samples
        rs.results["rel_err_max"] = max(errs)
        rs.results["rel_err_mean"] = statistics.fmean(errs)
        rs.results["sli_abs_err_max"] = max(
            abs(e) for e in [err * exact[s][0] / exact[s][1] for s, err in zip(rs.period_expr, errs, strict=True)])
        say(f"[rules] accuracy {rs.name}: period error ratio vs exact: max {rs.results['rel_err_max']:.4%}, "
            f"mean {rs.results['rel_err_mean']:.4%} relative; period queries read {samples / 1e6:.2f} M samples in "
            f"{fmt_s(rs.results['period_query_s'])} ({len(rs.period_expr)} instant queries)")
    return diag


def _cost(ctx: Context, prom: Any, rs: RuleSet, shape: Shape, into: dict[str, Any] | None = None) -> None:
    """Load one rule set alone and measure it; the figures go to `into` (default: the set's results)."""
    out = rs.results if into is None else into
    state = "" if into is None else " (storm)"
    for old in prom.rules_dir.glob("*.yml"):
        old.unlink()
    prom.write_rule_file(f"{rs.name}.yml", rs.text, reload=True)
    doc = yaml.safe_load(rs.text)
    names = [g["name"] for g in doc["groups"]]
    loaded = prom.wait_rules_loaded(names, timeout=EVAL_INTERVAL_S * 6 + 120)
    interval = {g["name"]: float(g.get("interval") or EVAL_INTERVAL_S) for g in loaded["groups"]}
    seen: dict[str, float] = {}
    # the first readings may predate the poll or run cold; groups slower than a minute (obsctl's tickets and
    # period) need one warm reading, else a phase would last five of their intervals
    skip: dict[str, int] = {n: 2 if interval[n] <= 60 else 1 for n in names}
    need: dict[str, int] = {n: shape.evaluations if interval[n] <= 60 else 1 for n in names}
    durations: dict[str, list[float]] = {n: [] for n in names}
    deadline = time.monotonic() + max(interval.values()) * (shape.evaluations + 3) + 300
    # Beside the wall-clock group durations: Prometheus' own CPU seconds and the machine's load over the
    # phase. Under CPU contention a long raw read's wall time grows more than a short one's (Pyrra-style
    # measured 7.9 s/min quiet and 17.5 s/min at load 2-3), so the ratio moves with the load.
    cpu0 = _metric_values(prom.url, ("process_cpu_seconds_total",))
    t_phase, load0 = time.monotonic(), os.getloadavg()
    while time.monotonic() < deadline:
        for group, m in _group_metrics(prom.url).items():
            if group in durations and m.get("ts", 0) > seen.get(group, 0):
                if skip[group] > 0:
                    skip[group] -= 1
                else:
                    durations[group].append(m["duration"])
                seen[group] = m["ts"]
        if all(len(v) >= need[g] for g, v in durations.items()):
            break
        time.sleep(1.0)
    firing = sum(a.get("state") == "firing" for a in prom.alerts())
    cpu1 = _metric_values(prom.url, ("process_cpu_seconds_total",))
    phase_s, load1 = time.monotonic() - t_phase, os.getloadavg()
    cpu_min = (cpu1.get("process_cpu_seconds_total", 0.0) - cpu0.get("process_cpu_seconds_total", 0.0)) * 60.0 / phase_s
    # medians: one evaluation that meets a compaction or another process' burst does not move the figure
    per_eval = sum(statistics.median(v) for v in durations.values() if v)
    # groups may have their own interval (obsctl's meta group: 1m): cost per minute of wall clock
    per_min = sum(statistics.median(v) * 60.0 / interval[g] for g, v in durations.items() if v)
    # samples touched per evaluation: every expression once, with query stats
    samples = 0
    samples_min = 0.0
    now = time.time()
    for g in doc["groups"]:
        for rule in g["rules"]:
            n = int(_query(prom.url, rule["expr"], now, stats=True).get("stats", {})
                    .get("samples", {}).get("totalQueryableSamples", 0))
            samples += n
            samples_min += n * 60.0 / interval[g["name"]]
    rules_n = sum(len(g["rules"]) for g in doc["groups"])
    kinds: dict[str, float] = {}
    for group, values in durations.items():
        if values:
            kind = _group_kind(group)
            kinds[kind] = kinds.get(kind, 0.0) + statistics.median(values)
    out["by_kind"] = kinds
    slowest = max(durations.items(), key=lambda kv: statistics.median(kv[1]) if kv[1] else 0.0)
    out.update({"prom_cpu_min": cpu_min, "load": (load0[0], load1[0]), "phase_s": phase_s, "firing": firing})
    out.update({"eval_s": per_min, "eval_cycle_s": per_eval, "groups": len(names), "rules": rules_n,
                       "samples": samples_min, "samples_cycle": samples,
                       "intervals": sorted({f"{v:g}s" for v in interval.values()}),
                       "evals": min(len(v) for v in durations.values()),
                       "slowest_group": slowest[0], "slowest_s": statistics.median(slowest[1]) if slowest[1] else 0.0})
    say(f"[rules] cost {rs.name}{state}: {len(names)} groups (intervals {', '.join(out['intervals'])}), "
        f"{rules_n} rules; evaluation {fmt_s(per_min)} per minute ({fmt_s(per_eval)} per pass over every group; "
        f"group medians over {out['evals']}+ evaluations); samples touched {samples_min / 1e6:.2f} M per minute "
        f"({samples / 1e6:.2f} M per pass); "
        f"slowest group {slowest[0]} {fmt_s(out['slowest_s'])}; {firing} alerts firing")
    ctx.note(f"rules: {rs.name}{state} evaluation time per cycle by group kind: "
             + ", ".join(f"{k} {fmt_s(v)}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
             + f"; measured over {phase_s:.0f} s at 1-minute load {load0[0]:.1f} -> {load1[0]:.1f}, Prometheus "
             f"process CPU {cpu_min:.2f} s per minute (rules, live scrapes and housekeeping)")


def _group_kind(group: str) -> str:
    """sli/meta/tickets/period (obsctl), sli-recordings/meta-recordings/alerts (Sloth),
    increase/burnrates/generic (Pyrra)."""
    for suffix in ("-sli", "-meta", "-tickets", "-period", "-increase", "-generic"):
        if group.endswith(suffix):
            return suffix[1:]
    for part in ("sli-recordings", "meta-recordings", "alerts"):
        if f"-slo-{part}-" in group:
            return part
    return "burnrates" if group.endswith("-availability") else "other"


def _rows(ctx: Context, sets: list[RuleSet], inputs: str, diag: RuleSet | None) -> list[Row]:
    rows: list[Row] = []
    by = {rs.name: rs.results for rs in sets}
    by_storm = {rs.name: rs.storm for rs in sets}
    ob = by.get("obsctl", {})
    for rs in sets:
        r = rs.results
        if "eval_s" not in r:
            continue
        label = f"{rs.name} ({rs.origin})"
        tgt, ok = "", None
        if rs.name == "obsctl":
            ref = by.get("sloth-optimized", {})
            if "eval_s" in ref:
                tgt, ok = "<= sloth-optimized", r["samples"] <= ref["samples"]
        rows.append(Row(NAME, label, "samples touched per minute (per pass over all groups)",
                        f"{r['samples'] / 1e6:.2f} M ({r['samples_cycle'] / 1e6:.2f} M)", tgt,
                        verdict(ok) if tgt else ""))
        rows.append(Row(NAME, label, "rule evaluation time per minute (per pass; group intervals "
                        f"{'/'.join(r['intervals'])})", f"{fmt_s(r['eval_s'])} ({fmt_s(r['eval_cycle_s'])})",
                        tgt, verdict(r["eval_s"] <= by["sloth-optimized"]["eval_s"]) if tgt else ""))
        if "prom_cpu_min" in r:
            rows.append(Row(NAME, label, "Prometheus process CPU per minute while measured (1-minute load then; "
                            "alerts firing)", f"{r['prom_cpu_min']:.2f} s (load {r['load'][0]:.1f} -> "
                            f"{r['load'][1]:.1f}; {r.get('firing', 0)} firing)"))
        st = rs.storm
        if "eval_s" in st:
            rows.append(Row(NAME, label, "storm (half the requests fail): rule evaluation time per minute (per pass), "
                            "Prometheus CPU per minute, alerts firing",
                            f"{fmt_s(st['eval_s'])} ({fmt_s(st['eval_cycle_s'])}), {st['prom_cpu_min']:.2f} s "
                            f"(load {st['load'][0]:.1f} -> {st['load'][1]:.1f}), {st.get('firing', 0)} firing"))
        rows.append(Row(NAME, label, "period error ratio vs exact (max / mean rel. error)",
                        f"{r['rel_err_max']:.4%} / {r['rel_err_mean']:.4%}",
                        "<= 0.1 %" if rs.name == "obsctl" else "",
                        verdict(r["rel_err_max"] <= 0.001) if rs.name == "obsctl" else ""))
        rows.append(Row(NAME, label, "max |SLI - exact SLI|", f"{r['sli_abs_err_max'] * 100:.4f} pp"))
        rows.append(Row(NAME, label, "period SLI queries at the end of the data (all SLOs): samples, time",
                        f"{r['period_samples'] / 1e6:.2f} M, {fmt_s(r['period_query_s'])}"))
    if diag is not None:
        r = diag.results
        label = f"{diag.name} ({diag.origin})"
        rows.append(Row(NAME, label, "period error ratio vs exact (max / mean rel. error)",
                        f"{r['rel_err_max']:.4%} / {r['rel_err_mean']:.4%}"))
        rows.append(Row(NAME, label, "period SLI queries at the end of the data (all SLOs): samples, time",
                        f"{r['period_samples'] / 1e6:.2f} M, {fmt_s(r['period_query_s'])}"))
    for full in ("pyrra-style", "sloth-unoptimized"):
        f = by.get(full, {})
        if "samples" in f and "samples" in ob and ob["samples"]:
            ratio_s = f["samples"] / ob["samples"]
            ratio_t = f["eval_s"] / ob["eval_s"] if ob["eval_s"] else math.inf
            rows.append(Row(NAME, inputs, f"{full} / obsctl: samples touched", f"{ratio_s:.1f}x", ">= 20x",
                            verdict(ratio_s >= 20)))
            rows.append(Row(NAME, inputs, f"{full} / obsctl: evaluation time", f"{ratio_t:.1f}x", ">= 20x",
                            verdict(ratio_t >= 20)))
            fs, os_ = by_storm.get(full, {}), by_storm.get("obsctl", {})
            if "eval_s" in fs and os_.get("eval_s"):
                rows.append(Row(NAME, inputs, f"{full} / obsctl: evaluation time in the storm (every alert firing)",
                                f"{fs['eval_s'] / os_['eval_s']:.1f}x"))
    # no target: the is against the raw-window rules at one evaluation interval, but Pyrra itself runs
    # its 30d increase group every 150 s
    own = by.get("pyrra-own-intervals", {})
    if "eval_s" in own and ob.get("eval_s") and ob.get("samples"):
        rows.append(Row(NAME, inputs, "pyrra-own-intervals / obsctl: samples touched, evaluation time",
                        f"{own['samples'] / ob['samples']:.1f}x, {own['eval_s'] / ob['eval_s']:.1f}x"))
    return rows
