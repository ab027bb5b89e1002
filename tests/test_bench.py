"""Code: `make bench` works end to end (a short run): every server starts and answers correctly, wrk drives
them without errors, and the last line carries every figure the performance goals name."""

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

pytestmark = pytest.mark.slow  # starts servers or processes of its own

FIGURES = (
    "predict_rps",
    "ceiling_ratio",
    "ceiling_cpu_ratio",
    "bentoml_floor_ratio",
    "bentoml_floor_p99_c64_ms",
    "gc_default_p99_c64_ms",
    "numpy_fastapi_rps_ratio",
    "predict_rps_ratio",
    "p99_c64_ms",
    "p99_over_p50_c64",
    "p99_ratio",
    "batch_rows_per_s",
    "batch_floor_ratio",
    "batch_records_rows_per_s",
    "batch_records_floor_ratio",
    "cold_start_s",
    "cold_start_ratio",
    "rss_mb",
    "explain_ratio",
    "scoring_rows_per_s",
    "scoring_floor_ratio",
    "objects_growth",
    "objects_left_after_timeout",
    "rss_growth_mb",
    "metrics_row_share",
    "metrics_us_per_call",
    "bentoml_api_ratio",
    "bentoml_api_batch_ratio",
    "bentoml_api_records_ratio",
)


def test_bench_runs_and_reports_every_figure(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.bench",
            "--duration",
            "1",
            "--reps",
            "1",
            "--saturation-s",
            "2",
            "--out",
            str(tmp_path / "bench.json"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PENGUIN_REQUEST_TIMEOUT_S": "2"},  # the memory phase waits for the request timers
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = next(line for line in result.stdout.splitlines() if line.startswith("predict_rps="))
    figures = dict(re.findall(r"(\w+)=([\d.e+-]+)", summary))
    assert "| target |" in result.stdout  # the targets table follows
    assert set(figures) == set(FIGURES)
    # Every figure is measured; RSS growth alone may be zero or negative over this run's 2 s of saturation.
    assert all(float(value) > 0 for name, value in figures.items() if name != "rss_growth_mb"), figures
    assert re.search(r"^penguin-serve .* 0 +[\d.]+ +\d+$", result.stdout, re.MULTILINE), result.stdout  # 0 errors
    assert (tmp_path / "bench.json").exists()


def test_profile_attributes_a_workers_samples_to_the_layers_a_request_crosses(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.profile", "--seconds", "3", "--out", str(tmp_path / "profile.json")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    shares = json.loads((tmp_path / "profile.json").read_text())["shares"]
    assert sum(shares.values()) == pytest.approx(1.0)
    # Every request crosses these; a renamed file would silently move its samples to "the rest".
    for layer in ("TimeoutMiddleware", "ApiRoutes", "Predictor", "uvicorn"):
        assert next(share for name, share in shares.items() if name.startswith(layer)) > 0, (layer, shares)
