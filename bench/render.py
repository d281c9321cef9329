"""Render benchmark: N synthetic services (three SLOs each) rendered, planned and written into a directory by the
path `obsctl render --out` takes (`converge_catalog`: the render workers plan their chunk against the files sink's
records and stage the changed bodies; the parent commits them, prunes and keeps the manifest).

Each N runs in a fresh child process (`python -m bench.render --child N SEED`) so its wall time, CPU and peak
memory are its own. Two runs per N: (a) a first render into an empty directory (every file written), then
(b) the same render again over the unchanged directory, in a fresh process as a second `obsctl render` would run
(every file read and compared, 0 writes). Each run
reports wall time, CPU of the parent and of the workers, the peak PSS of the family (parent + workers,
sampled from a separate process) and its stages: render + plan (+ staging) in the workers, then the parent's
commit (apply). Target: 10,000 services in under 10 s and 300 MB.
After the timed runs a serial render of 1,000 services gives CPU ms per service by renderer, and the
desired state of the apply benchmark's N is written for it chunk by chunk (not timed).
When a target is missed, a 1,000-service serial render is profiled with pyinstrument (if installed)
and the top frames are kept in the notes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import time
from typing import Any

from bench.common import Context, Row, fmt_s, run_child, say, synthetic_catalog, templates, verdict

NAME = "render"
TARGET_S = 10.0
TARGET_MB = 300.0
PROFILE_N = 1000  # per-service cost is linear: a profile of 1,000 shows where 10,000 spends its time


def _options(outputs: str) -> object:
    """RenderOptions for every artifact kind ("all") or the default outputs ("default")."""
    from obsctl.model.artifact import Kind
    from obsctl.render.options import RenderOptions

    if outputs == "all" and "outputs" in RenderOptions.__dataclass_fields__:
        return RenderOptions(outputs=frozenset(Kind))  # type: ignore[call-arg]
    return RenderOptions()


def _cpu_s(who: int) -> float:
    ru = resource.getrusage(who)
    return ru.ru_utime + ru.ru_stime


def _pss_kb(pid: int | str) -> int:
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):  # noqa: SIM115 - /proc, read at once
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _family(pid: int) -> list[int]:
    """A process and its descendants (the render workers)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            pass
    return found


def _sample(pid: int, interval: float = 0.1) -> None:
    """`--sample PID`: the peak PSS (kB) of PID and its descendants but this sampler (a child of PID too), and
    the sampler's own CPU seconds (counted in PID's children's), printed once stdin closes."""
    import select

    peak = 0
    me = os.getpid()
    while True:
        peak = max(peak, sum(_pss_kb(p) for p in _family(pid) if p != me))
        ready, _, _ = select.select([sys.stdin], [], [], interval)
        if ready and not sys.stdin.read(1):
            break
    print(peak, _cpu_s(resource.RUSAGE_SELF), flush=True)


