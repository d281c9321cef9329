"""Render benchmark: N synthetic services (three SLOs each) through the per-service streaming render.

Each N runs in a fresh child process (`python -m bench.render --child N SEED`) so its wall time
and peak RSS are its own. The child streams `render_chunks` (services rendered by forked worker
processes, up to 50 at a time (about 8 MB of bodies a chunk), at most two chunks per worker in flight,
every body hashed in the worker; the shared team/org artifacts last) and keeps only what a plan keeps
of a desired state: each artifact's id and digest. Target: 10,000 services in under 10 s and 300 MB
(the parent and its workers together).
The desired state of the apply benchmark's N is written for it chunk by chunk (after the timing).
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
from collections import Counter
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


def _family() -> list[str]:
    """This process and its children (the render workers)."""
    pids = ["self"]
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as fh:
                pids += fh.read().split()
    except OSError:
        pass
    return pids


class _PssPeak:
    """Samples the proportional set size (shared pages split between sharers) of this process and its workers."""

    def __init__(self, interval: float = 0.2) -> None:
        import threading

        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, sum(_pss_kb(p) for p in _family()))
            self._stop.wait(interval)

    def __enter__(self) -> _PssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


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


def _child(n: int, seed: int, profile: bool, save: str | None, outputs: str = "all", workers: int = 0) -> None:
    t0 = time.perf_counter()
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
    kinds: Counter[str] = Counter()
    kind_mb: Counter[str] = Counter()
    digests: dict[str, str] = {}  # what a plan keeps of the desired state
    cpu0 = _cpu_s(resource.RUSAGE_SELF)
    t1 = time.perf_counter()
    chunks = render_chunks(catalog, tpl, _options(outputs), workers=workers)  # type: ignore[arg-type]

    def take(chunk: list[Any]) -> None:
        for art in chunk:
            digests[art.id] = art.digest
            kinds[art.kind.value] += 1
            kind_mb[art.kind.value] += len(art.body)

    # render_chunks forks its workers only from a single-threaded process: the PSS sampler's thread
    # starts once the first chunk is in (the workers exist by then)
    take(next(chunks, []))
    with _PssPeak() as pss:
        for chunk in chunks:
            take(chunk)
    wall = time.perf_counter() - t1
    cpu_parent = _cpu_s(resource.RUSAGE_SELF) - cpu0
    cpu_workers = _cpu_s(resource.RUSAGE_CHILDREN)
    rss_parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    rss_worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    stages = _stages(catalog, tpl, _options(outputs), min(n, STAGE_N))
    if save:  # the apply benchmark reuses this desired state instead of rendering it again (not timed)
        import pickle

        with open(save, "wb") as fh:
            for chunk in render_chunks(catalog, tpl, _options(outputs), workers=workers):  # type: ignore[arg-type]
                pickle.dump(chunk, fh, protocol=pickle.HIGHEST_PROTOCOL)
    print(json.dumps({"render_s": wall, "setup_s": setup, "artifacts": len(digests), "bytes": sum(kind_mb.values()),
                      "kinds": dict(sorted(kinds.items())), "rss_before_render_mb": rss_before,
                      "mb_by_kind": {k: round(v / 1e6, 1) for k, v in sorted(kind_mb.items())},
                      "rss_parent_mb": rss_parent, "rss_worker_mb": rss_worker, "workers": workers,
                      "pss_peak_mb": pss.peak_kb / 1024.0, "stages_ms": stages,
                      "cpu_parent_s": cpu_parent, "cpu_workers_s": cpu_workers,
                      "load": " / ".join(f"{x:.2f}" for x in os.getloadavg())}))


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
        res = run_child(args)
        d = res.data
        rss = d["rss_parent_mb"] + d["workers"] * d["rss_worker_mb"]
        pss = d.get("pss_peak_mb", rss)
        say(f"[render]   {d['artifacts']} artifacts ({d['bytes'] / 1e6:.1f} MB) in {fmt_s(d['render_s'])} "
            f"with {d['workers']} workers; peak RSS parent {d['rss_parent_mb']:.0f} MB + largest worker "
            f"{d['rss_worker_mb']:.0f} MB; CPU parent {d['cpu_parent_s']:.1f} s, workers {d['cpu_workers_s']:.1f} s; "
            f"load at the end {d['load']}")
        big = n >= 10000
        t_ok = d["render_s"] < TARGET_S if big else None
        m_ok = pss < TARGET_MB if big else None
        rows.append(Row(NAME, inputs, f"streamed render wall time ({d['workers']} workers)", fmt_s(d["render_s"]),
                        f"< {TARGET_S:g} s" if big else "", verdict(t_ok) if big else ""))
        rows.append(Row(NAME, inputs, "CPU: parent / workers (per service)",
                        f"{d['cpu_parent_s']:.1f} s / {d['cpu_workers_s']:.1f} s "
                        f"({(d['cpu_parent_s'] + d['cpu_workers_s']) / n * 1000:.1f} ms)"))
        rows.append(Row(NAME, inputs, "peak memory: PSS of parent + workers (shared pages split), sampled",
                        f"{pss:.0f} MB", f"< {TARGET_MB:g} MB" if big else "", verdict(m_ok) if big else ""))
        rows.append(Row(NAME, inputs, "peak RSS: parent + workers x largest worker (shared pages counted again)",
                        f"{rss:.0f} MB ({d['rss_parent_mb']:.0f} + {d['workers']} x {d['rss_worker_mb']:.0f})"))
        if d.get("stages_ms"):
            stages = d["stages_ms"]
            top = max(stages, key=stages.get)
            rows.append(Row(NAME, inputs, f"CPU ms per service by stage (serial, {min(n, STAGE_N)} services)",
                            ", ".join(f"{k} {v:.2f}" for k, v in stages.items()) + f"; dominant: {top}"))
        rows.append(Row(NAME, inputs, "artifacts rendered", f"{d['artifacts']} ({d['bytes'] / 1e6:.0f} MB)"))
        ctx.note(f"render N={n} ({outputs}): load average at the end {d['load']}; catalog built and templates "
                 f"parsed in {fmt_s(d['setup_s'])} (not timed); "
                 f"RSS before rendering {d['rss_before_render_mb']:.0f} MB "
                 f"(the catalog, shared copy-on-write with the forked workers, so the sum overstates); artifacts by "
                 f"kind {d['kinds']}; body MB by kind {d.get('mb_by_kind')}")
        if big and outputs == "all" and not (t_ok and m_ok):
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
    """Child entry point: `python -m bench.render --child N SEED [--profile]`."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2, type=int, required=True, metavar=("N", "SEED"))
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--save", help="pickle the desired state here (for the apply benchmark)")
    ap.add_argument("--outputs", choices=("all", "default"), default="all")
    ap.add_argument("--workers", type=int, default=0, help="worker processes (default: the usable CPUs)")
    args = ap.parse_args()
    _child(args.child[0], args.child[1], args.profile, args.save, args.outputs, args.workers)


if __name__ == "__main__":
    main()
