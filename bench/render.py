"""Render benchmark: N synthetic services (three SLOs each) through `render_all`, every artifact kind.

Each N runs in a fresh child process (`python -m bench.render --child N SEED`) so its wall time
and peak RSS are its own. Target: 10,000 services in under 10 s and 300 MB.
The desired state of the apply benchmark's N is pickled for it (after the timing).
When a target is missed, the same render is profiled with pyinstrument (if installed) and the
top frames are printed and kept in the notes.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time
from collections import Counter

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


def _child(n: int, seed: int, profile: bool, save: str | None, outputs: str = "all") -> None:
    t0 = time.perf_counter()
    from obsctl.render import render_all

    tpl = templates()
    catalog = synthetic_catalog(n, seed)
    setup = time.perf_counter() - t0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.005)
        profiler.start()
    t1 = time.perf_counter()
    desired = render_all(catalog, tpl, _options(outputs))  # type: ignore[arg-type]
    wall = time.perf_counter() - t1
    if profiler is not None:
        profiler.stop()
        sys.stderr.write(profiler.output_text(unicode=False, color=False, show_all=False))
    kinds = Counter(a.kind.value for a in desired.values())
    kind_mb: Counter[str] = Counter()
    for a in desired.values():
        kind_mb[a.kind.value] += len(a.body)
    size = sum(len(a.body) for a in desired.values())
    rss_render = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # before pickling adds its own
    if save:  # the apply benchmark reuses this desired state instead of rendering it again
        import pickle

        with open(save, "wb") as fh:
            pickle.dump(dict(desired), fh, protocol=pickle.HIGHEST_PROTOCOL)
    print(json.dumps({"render_s": wall, "setup_s": setup, "artifacts": len(desired), "bytes": size,
                      "kinds": dict(sorted(kinds.items())), "rss_before_render_mb": rss_before,
                      "mb_by_kind": {k: round(v / 1e6, 1) for k, v in sorted(kind_mb.items())},
                      "rss_after_render_mb": rss_render}))


def run(ctx: Context) -> list[Row]:
    """Render 1,000 and 10,000 services (100 and 500 with --quick)."""
    from bench.apply import APPLY_N, QUICK_APPLY_N, desired_cache

    sizes = [(20, "all"), (50, "all")] if ctx.quick else [(1000, "all"), (10000, "all"), (10000, "default")]
    apply_n = QUICK_APPLY_N if ctx.quick else APPLY_N
    rows: list[Row] = []
    for n, outputs in sizes:
        inputs = f"N={n} services x 3 SLOs, {'every artifact kind' if outputs == 'all' else 'default outputs'}, " \
                 f"seed={ctx.seed}"
        say(f"[render] {inputs}")
        args = ["bench.render", "--child", str(n), str(ctx.seed), "--outputs", outputs]
        if n == apply_n and outputs == "all":
            args += ["--save", str(desired_cache(ctx, n))]
        res = run_child(args)
        d = res.data
        rss = d["rss_after_render_mb"] if "--save" in args else res.max_rss_mb
        if "--save" in args:
            ctx.note(f"render N={n} ({outputs}): peak RSS is the child's ru_maxrss right after render_all "
                     f"({rss:.0f} MB); "
                     f"with pickling the desired state for the apply benchmark afterwards the child peaked at "
                     f"{res.max_rss_mb:.0f} MB (os.wait4)")
        say(f"[render]   {d['artifacts']} artifacts ({d['bytes'] / 1e6:.1f} MB) in {fmt_s(d['render_s'])}, "
            f"peak RSS {rss:.0f} MB (kinds: {d['kinds']})")
        big = n >= 10000
        t_ok = d["render_s"] < TARGET_S if big else None
        m_ok = rss < TARGET_MB if big else None
        rows.append(Row(NAME, inputs, "render_all wall time", fmt_s(d["render_s"]),
                        f"< {TARGET_S:g} s" if big else "", verdict(t_ok) if big else ""))
        rows.append(Row(NAME, inputs, "peak RSS (process, incl. catalog)", f"{rss:.0f} MB",
                        f"< {TARGET_MB:g} MB" if big else "", verdict(m_ok) if big else ""))
        rows.append(Row(NAME, inputs, "artifacts rendered", f"{d['artifacts']} ({d['bytes'] / 1e6:.0f} MB)"))
        ctx.note(f"render N={n} ({outputs}): catalog built and templates parsed in {fmt_s(d['setup_s'])} (not timed); "
                 f"RSS before rendering {d['rss_before_render_mb']:.0f} MB; artifacts by kind {d['kinds']}; "
                 f"body MB by kind {d.get('mb_by_kind')}")
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
    ctx.note(f"render: pyinstrument profile of N={n} ({total:.1f} s; the cost per service is linear in N), "
             f"frames over 4 %: " + "; ".join(hot[:30]))


def main() -> None:
    """Child entry point: `python -m bench.render --child N SEED [--profile]`."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2, type=int, required=True, metavar=("N", "SEED"))
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--save", help="pickle the desired state here (for the apply benchmark)")
    ap.add_argument("--outputs", choices=("all", "default"), default="all")
    args = ap.parse_args()
    _child(args.child[0], args.child[1], args.profile, args.save, args.outputs)


if __name__ == "__main__":
    main()
