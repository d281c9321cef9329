"""Apply benchmark: 10,000 services' artifacts into the Grafana emulator (10 ms per call), rule files and
collector files; then a no-change resync (wall time, number of writes: must be 0).

Runs as the reconcile loop does per sink: `list_owned` -> `make_plan` -> `apply_plan` with the
sink's parallelism (Grafana: `GrafanaSink(parallelism=8)`). The emulator runs in its own process
(so its CPU does not share obsctl's GIL) with `latency_s=0.01` and without its strict schema check
(real Grafana does not validate dashboards either). Rule and collector files go through `FilesSink`
without promtool/otelcol validation (per-file validation is the rule-file sink's job and would
dominate: ~50 ms per promtool run).

The desired state is read from the render benchmark's cache when it ran in the same `bench.run`
(same N and seed), else rendered here.

`OBSCTL_BENCH_APPLY=files` (or `grafana`) runs one part alone (the files part then renders only the
rule and collector kinds it writes); unset or `grafana,files` runs both.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, Context, Row, fmt_s, say, synthetic_catalog, templates, verdict
from bench.common import process_cpu_s as _cpu_of

NAME = "apply"
TOKEN = "bench-admin-token"
LATENCY_S = 0.01
TARGET_APPLY_S = 60.0
TARGET_RESYNC_S = 2.0
APPLY_N = 10000
QUICK_APPLY_N = 50
PARTS = ("grafana", "files")
FILE_KINDS = ("prometheus-rules", "collector-agent", "collector-gateway", "collector-crd")

_EMULATOR = f"""
import sys, time
from tests.grafana_emulator import GrafanaEmulator
emu = GrafanaEmulator(tokens={{"{TOKEN}": "Admin"}}, latency_s={LATENCY_S}, strict_schema=False)
emu.start()
print(emu.url, flush=True)
sys.stdin.read()  # until the parent closes stdin
print(emu.request_count(), emu.request_count(writes_only=True), flush=True)
emu.stop()
"""


def desired_cache(ctx: Context, n: int) -> Path:
    """Where the render benchmark leaves its desired state for this one."""
    return ctx.work / f"desired-{n}-{ctx.seed}.pickle"


def _parts() -> tuple[str, ...]:
    """The parts OBSCTL_BENCH_APPLY selects (both when unset)."""
    chosen = tuple(p.strip() for p in os.environ.get("OBSCTL_BENCH_APPLY", ",".join(PARTS)).split(",") if p.strip())
    unknown = sorted(set(chosen) - set(PARTS))
    if unknown:
        raise ValueError(f"OBSCTL_BENCH_APPLY: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    return chosen


def _desired(ctx: Context, n: int, parts: tuple[str, ...]) -> dict[str, Any]:
    cache = desired_cache(ctx, n)
    if cache.exists():
        desired: dict[str, Any] = {}
        with cache.open("rb") as fh:  # the render benchmark's chunks, one pickle each
            while True:
                try:
                    desired.update((a.id, a) for a in pickle.load(fh))
                except EOFError:
                    break
        say(f"[apply] desired state from the render benchmark's cache ({len(desired)} artifacts)")
        return desired
    from bench.render import _options
    from obsctl.model.artifact import Kind
    from obsctl.render import render_chunks
    from obsctl.render.options import RenderOptions

    options = _options("all") if "grafana" in parts else RenderOptions(outputs=frozenset(Kind(k) for k in FILE_KINDS))
    say(f"[apply] rendering {n} services, {'every artifact kind' if 'grafana' in parts else 'rule and collector kinds'}"
        " (no cache from the render benchmark)")
    t = time.perf_counter()
    desired = {a.id: a for chunk in render_chunks(synthetic_catalog(n, ctx.seed), templates(),
                                                  options) for a in chunk}  # type: ignore[arg-type]
    say(f"[apply]   rendered in {fmt_s(time.perf_counter() - t)}")
    return desired


def _sync(sink: Any, desired: dict[str, Any], parallelism: int, deep: bool = False
          ) -> tuple[float, float, int, int, int]:
    """(list seconds, total seconds, writes, failures, unchanged) of one list -> plan -> apply.

    Fast listings (deep=False) are what serve's resyncs use on sinks with two depths (Grafana).
    """
    from obsctl.reconcile.apply import apply_plan
    from obsctl.reconcile.plan import Action, make_plan

    t0 = time.perf_counter()
    owned = sink.list_owned(deep)
    t_list = time.perf_counter() - t0
    plan = make_plan(desired, owned)
    result = apply_plan(sink, plan, parallelism=parallelism)
    total = time.perf_counter() - t0
    failed = result.failed
    if failed:
        say(f"[apply]   {len(failed)} failures, first: {failed[0].id}: {failed[0].message}")
    return t_list, total, result.writes, len(failed), len(plan.of(Action.UNCHANGED))


def _files_after(ctx: Context, sink_name: str, make: Any, desired: dict[str, Any], inputs: str) -> list[Row]:
    """After the first apply and resyncs: a new sink (a restarted process) resyncs, then one artifact changes.

    The restarted sink knows nothing of the files yet (its first listing reads them); the one-change
    round shows what a registration costs the sink (target: in proportion to the change).
    """
    from dataclasses import replace

    sink = make()
    mine = {k: a for k, a in desired.items() if a.kind in sink.kinds}
    label = f"{inputs}; {sink_name}: {len(mine)} artifacts"
    sink.prepare(mine.values())
    _l, restart, w_r, f_r, _u = _sync(sink, mine, 1)
    say(f"[apply]   resync by a new sink (restart) {fmt_s(restart)}: {w_r} writes, {f_r} failures")
    key = sorted(mine)[len(mine) // 2]
    changed = dict(mine)
    changed[key] = replace(mine[key], body=mine[key].body + b"# changed\n")
    manifest = sink.root / ".obsctl-manifest.json"
    before = manifest.stat().st_mtime_ns if manifest.exists() else 0
    cpu0 = sum(os.times()[:2])
    l1, one, w1, f1, _u1 = _sync(sink, changed, 1)
    cpu1 = sum(os.times()[:2])
    rewritten = manifest.exists() and manifest.stat().st_mtime_ns != before
    say(f"[apply]   one changed artifact {fmt_s(one)} (listing {fmt_s(l1)}, CPU {cpu1 - cpu0:.2f} s): {w1} writes, "
        f"{f1} failures, manifest {'rewritten' if rewritten else 'not rewritten'}")
    _sync(sink, mine, 1)  # back as it was
    # serve's event round: converge plans only the changed id (the loop's scope); the sink reads only it
    from obsctl.reconcile.converge import Policy, converge

    t0, cpu0 = time.perf_counter(), sum(os.times()[:2])
    report = converge(changed, [sink], Policy(scope=frozenset({key})))
    event, cpu_e = time.perf_counter() - t0, sum(os.times()[:2]) - cpu0
    w_e = report.runs[0].result.writes if report.runs[0].result else 0
    say(f"[apply]   event round, one changed artifact {fmt_s(event)} (CPU {cpu_e:.2f} s): {w_e} writes")
    _sync(sink, mine, 1)
    return [
        Row(NAME, label, "no-change resync by a new sink (restart): wall time, writes",
            f"{fmt_s(restart)}, {w_r} writes", "0 writes", verdict(w_r == 0 and f_r == 0)),
        Row(NAME, label, "one artifact changed: wall time (list + plan + write)",
            f"{fmt_s(one)} (list_owned {fmt_s(l1)}; {w1} writes; manifest "
            f"{'rewritten' if rewritten else 'appended to'})", "", "n/a"),
        Row(NAME, label, "one artifact changed, serve's event round (converge scoped to it): wall time, writes",
            f"{fmt_s(event)} (CPU {cpu_e:.2f} s), {w_e} writes", "", "n/a"),
    ]


def run(ctx: Context) -> list[Row]:
    """Apply, then resync, per sink."""
    from obsctl.model.artifact import Kind
    from obsctl.sinks.collectors import collector_sink
    from obsctl.sinks.files import FilesSink

    n = QUICK_APPLY_N if ctx.quick else APPLY_N
    parts = _parts()
    inputs = f"N={n} services x 3 SLOs, seed={ctx.seed}"
    say(f"[apply] {inputs}; parts: {', '.join(parts)}")
    desired = _desired(ctx, n, parts)
    rows: list[Row] = []

    def record(sink_name: str, sink: Any, parallelism: int, extra: str = "", peer: int | None = None) -> None:
        mine = {k: a for k, a in desired.items() if a.kind in sink.kinds}
        sink.prepare(mine.values())
        label = f"{inputs}; {sink_name}: {len(mine)} artifacts{extra}"
        say(f"[apply] {sink_name}: {len(mine)} artifacts, parallelism {parallelism}")
        cpu0, peer0 = sum(os.times()[:2]), _cpu_of(peer)
        _l1, first, w1, f1, _u1 = _sync(sink, mine, parallelism)
        cpu1, peer1 = sum(os.times()[:2]), _cpu_of(peer)
        say(f"[apply]   first apply {fmt_s(first)}: {w1} writes, {f1} failures")
        l2, second, w2, f2, u2 = _sync(sink, mine, parallelism)
        cpu2, peer2 = sum(os.times()[:2]), _cpu_of(peer)
        say(f"[apply]   resync {fmt_s(second)} (listing {fmt_s(l2)}): {w2} writes, {f2} failures, {u2} unchanged")
        deep = ""
        deep_rows: list[Row] = []
        if sink.contract.deep_every_seconds is not None:  # Grafana: resyncs list fast; `obsctl apply` lists deep
            l3, third, w3, f3, _u3 = _sync(sink, mine, parallelism, deep=True)
            say(f"[apply]   deep resync {fmt_s(third)} (listing {fmt_s(l3)}): {w3} writes, {f3} failures")
            deep_rows.append(Row(NAME, label, "no-change resync, deep listing (obsctl apply; serve every "
                                 "deep_check_seconds): wall time, writes", f"{fmt_s(third)}, {w3} writes"))
            deep = f"; deep resync {fmt_s(third)}"
        cpu_note = (f"obsctl process CPU {cpu1 - cpu0:.1f} s / {cpu2 - cpu1:.1f} s"
                    + (f", emulator process CPU {peer1 - peer0:.1f} s / {peer2 - peer1:.1f} s" if peer else ""))
        say(f"[apply]   CPU (first apply / resync): {cpu_note}")
        ctx.note(f"apply: {sink_name}: first apply {fmt_s(first)}, resync {fmt_s(second)}{deep}; CPU (first apply / "
                 f"resync): {cpu_note} on {os.cpu_count()} cores")
        rows.extend([
            Row(NAME, label, "first apply: wall time", f"{fmt_s(first)} ({w1} writes, {f1} failed)",
                f"< {TARGET_APPLY_S:g} s", verdict(first < TARGET_APPLY_S and f1 == 0)),
            Row(NAME, label, "no-change resync: wall time" + (" (fast listing, as serve)" if deep else ""),
                f"{fmt_s(second)} (list_owned {fmt_s(l2)})",
                f"< {TARGET_RESYNC_S:g} s", verdict(second < TARGET_RESYNC_S)),
            Row(NAME, label, "no-change resync: writes", str(w2), "0", verdict(w2 == 0 and f2 == 0)),
            *deep_rows,
        ])

    try:
        from obsctl.sinks.grafana import GrafanaSink
    except ImportError:
        GrafanaSink = None
        ctx.note("apply: obsctl/sinks/grafana.py is not there yet; the Grafana rows are missing")
    if GrafanaSink is not None and "grafana" in parts:
        emu = subprocess.Popen([sys.executable, "-c", _EMULATOR], cwd=REPO, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
        try:
            assert emu.stdout is not None and emu.stdin is not None
            url = emu.stdout.readline().strip()
            sink = GrafanaSink(url, TOKEN)
            try:
                record("Grafana emulator (10 ms/call)", sink, sink.parallelism, peer=emu.pid)
            finally:
                sink.close()
            emu.stdin.close()
            counts = emu.stdout.readline().split()
            if len(counts) == 2:
                ctx.note(f"apply: the Grafana emulator served {counts[0]} requests, {counts[1]} of them writes, "
                         "over the first apply and the resyncs")
        finally:
            if emu.poll() is None:
                emu.terminate()
            emu.wait(timeout=30)
    if "files" not in parts:
        return rows
    root = ctx.work / "apply-files"
    record("rule files (FilesSink)", FilesSink(root / "rules", {Kind.PROMETHEUS_RULES}, name="rules"), 1)
    rows.extend(_files_after(ctx, "rule files (FilesSink)", lambda: FilesSink(root / "rules", {Kind.PROMETHEUS_RULES},
                                                                              name="rules"), desired, inputs))
    record("collector files (collector_sink)", collector_sink(root / "collectors"), 1)
    rows.extend(_files_after(ctx, "collector files (collector_sink)", lambda: collector_sink(root / "collectors"),
                             desired, inputs))
    ctx.note("apply: file sinks run without promtool/otelcol validation; manifest bytes after the run: "
             + json.dumps({p.parent.name: p.stat().st_size for p in root.glob("*/.obsctl-manifest.json")}))
    return rows
