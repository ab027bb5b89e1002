"""Code: `make bench` works end to end (a short run): every server starts and answers correctly, wrk drives
them without errors, and the last line carries every figure the performance issue asks for."""

import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("predict_rps_ratio", "numpy_fastapi_rps_ratio", "p99_ratio", "batch_rows_per_s", "batch_floor_ratio",
           "batch_records_rows_per_s", "batch_records_floor_ratio", "cold_start_s", "rss_mb")


def test_bench_runs_and_reports_every_figure(tmp_path):
    result = subprocess.run(
        [sys.executable, "benchmarks/bench.py", "--duration", "1", "--reps", "1", "--out", str(tmp_path / "bench.json")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    figures = dict(re.findall(r"(\w+)=([\d.e+-]+)", result.stdout.strip().splitlines()[-1]))
    assert set(figures) == set(FIGURES)
    assert all(float(value) > 0 for value in figures.values()), figures
    assert re.search(r"^penguin-serve .* 0 +[\d.]+ +\d+$", result.stdout, re.MULTILINE), result.stdout  # 0 errors
    assert (tmp_path / "bench.json").exists()
