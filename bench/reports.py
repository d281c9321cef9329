"""SLO report benchmark: one report for 10,000 SLOs from a real Prometheus, against slo-generator's pattern.

Prometheus is backfilled with the series obsctl's rules record for 10,000 SLOs (5,000 synthetic
services x availability + latency, 30d): the 5m request rate over 30 days at 2-hour resolution
(what slo-generator's pattern reads here), and the latest error ratio and request rate of every
window, the period ratio, the period's request count and the objective. `obsctl.slo.query.build_report`
then builds the report for all of them; its query count and wall time are the figures (target: at
most 10 queries, under 5 s).

slo-generator computes each SLO for each step of its error-budget policy (default 1h, 12h, 7d, 28d)
with one query for good and one for valid events: 2 x 4 queries per SLO. A sample of such
per-SLO queries is timed against the same Prometheus (reading the recorded series, which is cheaper
than the raw counters slo-generator reads), and the total extrapolated.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import time
import urllib.parse
import urllib.request
from typing import Any

from bench.common import Context, Row, fmt_s, process_cpu_s, say, synthetic_catalog, templates, verdict

NAME = "reports"
SLO_GENERATOR_WINDOWS = ("1h", "12h", "7d", "28d")  # slo-generator's default error budget policy steps
SAMPLE_QUERIES = 200
TOTAL_STEP_S = 2 * 3600


def _families(catalog: Any, tpl: Any, now: int, seed: int) -> dict[str, list[Any]]:
    from obsctl.model import conventions as cv

    rnd = random.Random(seed)
    fam: dict[str, list[Any]] = {}
    total5 = cv.series(cv.SERIES_TOTAL, cv.SHORT_RESOLUTION)
    errors5 = cv.series(cv.SERIES_ERRORS, cv.SHORT_RESOLUTION)
    start = now - 30 * 86400
    recent = (float(now - 120), float(now - 60))
    for svc in catalog.services:
        for slo in svc.slos:
            labels = {cv.LABEL_SERVICE: svc.name, cv.LABEL_NAMESPACE: svc.namespace, cv.LABEL_SLO: slo.name}
            rate = rnd.uniform(1, 500)
            ratio = rnd.uniform(0, 3 * slo.error_budget)
            fam.setdefault(total5, []).append(
                (labels, [(float(t), rate * (1 + 0.3 * ((t // 3600) % 24 > 8))) for t in
                          range(start, now - 60, TOTAL_STEP_S)] + [(float(now - 60), rate)]))
            fam.setdefault(errors5, []).append((labels, [(t, rate * ratio) for t in recent]))
            # the period's request count the rules record from their 10m tiles (rolling reports read it)
            fam.setdefault(cv.SERIES_PERIOD_EVENTS, []).append(
                (labels, [(t, rate * slo.period_days * 86400.0) for t in recent]))
            for w in tpl.windows[slo.period_days].windows_s:
                wn = cv.window_name(w)
                fam.setdefault(cv.series(cv.SERIES_ERROR_RATIO, wn), []).append(
                    (labels, [(t, ratio * rnd.uniform(0.5, 1.5)) for t in recent]))
                if wn != cv.SHORT_RESOLUTION:  # that one carries its own history above
                    fam.setdefault(cv.series(cv.SERIES_TOTAL, wn), []).append(
                        (labels, [(t, rate * rnd.uniform(0.8, 1.2)) for t in recent]))
            fam.setdefault(cv.SERIES_PERIOD_ERROR_RATIO, []).append((labels, [(t, ratio) for t in recent]))
            fam.setdefault(cv.SERIES_OBJECTIVE, []).append((labels, [(t, slo.objective) for t in recent]))
    return fam


def _query_seconds(url: str, expr: str, at: float) -> float:
    body = urllib.parse.urlencode({"query": expr, "time": repr(float(at))}).encode()
    t = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(f"{url}/api/v1/query", data=body), timeout=60) as resp:
        resp.read()
    return time.perf_counter() - t


def _profile(ctx: Context, fn: Any) -> None:
    """Where a slow report spends its time (pyinstrument), into the notes."""
    import re

    try:
        from pyinstrument import Profiler
    except ImportError:
        ctx.note("reports: over target; pyinstrument is not installed, no profile")
        return
    prof = Profiler(interval=0.002)
    prof.start()
    fn()
    prof.stop()
    text = prof.output_text(unicode=False, color=False)
    say(text[:6000])
    frames: list[str] = []
    seen: set[str] = set()
    total = 0.0
    for ln in text.splitlines():
        m = re.search(r"([\d.]+) (\S+)\s+(\S+:\d+)", ln)
        if not m:
            continue
        secs = float(m.group(1))
        total = max(total, secs)
        if ("obsctl/" in m.group(3) or "httpx" in m.group(3)) and m.group(2) not in seen and secs >= 0.04 * total:
            seen.add(m.group(2))
            frames.append(f"{m.group(2)} {m.group(3)} {secs:.2f} s ({secs / total:.0%})")
    ctx.note(f"reports: pyinstrument profile of one build_report ({total:.1f} s), frames over 4 %: "
             + "; ".join(frames[:25]))


def run(ctx: Context) -> list[Row]:
    """Backfill recorded series for N SLOs, build one report, time slo-generator's pattern."""
    from obsctl.model import conventions as cv
    from obsctl.slo.query import build_report
    from tests.support.prom import Prometheus, backfill_counters

    if not shutil.which("prometheus"):
        return [Row(NAME, "", "skipped", "prometheus missing", "", "n/a")]
    n_slos = 200 if ctx.quick else 10000
    seed = ctx.seed + 4
    catalog = synthetic_catalog(n_slos // 2, seed, slos_per_service=2)
    tpl = templates()
    n = sum(len(s.slos) for s in catalog.services)
    inputs = f"N={n} SLOs ({len(catalog.services)} services x 2, 30d), seed={seed}"
    say(f"[reports] {inputs}")
    now = int(time.time()) // 60 * 60
    prom = Prometheus(ctx.work / "reports-prom", evaluation_interval="1m", scrape_interval="1m")
    fam = _families(catalog, tpl, now, seed)
    bf = backfill_counters(prom.data_dir, fam, work_dir=ctx.work / "reports-om")
    say(f"[reports] backfilled {bf.samples / 1e6:.2f} M samples in {bf.write_seconds + bf.promtool_seconds:.0f} s")
    rows: list[Row] = []
    try:
        prom.start(timeout=120)
        build_report(catalog, tpl, prom.url, now=float(now), timeout=120)  # warm-up: page cache, postings
        import httpx

        timings: list[tuple[str, float]] = []
        started: dict[int, float] = {}

        def on_request(request: httpx.Request) -> None:
            started[id(request)] = time.perf_counter()

        def on_response(response: httpx.Response) -> None:  # headers in: Prometheus has evaluated the query
            form = urllib.parse.parse_qs(response.request.content.decode())
            timings.append((form.get("query", ["?"])[0][:70],
                            time.perf_counter() - started.pop(id(response.request), time.perf_counter())))

        client = httpx.Client(timeout=120, event_hooks={"request": [on_request], "response": [on_response]})
        prom_pid = prom.proc.pid if prom.proc is not None else None
        load = os.getloadavg()
        t, cpu, prom_cpu = time.perf_counter(), time.process_time(), process_cpu_s(prom_pid)
        try:
            report = build_report(catalog, tpl, prom.url, now=float(now), timeout=120, client=client)
        finally:
            client.close()
        wall = time.perf_counter() - t
        cpu, prom_cpu = time.process_time() - cpu, process_cpu_s(prom_pid) - prom_cpu
        ctx.note(f"reports: the report's CPU: obsctl process {cpu:.2f} s (parse, assembly, per-SLO reports), "
                 f"Prometheus process {prom_cpu:.2f} s; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
                 f"when it started, on {os.cpu_count()} cores")
        ctx.note("reports: obsctl's queries, time to Prometheus's answer headers (evaluation; the body transfer "
                 "and parsing follow): " + "; ".join(f"{q!r} {fmt_s(dt)}" for q, dt in timings)
                 + f"; the whole report {fmt_s(wall)}")
        if wall >= 5.0:
            _profile(ctx, lambda: build_report(catalog, tpl, prom.url, now=float(now), timeout=120))
        with_data = sum(1 for s in report.slos if s.sli is not None)
        say(f"[reports] obsctl report: {report.queries} queries, {fmt_s(wall)}, {with_data}/{n} SLOs with data")
        rows += [
            Row(NAME, inputs, "obsctl report: Prometheus queries", str(report.queries), "<= 10",
                verdict(report.queries <= 10)),
            Row(NAME, inputs, "obsctl report: wall time (build_report, warm)", fmt_s(wall), "< 5 s",
                verdict(wall < 5.0)),
            Row(NAME, inputs, "obsctl report: SLOs with a period SLI", f"{with_data}/{n}"),
        ]
        # slo-generator: good + valid per SLO per policy step
        total5 = cv.series(cv.SERIES_TOTAL, cv.SHORT_RESOLUTION)
        errors5 = cv.series(cv.SERIES_ERRORS, cv.SHORT_RESOLUTION)
        pairs = [(s, o) for s in catalog.services for o in s.slos]
        rnd = random.Random(seed)
        sample = [rnd.choice(pairs) for _ in range(SAMPLE_QUERIES // (2 * len(SLO_GENERATOR_WINDOWS)) + 1)]
        lat: list[float] = []
        for svc, slo in sample:
            sel = f'{{service="{svc.name}",{cv.LABEL_NAMESPACE}="{svc.namespace}",slo="{slo.name}"}}'
            for w in SLO_GENERATOR_WINDOWS:
                lat.append(_query_seconds(prom.url, f"sum(sum_over_time({total5}{sel}[{w}]))", now))
                lat.append(_query_seconds(prom.url, f"sum(sum_over_time({errors5}{sel}[{w}]))", now))
        q_total = n * len(SLO_GENERATOR_WINDOWS) * 2
        mean = statistics.fmean(lat)
        say(f"[reports] slo-generator pattern: {q_total} queries; {len(lat)} timed, mean {fmt_s(mean)} "
            f"-> {fmt_s(mean * q_total)} sequential")
        rows += [
            Row(NAME, inputs, "slo-generator pattern: queries (2 per SLO per policy step 1h/12h/7d/28d)",
                str(q_total)),
            Row(NAME, inputs, f"slo-generator pattern: mean query latency ({len(lat)} timed)", fmt_s(mean)),
            Row(NAME, inputs, "slo-generator pattern: extrapolated wall time (sequential)", fmt_s(mean * q_total)),
            Row(NAME, inputs, "queries: slo-generator / obsctl", f"{q_total / max(1, report.queries):.0f}x"),
        ]
        ctx.note("reports: slo-generator's per-query latency is measured on obsctl's recorded series (one "
                 "series per query); on the raw counters slo-generator actually reads each query costs more, so "
                 "its extrapolated time is a lower bound")
    finally:
        prom.stop()
        shutil.rmtree(prom.data_dir, ignore_errors=True)
    return rows
