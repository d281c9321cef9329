"""Shared pieces of the benchmarks: result rows, machine description, synthetic catalogs, child processes."""

from __future__ import annotations

import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("OBSCTL_CACHE", Path.home() / ".cache" / "obsctl")) / "bench"
SEED = 20260701  # the one seed every benchmark derives its random streams from


@dataclass
class Row:
    """One line of the results table."""

    benchmark: str
    inputs: str
    metric: str
    value: str
    target: str = ""
    verdict: str = ""  # "ok", "MISS", "" (no target), "n/a"


@dataclass
class Context:
    """What every benchmark gets: size switch, seed, scratch space, and a place for notes."""

    quick: bool
    seed: int = SEED
    work: Path = field(default_factory=lambda: Path("/tmp"))
    notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    def note(self, text: str) -> None:
        """A line for the report (and the console) explaining a figure or a fallback."""
        self.notes.append(text)
        print(f"  note: {text}", flush=True)


def verdict(ok: bool | None) -> str:
    """ok / MISS / n/a."""
    if ok is None:
        return "n/a"
    return "ok" if ok else "MISS"


def say(text: str) -> None:
    """Progress line on stdout (benchmarks print their inputs as they go)."""
    print(text, flush=True)


# --------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return f"{kib / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version_of(cmd: Sequence[str], pattern: str = r"(\d+\.\d+\.\d+\S*)") -> str:
    exe = shutil.which(cmd[0]) if not os.path.isabs(cmd[0]) else cmd[0]
    if not exe or not os.path.exists(exe):
        return "not installed"
    try:
        out = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout + out.stderr).strip()
    m = re.search(pattern, text)
    if m:
        return m.group(1)
    return text.splitlines()[0][:60] if text else "unknown"


def machine() -> dict[str, str]:
    """nproc, memory, CPU model, OS, and the versions of the tools compared."""
    from bench import sloth as sloth_bin  # the pinned Sloth, if built

    info = {
        "nproc": str(os.cpu_count()),
        "memory": _mem_total(),
        "cpu": _cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "load average (1/5/15 min) at start": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "prometheus": _version_of(["prometheus", "--version"]),
        "promtool": _version_of(["promtool", "--version"]),
        "go": _version_of(["go", "version"], r"go(\d+\.\d+(?:\.\d+)?)"),
        "sloth": sloth_bin.version_text(),
        "pyrra": "not built: the Go module proxy refuses github.com/pyrra-dev/pyrra (403); Pyrra's published "
                 "rule shapes are reproduced",
    }
    try:
        import obsctl

        info["obsctl"] = getattr(obsctl, "__version__", "dev") + " @ " + _git_head()
    except ImportError:
        info["obsctl"] = "unknown"
    return info


def _git_head() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


# --------------------------------------------------------------------------- child processes


@dataclass
class ChildResult:
    """What a measured child process said (its last stdout line, JSON) and its peak RSS."""

    data: dict[str, Any]
    wall_s: float
    max_rss_mb: float


def run_child(args: Sequence[str], timeout: float = 1800.0, env: dict[str, str] | None = None) -> ChildResult:
    """Run `python -m <args>` and return its JSON result line and peak RSS.

    The RSS comes from the kernel's accounting of that one child (`os.wait4`, the per-child form of
    `getrusage(RUSAGE_CHILDREN).ru_maxrss`), so earlier children do not leak into it.
    """
    cmd = [sys.executable, "-m", *args]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    deadline = t0 + timeout
    out_chunks: list[str] = []
    err_chunks: list[str] = []
    # communicate() would reap the child itself; read the pipes, then reap with wait4 for its rusage.
    import threading

    def drain(stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line)

    threads = [threading.Thread(target=drain, args=(proc.stdout, out_chunks), daemon=True),
               threading.Thread(target=drain, args=(proc.stderr, err_chunks), daemon=True)]
    for t in threads:
        t.start()
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{' '.join(cmd)} did not finish within {timeout}s")
            time.sleep(0.02)
    except BaseException:  # timeout, Ctrl-C, SIGTERM: never leave the child behind
        proc.kill()
        os.wait4(proc.pid, 0)
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in threads:
        t.join(timeout=10)
    wall = time.monotonic() - t0
    out = "".join(out_chunks)
    if proc.returncode != 0:
        err = "".join(err_chunks)[-4000:]
        raise RuntimeError(f"{' '.join(cmd)} failed (rc {proc.returncode}):\n{out[-2000:]}\n{err}")
    last = [ln for ln in out.splitlines() if ln.startswith("{")]
    if not last:
        raise RuntimeError(f"{' '.join(cmd)} printed no JSON result:\n{out[-2000:]}")
    return ChildResult(json.loads(last[-1]), wall, usage.ru_maxrss / 1024.0)


# --------------------------------------------------------------------------- synthetic catalog


def synthetic_catalog(n: int, seed: int, slos_per_service: int = 3) -> Any:
    """`n` services in teams of 20, each with availability, latency and a custom-events SLO.

    Deterministic for (n, seed): protocols, runtimes, tiers, objectives and thresholds are drawn
    from `random.Random(seed)`.
    """
    from obsctl.model.entities import (
        SLO,
        AlertPolicy,
        AvailabilitySLI,
        Catalog,
        EntityRef,
        EventsSLI,
        LatencySLI,
        Links,
        Origin,
        Protocol,
        Runtime,
        Service,
        Team,
    )

    rnd = random.Random(seed)
    n_teams = max(1, (n + 19) // 20)
    teams = tuple(Team(EntityRef("group", "default", f"team-{i:04d}"), title=f"Team {i}",
                       origin=Origin("synthetic")) for i in range(n_teams))
    runtimes = list(Runtime)
    services = []
    for i in range(n):
        name = f"svc-{i:05d}"
        tier = rnd.choice((1, 2, 2, 3))
        avail = {1: 0.999, 2: 0.995, 3: 0.99}[tier]
        slos = [
            SLO("availability", avail, AvailabilitySLI(), period_days=30),
            SLO("latency", 0.99, LatencySLI(rnd.choice((0.1, 0.25, 0.5, 1.0))), period_days=30,
                alerting=AlertPolicy(ticket=False)),
            SLO("jobs", rnd.choice((0.99, 0.995)),
                EventsSLI(total_query=f'rate(jobs_processed_total{{job="{name}"}}[{{{{window}}}}])',
                          error_query=f'rate(jobs_processed_total{{job="{name}",result="failed"}}[{{{{window}}}}])'),
                period_days=28, alerting=AlertPolicy(min_events=50)),
        ][:slos_per_service]
        services.append(Service(
            ref=EntityRef("component", "default", name),
            team=teams[i // 20].ref,
            slos=tuple(slos),
            tier=tier,
            protocol=Protocol.HTTP if rnd.random() < 0.7 else Protocol.GRPC,
            runtime=rnd.choice(runtimes),
            system=f"system-{i // 50:03d}",
            title=f"Service {i}",
            description="synthetic benchmark service",
            links=Links(runbook=f"https://runbooks.example.internal/{name}"),
            origin=Origin(f"synthetic/{name}.yaml"),
        ))
    return Catalog(services=tuple(services), teams=teams)


def templates() -> Any:
    """The repository's platform data folders, parsed (what `obsctl render` uses by default)."""
    from obsctl.sources.directory import read_template_tree
    from obsctl.spec.templates import parse_templates

    return parse_templates(read_template_tree(REPO))


def fmt_s(seconds: float) -> str:
    """Seconds with sensible precision."""
    if seconds >= 100:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.1f} ms"


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(fn(), wall seconds)."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def process_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a process (Linux /proc), 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0
