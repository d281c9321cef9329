"""Start-up benchmark: how long `obsctl validate` and `obsctl render` spend importing.

Each command runs N times under `python -X importtime` from the repository root, on the sample
catalog with examples/obsctl.yaml (render writes to a scratch directory). The figure is the sum of
the module self-times of one run, best of N (target: under 300 ms for validate and render); beside it
the sum of every module's fastest self-time over the N runs (what the imports cost when no run was
preempted: on a shared machine the best total still carries waits) and the CPU seconds of the whole
command, median of N. Bytecode is compiled once first, as an installed wheel has it.
"""

from __future__ import annotations

import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile

from bench.common import REPO, Context, Row, say, verdict

NAME = "startup"
TARGET_MS = 300.0
COMMANDS: tuple[tuple[str, list[str], bool], ...] = (
    ("validate --help", ["validate", "--help"], False),
    ("validate", ["validate", "examples/catalog"], True),
    ("render", ["render", "examples/catalog", "--out", "{out}"], True),
)
_LINE = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)")
_PROBE = "import sys\nfrom obsctl.cli import main\nsys.exit(main(sys.argv[1:]))"


def _once(argv: list[str], env: dict[str, str]) -> tuple[dict[str, int], float, int]:
    """(module -> self time in us, CPU seconds, exit code) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as out:
        args = [a.replace("{out}", out) for a in argv]
        proc = subprocess.run([sys.executable, "-X", "importtime", "-c", _PROBE,
                               "--config", "examples/obsctl.yaml", *args],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    selfs: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        match = _LINE.match(line)
        if match:
            selfs[match.group(2)] = selfs.get(match.group(2), 0) + int(match.group(1))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return selfs, cpu, proc.returncode


def run(ctx: Context) -> list[Row]:
    """Import time of validate --help, validate and render."""
    n = 3 if ctx.quick else 9
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "obsctl")], env=env,
                   capture_output=True, check=False)
    load = os.getloadavg()[0]
    ctx.note(f"startup: load average {load:.1f} on {os.cpu_count()} cores when it began; N={n}")
    rows: list[Row] = []
    for label, argv, targeted in COMMANDS:
        totals: list[int] = []
        cpus: list[float] = []
        minima: dict[str, int] = {}
        for _ in range(n):
            selfs, cpu, code = _once(argv, env)
            if code != 0:
                raise RuntimeError(f"obsctl {label} exited {code}")
            totals.append(sum(selfs.values()))
            cpus.append(cpu)
            for name, us in selfs.items():
                minima[name] = min(minima.get(name, us), us)
        best_ms = min(totals) / 1000
        say(f"  {label}: imports {best_ms:.0f} ms (best of {n}), {len(minima)} modules")
        inputs = f"obsctl {label} (examples/catalog), N={n}, load {load:.1f}"
        rows.append(Row(NAME, inputs, "imports: sum of module self-times, best run", f"{best_ms:.0f} ms",
                        f"< {TARGET_MS:.0f} ms" if targeted else "",
                        verdict(best_ms < TARGET_MS) if targeted else ""))
        rows.append(Row(NAME, inputs, "imports: sum of each module's fastest self-time",
                        f"{sum(minima.values()) / 1000:.0f} ms"))
        rows.append(Row(NAME, inputs, "whole command, CPU (median)", f"{statistics.median(cpus) * 1000:.0f} ms"))
    return rows
