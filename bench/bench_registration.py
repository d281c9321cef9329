"""Registration latency of `obsctl serve`: from registering a service to all of its artifacts in place.

For each source a real `obsctl serve` process runs on the embedded stack (SQLite state, file sinks)
over the sample catalog; each sample registers a NEW service and times until every artifact the
service owns exists under the out dir with the exact bytes obsctl renders for it:

- directory     write an obsctl.dev/v1 file into the watched catalog directory (inotify wake-up)
- api           PUT /v1/services/{ns}/{name} on the registration API
- backstage     register a file location on a real Backstage catalog backend (tests/backstage), when
                Node.js and its node_modules are present; the service polls every 0.5 s

Usage: .venv/bin/python -m bench.bench_registration [--samples N] [--backstage-samples N] [--no-backstage]
`run(ctx)` returns rows for bench.run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench.common import Context, Row, say
from obsctl.app import load_templates, render_files
from obsctl.config import load_settings
from obsctl.model.status import owner_key
from obsctl.sources.directory import read_directory
from obsctl.spec.load import SourceFile
from tests.support.serve import EXAMPLES, ServeProcess, service_doc

TARGET_P99_S = 5.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class Expect:
    """The bytes obsctl renders for one service's own artifacts (computed in-process)."""

    def __init__(self) -> None:
        self.settings = load_settings()
        self.templates = load_templates(self.settings)
        self.base = read_directory(EXAMPLES)

    def paths(self, name: str, doc: bytes, origin: str, extra: list[SourceFile] | None = None) -> dict[str, bytes]:
        files = [*self.base, *(extra or []), SourceFile(origin, doc)]
        rendered = render_files(files, self.settings, self.templates)
        return {a.path: a.body for a in rendered.desired.values() if owner_key(a.owner) == f"default/{name}"}


def wait_in_place(out: Path, expected: dict[str, bytes], timeout: float = 60.0) -> float:
    """Seconds until every expected file has its expected bytes."""
    t0 = time.monotonic()
    pending = dict(expected)
    while pending:
        for rel, body in list(pending.items()):
            try:
                if (out / rel).read_bytes() == body:
                    del pending[rel]
            except OSError:
                pass
        if not pending:
            break
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"artifacts not in place after {timeout}s: {sorted(pending)[:3]}")
        time.sleep(0.005)
    return time.monotonic() - t0


def _sample(register: Callable[[], None], out: Path, expected: dict[str, bytes]) -> float:
    t0 = time.monotonic()
    register()
    wait_in_place(out, expected)
    return time.monotonic() - t0


def bench_directory(work: Path, samples: int, expect: Expect) -> list[float]:
    """New files in the watched directory."""
    times: list[float] = []
    with ServeProcess(work / "directory", {"serve": {"sources": ["directory"]}}) as srv:
        written: list[SourceFile] = []
        for i in range(samples):
            name = f"bench-dir-{i:03d}"
            doc = yaml.safe_dump(service_doc(name, owner="team-payments")).encode()
            path = srv.catalog_dir / f"{name}.yaml"
            expected = expect.paths(name, doc, str(path), written)
            times.append(_sample(lambda p=path, d=doc: _atomic(p, d), srv.out_dir, expected))
            written.append(SourceFile(str(path), doc))
            time.sleep(0.2)  # let the round finish before the next sample
    return times


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_bytes(data)
    tmp.rename(path)


def bench_api(work: Path, samples: int, expect: Expect) -> list[float]:
    """PUT on the registration API."""
    times: list[float] = []
    with ServeProcess(work / "api", {"serve": {"sources": ["directory", "api"]}}) as srv:
        registered: list[SourceFile] = []
        for i in range(samples):
            name = f"bench-api-{i:03d}"
            data = service_doc(name, owner="team-payments")
            doc = yaml.safe_dump(data, sort_keys=True, default_flow_style=False, allow_unicode=True).encode()
            origin = f"registration:default/{name}"
            expected = expect.paths(name, doc, origin, registered)

            def put(n: str = name, d: dict[str, Any] = data) -> None:
                resp = srv.client.put(f"/v1/services/default/{n}", json=d)
                resp.raise_for_status()

            times.append(_sample(put, srv.out_dir, expected))
            registered.append(SourceFile(origin, doc))
            time.sleep(0.2)
    return times


