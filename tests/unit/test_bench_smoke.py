"""The benchmark harness runs end to end on small inputs (`bench.run --quick --only render`).

Nothing here looks at times: it checks that the command works, prints the table and writes the
results file with the machine description.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_render_benchmark_prints_table_and_writes_results(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--only", "render", "--results", str(results)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "benchmark  inputs" in out
    assert "render --out into an empty directory: wall time (2 workers)" in out or \
        "render --out into an empty directory: wall time (1 workers)" in out
    assert "render --out again over it, unchanged (0 writes): plan" in out
    assert "N=20 services x 3 SLOs, every artifact kind, seed=" in out and "N=250 services x 3 SLOs" in out
    text = results.read_text()
    for expected in ("## Machine", "| nproc |", "| cpu |", "| prometheus |", "| sloth |", "| pyrra |",
                     "## Results", "peak memory, PSS", "peak RSS"):
        assert expected in text
    assert "ERROR" not in text


def test_unknown_benchmark_is_refused() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--only", "nope", "--no-write"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "unknown benchmark(s) nope" in proc.stderr


def test_collect_takes_each_benchmarks_latest_rows_from_runs_made_elsewhere(tmp_path: Path) -> None:
    import json

    def entry(ran: str, value: str) -> dict[str, object]:
        return {"ran": ran, "load": "1.00 / 1.00 / 1.00", "notes": [], "errors": [],
                "rows": [{"benchmark": "render", "inputs": "N=1", "metric": "wall", "value": value,
                          "target": "", "verdict": "ok"}]}

    results = tmp_path / "RESULTS.md"
    results.with_suffix(".json").write_text(json.dumps({"quick": False, "benchmarks": {
        "render": entry("2026-11-28 10:00 UTC", "old"),
        "reports": {**entry("2026-11-28 10:00 UTC", "kept"),
                    "rows": [{"benchmark": "reports", "inputs": "N=1", "metric": "wall", "value": "kept",
                              "target": "", "verdict": "ok"}]}}}))
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"quick": False, "benchmarks": {"render": entry("2026-11-28 12:00 UTC", "new")}}))
    older = tmp_path / "older.json"
    older.write_text(json.dumps({"quick": False, "benchmarks": {"render": entry("2026-11-28 09:00 UTC", "stale")}}))
    quick = tmp_path / "quick.json"
    quick.write_text(json.dumps({"quick": True, "benchmarks": {"render": entry("2026-11-28 13:00 UTC", "quick")}}))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--collect", str(newer), str(older), str(quick),
         "--results", str(results)], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = results.read_text()
    assert "| new |" in text and "| kept |" in text
    assert "| old |" not in text and "| stale |" not in text and "| quick |" not in text
    assert "render: ran 2026-11-28 12:00 UTC, load average 1.00 / 1.00 / 1.00" in text


def test_rules_bench_storm_fails_half_the_requests_and_keeps_every_counter_continuous() -> None:
    from bench.rules_eval import LiveCounters

    live = LiveCounters(t_end=0)
    base = (("http_route", "/a"), ("instance", "i:1"), ("service_name", "s"))
    rates = {"200": 98.0, "404": 2.0, "500": 0.7, "503": 0.3}
    for code, rate in rates.items():
        live.last[tuple(sorted((*base, ("http_response_status_code", code))))] = (1000.0, rate)
    before = {k: float(line.rsplit(" ", 1)[1]) for k, line in zip(sorted(live.last), sorted(
        live.exposition().splitlines()[1:]), strict=True)}
    live.storm()
    after = {k: float(line.rsplit(" ", 1)[1]) for k, line in zip(sorted(live.last), sorted(
        live.exposition().splitlines()[1:]), strict=True)}
    for key in live.last:
        assert after[key] >= before[key]  # counters never go back at the switch
        assert after[key] - before[key] < 1e-3 * after[key]
    new = {dict(k)["http_response_status_code"]: r for k, (_v, r) in live.last.items()}
    assert new["500"] == new["503"] == 98.0 and new["200"] == 98.0 and new["404"] == 2.0
    assert (new["500"] + new["503"]) / sum(new.values()) > 0.4
