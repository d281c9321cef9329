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
    assert "streamed render wall time (2 workers)" in out or "streamed render wall time (1 workers)" in out
    assert "N=20 services x 3 SLOs, every artifact kind, seed=" in out and "N=250 services x 3 SLOs" in out
    text = results.read_text()
    for expected in ("## Machine", "| nproc |", "| cpu |", "| prometheus |", "| sloth |", "| pyrra |",
                     "## Results", "peak RSS"):
        assert expected in text
    assert "ERROR" not in text


def test_unknown_benchmark_is_refused() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.run", "--only", "nope", "--no-write"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "unknown benchmark(s) nope" in proc.stderr