class _PssPeak:
    """The peak proportional set size (shared pages split between sharers) of this process and its workers,
    sampled by another process (a thread here would keep the render from forking its workers)."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self.cpu_s = 0.0  # the sampler's own CPU seconds
        self._proc: Any = None

    def __enter__(self) -> _PssPeak:
        import subprocess

        self._proc = subprocess.Popen([sys.executable, "-m", "bench.render", "--sample", str(os.getpid())],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc: object) -> None:
        out, _ = self._proc.communicate("", timeout=60)
        fields = out.split()
        self.peak_kb = int(fields[0]) if fields else 0
        self.cpu_s = float(fields[1]) if len(fields) > 1 else 0.0


STAGE_N = 1000  # services rendered serially, stage by stage, after the timed run


def _stages(catalog: Any, tpl: Any, options: Any, n: int) -> dict[str, float]:
    """CPU ms per service of each stage of a serial render of the first `n` services (after a warm-up
    service), the shared artifacts of their teams, and hashing the bodies: which stage dominates."""
    import hashlib

    from obsctl.render import RenderContext, _modules, render_shared, summary_of

    ctx = RenderContext.of(catalog, tpl, options)
    services = sorted(catalog.services, key=lambda s: str(s.ref))[:n]
    out: dict[str, float] = {}
    bodies: list[bytes] = []
    for mod in _modules(ctx.renderers):
        fn = getattr(mod, "render_service", None)
        if fn is None:
            continue
        fn(services[0], ctx)
        t0 = time.process_time()
        for svc in services:
            bodies.extend(a.body for a in fn(svc, ctx))
        out[mod.__name__.rsplit(".", 1)[1]] = (time.process_time() - t0) * 1000 / len(services)
    t0 = time.process_time()
    summaries = [summary_of(svc, tpl) for svc in services]
    render_shared(summaries, ctx)
    out["summaries + shared"] = (time.process_time() - t0) * 1000 / len(services)
    t0 = time.process_time()
    for body in bodies:
        hashlib.sha256(body).hexdigest()
    out["hashing"] = (time.process_time() - t0) * 1000 / len(services)
    return out


def _timed_converge(catalog: Any, tpl: Any, options: Any, out: str, workers: int) -> dict[str, Any]:
    """One `render --out` converge into `out`: wall, CPU parent / workers, peak PSS, stage times, plan summary."""
    import contextlib
    import gc
    from pathlib import Path

    from obsctl.reconcile.converge import Hooks, Policy
    from obsctl.reconcile.stream import converge_catalog
    from obsctl.sinks.files import FilesSink

    gc.collect()
    marks: dict[str, float] = {}

    def applying(_sink: Any, _writes: int) -> contextlib.AbstractContextManager[object]:
        marks["apply"] = time.perf_counter()
        return contextlib.nullcontext()

    cpu0, kids0 = _cpu_s(resource.RUSAGE_SELF), _cpu_s(resource.RUSAGE_CHILDREN)
    with _PssPeak() as pss:
        t0 = time.perf_counter()
        done = converge_catalog(catalog, tpl, options, [FilesSink(Path(out))],
                                policy=Policy(strict_mass_delete=True), hooks=Hooks(apply_scope=applying),
                                workers=workers)
        wall = time.perf_counter() - t0
    run = done.report.runs[0]
    apply_s = t0 + wall - marks.get("apply", t0 + wall)
    return {"wall_s": wall, "render_plan_s": wall - apply_s, "apply_s": apply_s,
            "cpu_parent_s": _cpu_s(resource.RUSAGE_SELF) - cpu0,
            "cpu_workers_s": _cpu_s(resource.RUSAGE_CHILDREN) - kids0 - pss.cpu_s,
            "pss_peak_mb": pss.peak_kb / 1024.0, "plan": run.plan.summary(), "failed": len(run.failed),
            "artifacts": done.artifacts, "load": " / ".join(f"{x:.2f}" for x in os.getloadavg())}


def _child(n: int, seed: int, profile: bool, save: str | None, outputs: str = "all", workers: int = 0) -> None:
    t0 = time.perf_counter()
    import shutil
    import tempfile
    from pathlib import Path

    from obsctl.render import default_workers, render_all, render_chunks

    tpl = templates()
    catalog = synthetic_catalog(n, seed)
    setup = time.perf_counter() - t0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    workers = workers or default_workers()
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.005)
        profiler.start()
        render_all(catalog, tpl, _options(outputs))  # type: ignore[arg-type]
        profiler.stop()
        sys.stderr.write(profiler.output_text(unicode=False, color=False, show_all=False))
        return
    out = tempfile.mkdtemp(prefix=f"obsctl-bench-render-{n}-", dir=os.environ.get("OBSCTL_BENCH_OUT"))
    try:
        first = _timed_converge(catalog, tpl, _options(outputs), out, workers)
        # in a fresh process, as a second `obsctl render --out` runs: not on top of the first run's heap
        again = run_child(["bench.render", "--child", str(n), str(seed), "--outputs", outputs,
                           "--workers", str(workers), "--over", out]).data
        written = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rss_parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    rss_worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    stages = _stages(catalog, tpl, _options(outputs), min(n, STAGE_N))
    if save:  # the apply benchmark reuses this desired state instead of rendering it again (not timed)
        import pickle

        with open(save, "wb") as fh:
            for chunk in render_chunks(catalog, tpl, _options(outputs), workers=workers):  # type: ignore[arg-type]
                pickle.dump(chunk, fh, protocol=pickle.HIGHEST_PROTOCOL)
    print(json.dumps({"first": first, "again": again, "setup_s": setup, "bytes": written, "workers": workers,
                      "rss_before_render_mb": rss_before, "rss_parent_mb": rss_parent, "rss_worker_mb": rss_worker,
                      "stages_ms": stages, "load": " / ".join(f"{x:.2f}" for x in os.getloadavg())}))


def run(ctx: Context) -> list[Row]:
    """Render 1,000, 3,000 and 10,000 services (default outputs) and 10,000 with every kind.

    With --quick: 20 (every kind) and 250 (enough chunks to fork workers).
    """
    from bench.apply import APPLY_N, QUICK_APPLY_N, desired_cache

    sizes = [(20, "all"), (250, "default")] if ctx.quick else \
        [(1000, "default"), (3000, "default"), (10000, "default"), (10000, "all")]
    if os.environ.get("OBSCTL_BENCH_RENDER_SIZES"):  # e.g. 1000:default,10000:all (a shorter run)
        sizes = [(int(n), o) for n, o in (x.split(":") for x in os.environ["OBSCTL_BENCH_RENDER_SIZES"].split(","))]
    apply_n = QUICK_APPLY_N if ctx.quick else APPLY_N
    rows: list[Row] = []
    for n, outputs in sizes:
        inputs = f"N={n} services x 3 SLOs, {'every artifact kind' if outputs == 'all' else 'default outputs'}, " \
                 f"seed={ctx.seed}"
        say(f"[render] {inputs} (load {' / '.join(f'{x:.2f}' for x in os.getloadavg())})")
        args = ["bench.render", "--child", str(n), str(ctx.seed), "--outputs", outputs]
        if n == apply_n and outputs == "all":
            args += ["--save", str(desired_cache(ctx, n))]
        d = run_child(args).data
        big = n >= 10000
        missed = False
        for key, label in (("first", "render --out into an empty directory"),
                           ("again", "render --out again over it, unchanged (0 writes)")):
            r = d[key]
            plan = r["plan"]
            say(f"[render]   {label}: {fmt_s(r['wall_s'])} (render + plan {fmt_s(r['render_plan_s'])}, "
                f"commit {fmt_s(r['apply_s'])}) with {d['workers']} workers; CPU parent {r['cpu_parent_s']:.1f} s, "
                f"workers {r['cpu_workers_s']:.1f} s; peak PSS {r['pss_peak_mb']:.0f} MB; plan {plan}; "
                f"load at the end {r['load']}")
            t_ok = r["wall_s"] < TARGET_S if big else None
            m_ok = r["pss_peak_mb"] < TARGET_MB if big else None
            missed = missed or t_ok is False or m_ok is False
            cpu = r["cpu_parent_s"] + r["cpu_workers_s"]
            stage = "render + plan in the workers" if r["render_plan_s"] >= r["apply_s"] else "commit in the parent"
            rows.append(Row(NAME, inputs, f"{label}: wall time ({d['workers']} workers)", fmt_s(r["wall_s"]),
                            f"< {TARGET_S:g} s" if big else "", verdict(t_ok) if big else ""))
            rows.append(Row(NAME, inputs, f"{label}: stages (dominant: {stage})",
                            f"render + plan {fmt_s(r['render_plan_s'])}, commit {fmt_s(r['apply_s'])}"))
            rows.append(Row(NAME, inputs, f"{label}: CPU parent / workers (per service)",
                            f"{r['cpu_parent_s']:.1f} s / {r['cpu_workers_s']:.1f} s ({cpu / n * 1000:.2f} ms)"))
            rows.append(Row(NAME, inputs, f"{label}: peak memory, PSS of parent + workers (sampled)",
                            f"{r['pss_peak_mb']:.0f} MB", f"< {TARGET_MB:g} MB" if big else "",
                            verdict(m_ok) if big else ""))
            rows.append(Row(NAME, inputs, f"{label}: plan", ", ".join(f"{k} {v}" for k, v in plan.items())
                            + (f", {r['failed']} failed" if r["failed"] else "")))
        if d.get("stages_ms"):
            stages = d["stages_ms"]
            top = max(stages, key=stages.get)
            rows.append(Row(NAME, inputs, f"CPU ms per service by renderer (serial, {min(n, STAGE_N)} services)",
                            ", ".join(f"{k} {v:.2f}" for k, v in stages.items()) + f"; dominant: {top}"))
        rows.append(Row(NAME, inputs, "files written", f"{d['first']['artifacts']} ({d['bytes'] / 1e6:.0f} MB)"))
        ctx.note(f"render N={n} ({outputs}): load average at the end {d['load']}; catalog built and templates "
                 f"parsed in {fmt_s(d['setup_s'])} (not timed); "
                 f"RSS before rendering {d['rss_before_render_mb']:.0f} MB; "
                 f"peak RSS parent {d['rss_parent_mb']:.0f} MB, largest worker {d['rss_worker_mb']:.0f} MB "
                 "(shared copy-on-write pages counted in each: the PSS row splits them)")
        if big and outputs == "all" and missed:
            _profile(ctx, PROFILE_N)
    return rows


def _profile(ctx: Context, n: int) -> None:
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        ctx.note("render missed a target; pyinstrument is not installed, so no profile was taken")
        return
    import subprocess

    from bench.common import REPO

    say(f"[render] profiling N={n} with pyinstrument")
    out = subprocess.run([sys.executable, "-m", "bench.render", "--child", str(n), str(ctx.seed), "--profile",
                          "--outputs", "all"],
                         cwd=REPO, capture_output=True, text=True, timeout=1800, check=False)
    text = out.stderr
    path = ctx.work / f"render-profile-{n}.txt"
    path.write_text(text)
    say(text[:8000])
    frames = []
    total = 0.0
    for ln in text.splitlines():
        m = re.search(r"([\d.]+) (\S+)\s+(\S+:\d+)", ln)
        if m:
            secs = float(m.group(1))
            total = max(total, secs)
            if "obsctl/" in m.group(3) or "[self]" in ln:
                frames.append((secs, f"{m.group(2)} {m.group(3)}"))
    hot: list[str] = []
    seen: set[str] = set()
    for secs, name in frames:  # outermost occurrence of each function only (recursive emitters repeat)
        func = name.split(" ")[0]
        if total and secs >= 0.04 * total and func not in seen:
            seen.add(func)
            hot.append(f"{name} {secs:.2f} s ({secs / total:.0%})")
    ctx.note(f"render: pyinstrument profile of a serial render of N={n} ({total:.1f} s; the cost per service is "
             "linear in N), "
             f"frames over 4 %: " + "; ".join(hot[:30]))


def main() -> None:
    """Child entry point: `python -m bench.render --child N SEED [--profile]` (or `--sample PID`)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2, type=int, metavar=("N", "SEED"))
    ap.add_argument("--sample", type=int, metavar="PID", help="print the peak PSS of PID and its children")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--save", help="pickle the desired state here (for the apply benchmark)")
    ap.add_argument("--outputs", choices=("all", "default"), default="all")
    ap.add_argument("--workers", type=int, default=0, help="worker processes (default: the usable CPUs)")
    ap.add_argument("--over", metavar="DIR", help="with --child: only the timed render over DIR (rendered before)")
    args = ap.parse_args()
    if args.sample:
        _sample(args.sample)
        return
    if not args.child:
        ap.error("--child N SEED or --sample PID")
    if args.over:  # the timed converge over a directory rendered before, alone in this process
        from obsctl.render import default_workers

        catalog = synthetic_catalog(args.child[0], args.child[1])
        workers = args.workers or default_workers()
        print(json.dumps(_timed_converge(catalog, templates(), _options(args.outputs), args.over, workers)))
        return
    _child(args.child[0], args.child[1], args.profile, args.save, args.outputs, args.workers)


if __name__ == "__main__":
    main()
