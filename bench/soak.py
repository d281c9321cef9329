"""Soak: two `obsctl serve` replicas on PostgreSQL, a catalog of N services in files, the Grafana
emulator, and a fixed number of fault rounds drawn from a seeded random stream:

- grafana   the emulator fails the next requests (503, 429 with Retry-After, dropped connections)
- flap      a catalog file vanishes for a few seconds (a `git pull`), then comes back
- truncate  a catalog file is truncated, then rewritten a moment later (an editor's save)
- sigkill   a random replica is SIGKILLed (mid-apply, perhaps) and restarted
- leader    the current leader is SIGKILLed (its PostgreSQL session dies) and restarted

The catalog's content never changes (a flap is shorter than the deletion grace period), so the
desired state is constant: every deletion of a desired artifact, in Grafana or in the output
directory, is a wrong deletion. At the end the faults stop and the run waits until Grafana and the
output directory hold exactly the desired state.

    .venv/bin/python -m bench.soak                      # 10,000 services, 12 rounds (heavy: ~20 min)
    .venv/bin/python -m bench.soak --services 500 --rounds 6

Prints a table: faults tried / survived / lost, wrong deletions, convergence time, memory per replica.
Exit 0 when everything converged with zero wrong deletions, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from bench.common import SEED, say

GRAFANA_TOKEN = "soak-grafana-token"
FAULTS = ("grafana", "flap", "truncate", "sigkill", "leader")


def write_catalog(root: Path, n: int, per_file: int = 100) -> list[Path]:
    """n Backstage Components (golden path: availability + latency) in files of `per_file`, teams of 20."""
    root.mkdir(parents=True, exist_ok=True)
    teams = [{"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": f"team-{t:04d}"},
              "spec": {"type": "team", "children": []}} for t in range((n + 19) // 20)]
    (root / "teams.yaml").write_text(yaml.safe_dump_all(teams))
    files = []
    for start in range(0, n, per_file):
        docs = [{"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
                 "metadata": {"name": f"svc-{i:05d}", "annotations": {
                     "obsctl.dev/availability": "99.9", "obsctl.dev/latency": "99% < 250ms",
                     "obsctl.dev/tier": str(1 + i % 3)}},
                 "spec": {"type": "service", "lifecycle": "production", "owner": f"team-{i // 20:04d}"}}
                for i in range(start, min(n, start + per_file))]
        path = root / f"services-{start // per_file:04d}.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        files.append(path)
    return files


def expected_state(settings: Any) -> tuple[dict[str, str], set[str]]:
    """(file path under out_dir -> sha256, Grafana dashboard uids) the catalog renders to."""
    from obsctl import app
    from obsctl.model.artifact import Kind
    from obsctl.render.isolated import render_isolated
    from obsctl.sources.directory import read_directory
    from obsctl.spec.load import load_catalog

    templates = app.load_templates(settings)
    result = load_catalog(read_directory(settings.catalog.path, settings.catalog.globs), templates)
    rendered = render_isolated(result.catalog, templates, app.render_options(settings))
    files: dict[str, str] = {}
    uids: set[str] = set()
    grafana = {Kind.GRAFANA_DASHBOARD, Kind.GRAFANA_FOLDER}
    for art in rendered.desired.values():
        if art.kind is Kind.GRAFANA_DASHBOARD:
            uids.add(art.key)
        elif art.kind not in grafana and art.kind in app.rendered_kinds(settings):
            files[art.path] = art.digest
    return files, uids


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (0 when gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Watch:
    """Samples, every second: desired files that vanished after being in place (wrong deletions),
    and the RSS of every replica process."""

    def __init__(self, out: Path, files: dict[str, str]) -> None:
        self.out = out
        self.files = files
        self.present: set[str] = set()
        self.vanished: Counter[str] = Counter()
        self.rss: dict[int, list[float]] = {}
        self.pids: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            now = {p for p in self.files if (self.out / p).is_file()}
            for p in self.present - now:
                self.vanished[p] += 1
            self.present = now
            for pid in list(self.pids):
                mb = rss_mb(pid)
                if mb:
                    self.rss.setdefault(pid, []).append(mb)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def dashboard_uids(url: str) -> set[str]:
    """Every dashboard uid, through the search API in pages (emu.dashboards would deep-copy them all under
    the emulator's lock and stall the replicas' writes)."""
    import httpx

    uids: set[str] = set()
    page = 1
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {GRAFANA_TOKEN}"}, timeout=120) as client:
        while True:
            hits = client.get("/api/search", params={"type": "dash-db", "limit": 5000, "page": page}).json()
            uids |= {h["uid"] for h in hits}
            if len(hits) < 5000:
                return uids
            page += 1


def converged(out: Path, files: dict[str, str], emu: Any, uids: set[str]) -> tuple[bool, str]:
    """Whether the output directory and Grafana hold exactly the desired state, and if not, what differs."""
    missing = wrong = 0
    for path, digest in files.items():
        target = out / path
        if not target.is_file():
            missing += 1
        elif hashlib.sha256(target.read_bytes()).hexdigest() != digest:
            wrong += 1
    actual = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()
              and not any(part.startswith(".") for part in p.relative_to(out).parts)}
    extra = len(actual - set(files))
    have = dashboard_uids(emu.url)
    dash_missing, dash_extra = len(uids - have), len(have - uids)
    ok = not (missing or wrong or extra or dash_missing or dash_extra)
    return ok, (f"files missing {missing}, differing {wrong}, extra {extra}; dashboards missing {dash_missing}, "
                f"extra {dash_extra}")


def main(argv: list[str] | None = None) -> int:
    """Run the soak; print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--round-seconds", type=float, default=10.0)
    parser.add_argument("--grace", type=float, default=60.0, help="serve.deletion_grace_seconds")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--converge-timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)

    from obsctl.config import load_settings
    from tests.grafana_emulator import GrafanaEmulator
    from tests.support.postgres import PostgresServer
    from tests.support.serve import ServeProcess

    rnd = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="obsctl-soak-"))
    catalog = work / "catalog"
    files = write_catalog(catalog, args.services)
    out = work / "out"
    say(f"soak: {args.services} services in {len(files)} files, {args.rounds} rounds of {args.round_seconds:.0f}s, "
        f"grace {args.grace:.0f}s, seed {args.seed}, work {work}")
    tried: Counter[str] = Counter()
    t_start = time.monotonic()
    with GrafanaEmulator(tokens={GRAFANA_TOKEN: "Admin"}, strict_schema=False) as emu, \
            PostgresServer(work / "pg") as pg:
        serve_settings: dict[str, Any] = {
            "state_url": pg.dsn, "out_dir": str(out), "catalog": {"path": str(catalog)},
            "grafana": {"url": emu.url, "token": GRAFANA_TOKEN},
            "serve": {"sources": ["directory"], "resync_seconds": 30, "deletion_grace_seconds": args.grace,
                      "leader_lease_seconds": 5},
        }
        offline = load_settings(None, out_dir=str(out), catalog={"path": str(catalog)},
                                grafana={"url": emu.url, "token": GRAFANA_TOKEN})
        want_files, want_uids = expected_state(offline)
        say(f"desired: {len(want_files)} files, {len(want_uids)} dashboards")
        replicas = [ServeProcess(work / name, serve_settings, copy_catalog=False, name=name) for name in ("a", "b")]
        watch = Watch(out, want_files)
        try:
            for r in replicas:
                r.start(wait_ready=False)
            watch.pids = [r.proc.pid for r in replicas if r.proc]
            watch.start()
            t0 = time.monotonic()
            while not converged(out, want_files, emu, want_uids)[0]:
                if time.monotonic() - t0 > args.converge_timeout:
                    raise TimeoutError("no initial convergence: " + converged(out, want_files, emu, want_uids)[1])
                time.sleep(5)
            initial = time.monotonic() - t0
            say(f"initial convergence: {initial:.1f}s")
            emu.clear_log()
            rss_after_initial = {r.name: rss_mb(r.proc.pid) if r.proc else 0.0 for r in replicas}
            for rnd_no in range(args.rounds):
                fault = rnd.choice(FAULTS)
                tried[fault] += 1
                say(f"round {rnd_no + 1}/{args.rounds}: {fault}")
                restore: list[Any] = []
                if fault == "grafana":
                    status = rnd.choice((503, 429, 0))
                    emu.inject_fault(status=status, count=rnd.randint(5, 200), retry_after=1 if status == 429 else None,
                                     delay_s=0.5 if status == 0 else 0.0)
                elif fault in ("flap", "truncate"):
                    victim = rnd.choice(files)
                    data = victim.read_bytes()
                    if fault == "flap":
                        victim.unlink()
                    else:
                        victim.write_bytes(b"")
                    restore.append(lambda v=victim, d=data: v.write_bytes(d))
                else:
                    leaders = [r for r in replicas if r.alive() and r.is_leader()]
                    pool = leaders if fault == "leader" and leaders else [r for r in replicas if r.alive()]
                    victim_r = rnd.choice(pool)
                    victim_r.send(signal.SIGKILL)
                    with contextlib.suppress(Exception):
                        victim_r.proc.wait(10)  # type: ignore[union-attr]
                    restore.append(lambda v=victim_r: v.start(wait_ready=False))
                time.sleep(min(args.round_seconds / 2, args.grace / 3))
                for undo in restore:
                    undo()
                watch.pids = [r.proc.pid for r in replicas if r.proc and r.alive()]
                time.sleep(args.round_seconds / 2)
            emu.clear_faults()
            t1 = time.monotonic()
            ok, diff = converged(out, want_files, emu, want_uids)
            while not ok and time.monotonic() - t1 < args.converge_timeout:
                time.sleep(5)
                ok, diff = converged(out, want_files, emu, want_uids)
            final = time.monotonic() - t1
        finally:
            watch.stop()
            for r in replicas:
                r.close()
        deletes = [w for w in emu.writes() if w.method == "DELETE" and w.path.startswith("/api/dashboards/uid/")
                   and w.path.rsplit("/", 1)[1] in want_uids]
    wrong_files = sum(watch.vanished.values())
    lost = wrong_files + len(deletes) + (0 if ok else 1)
    rows = [("services", str(args.services)), ("rounds", str(args.rounds)),
            ("faults tried", ", ".join(f"{k} {v}" for k, v in sorted(tried.items()))),
            ("faults survived", str(sum(tried.values()) if ok and not lost else "see lost")),
            ("wrong deletions (files vanished)", str(wrong_files)),
            ("wrong deletions (Grafana DELETE of a desired dashboard)", str(len(deletes))),
            ("lost", str(lost)),
            ("initial convergence", f"{initial:.1f} s"),
            ("converged after the last fault", f"{final:.1f} s ({'exact' if ok else diff})"),
            ("RSS after initial convergence", ", ".join(f"{k} {v:.0f} MB" for k, v in rss_after_initial.items())),
            ("RSS per process (first / max / last sample)", "; ".join(
                f"pid {pid}: {s[0]:.0f} / {max(s):.0f} / {s[-1]:.0f} MB" for pid, s in watch.rss.items() if s)),
            ("wall time", f"{time.monotonic() - t_start:.0f} s")]
    width = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{width}}  {v}" for k, v in rows))
    return 0 if ok and not lost else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