def bench_backstage(work: Path, samples: int) -> list[float] | str:
    """Locations registered on a real Backstage catalog backend."""
    try:
        from tests.support.backstage import BackstageCatalog, ensure_node_modules
    except ImportError as exc:  # pragma: no cover - the tests tree is part of the repo
        return f"skipped: {exc}"
    error = ensure_node_modules()
    if error:
        return f"skipped: {error}"
    times: list[float] = []
    with BackstageCatalog() as bs:
        settings = {"serve": {"sources": ["backstage"]},
                    "backstage": {"url": bs.base_url, "token": bs.token, "poll_seconds": 0.5}}
        with ServeProcess(work / "backstage", settings, copy_catalog=False) as srv:
            for i in range(samples):
                name = f"bench-bs-{i:03d}"
                f = bs.work_dir / f"{name}.yaml"
                f.write_text(
                    "apiVersion: backstage.io/v1alpha1\nkind: Component\n"
                    f"metadata:\n  name: {name}\n  annotations:\n    obsctl.dev/availability: \"99.9\"\n"
                    "spec:\n  type: service\n  lifecycle: production\n  owner: team-payments\n")
                rule = srv.out_dir / f"prometheus/rules/default/{name}.rules.yml"
                t0 = time.monotonic()
                bs.register_location(f)
                srv.wait_for(rule.is_file, timeout=60, interval=0.005, what=f"{name} artifacts")
                # every artifact the service owns, as the service reports them
                srv.wait_for(lambda n=name: (st := srv.service_status("default", n)) and st["in_sync"],
                             timeout=60, interval=0.005, what=f"{name} in sync")
                times.append(time.monotonic() - t0)
    return times


def rows_for(source: str, times: list[float] | str, inputs: str) -> list[Row]:
    """Result rows (p50, p99) for one source."""
    if isinstance(times, str):
        return [Row("registration", f"{source}: {inputs}", "p50 / p99", times, f"p99 < {TARGET_P99_S:g} s", "n/a")]
    p50, p99 = statistics.median(times), percentile(times, 99)
    ok = p99 < TARGET_P99_S
    return [Row("registration", f"{source}: {inputs}, n={len(times)}", "p50 / p99 registration -> in place",
                f"{p50 * 1000:.0f} ms / {p99 * 1000:.0f} ms", f"p99 < {TARGET_P99_S:g} s", "ok" if ok else "MISS")]


def measure(work: Path, samples: int, backstage_samples: int, backstage: bool = True) -> list[Row]:
    """Every source's figures."""
    expect = Expect()
    rows: list[Row] = []
    inputs = "sample catalog (5 services) + new services, SQLite, file sinks"
    say(f"registration: directory source, {samples} samples")
    rows += rows_for("directory", bench_directory(work, samples, expect), inputs)
    say(f"registration: API source, {samples} samples")
    rows += rows_for("api", bench_api(work, samples, expect), inputs)
    if backstage:
        say(f"registration: Backstage source, {backstage_samples} samples (real catalog backend)")
        rows += rows_for("backstage", bench_backstage(work, backstage_samples),
                         "real Backstage catalog (processing 1 s), poll 0.5 s")
    return rows


def run(ctx: Context) -> list[Row]:
    """Entry point for bench.run."""
    samples, bs_samples = (5, 2) if ctx.quick else (30, 8)
    return measure(ctx.work / "registration", samples, bs_samples)


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=30)
    p.add_argument("--backstage-samples", type=int, default=8)
    p.add_argument("--no-backstage", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="obsctl-bench-reg-") as tmp:
        rows = measure(Path(tmp), args.samples, args.backstage_samples, not args.no_backstage)
    widths = [max(len(getattr(r, f)) for r in rows) for f in ("benchmark", "inputs", "metric", "value", "verdict")]
    for r in rows:
        cells = (r.benchmark, r.inputs, r.metric, r.value, r.verdict)
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
