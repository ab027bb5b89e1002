"""`make bench`: this service against the usual approach and the HTTP ceiling, side by side, in one run.

Servers, each started here with 2 workers on 127.0.0.1 and driven by wrk (Debian's; it uses ~0.1 core):
  penguin-serve    `bentoml serve service:PenguinClassifier` (this project), from --service-venv: the image's
                   dependencies only (requirements.txt), as in production
  http-ceiling     benchmarks/ceiling_app.py under uvicorn (httptools, uvloop): reads and parses the body,
                   answers a fixed JSON as large as ours; no validation, no model
  gc-default       penguin-serve with CPython's default young-collection threshold
                   (PENGUIN_GC_YOUNG_ALLOCATIONS=700): what the service's garbage-collector setting buys
  bentoml-floor    benchmarks/bentoml_floor.py under `bentoml serve`: the same fixed answer from a BentoML
                   service configured like ours, i.e. what BentoML's server costs per request
  bentoml-api      benchmarks/bentoml_api.py: penguin-serve's own methods on BentoML's own @bentoml.api path
                   (BentoML validates and serializes; no ApiRoutes in front), /predict and /predict_batch
  fastapi-numpy    benchmarks/numpy_app.py: FastAPI + a numpy row + inplace_predict (1 thread)
  reference        benchmarks/reference_app.py: the usual FastAPI + pandas DataFrame + one-hot per request
plus in-process figures: Booster.inplace_predict on a 10,000-row batch (the floor, rows/s on 1 thread), one
model call of 1 and of 32 rows, and what the metrics cost per row.

Reported as medians of --reps repetitions: /predict requests/s (and per server CPU-second: wrk's connections
land on one worker or on both by chance) and p50/p95/p99 at 16 and 64 connections; for penguin-serve also
/predict_batch rows/s for 1,000-row requests (as columns and as records, per server CPU-second against the
floor), and a worker's live objects, resident memory and garbage-collection pauses at rest and after
--saturation-s of saturation (benchmarks/probe/sitecustomize.py, injected for that phase only); cold start
(process start -> first correct answer) and resident memory per worker for every server. The last line is
machine-readable: ratios to the peers and the ceiling, measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import psutil
import requests

from benchmarks.page import replace_section
from penguin_serve.contract import EXAMPLE, EXAMPLE_COLUMNS
from penguin_serve.settings import SETTINGS
from penguin_serve.training.dataset import load_dataset
from scripts.dev.processes import die_with_parent, free_port, stop
from scripts.dev.tools import ToolMissing, require
from scripts.load.loadtest import machine

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WORKERS = 2
CONNECTIONS = (16, 64)
BATCH_ROWS = 1_000
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%d duration_us=%d errors=%d p50=%.3f p95=%.3f p99=%.3f\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
"""
IN_PROCESS = """
import json, os, statistics, sys, time
import numpy as np
import xgboost as xgb
from penguin_serve.model import PenguinModel
from penguin_serve.serving.metrics import ModelCalls
model = PenguinModel.from_files(sys.argv[1], "bench", nthread=1)
booster = model.booster
rows = np.load(sys.argv[2])
def per_call(n, repeat, call=booster.inplace_predict):
    times = []
    for _ in range(repeat):
        started = time.perf_counter(); call(rows[:n]); times.append(time.perf_counter() - started)
    return statistics.median(times[1:])
def metrics_us(n, calls):
    # The service counts a second's model calls in one pass: `calls` calls of n rows, then their pass, per call.
    probabilities = booster.inplace_predict(rows[:n]).reshape(n, 3)
    counted = ModelCalls(every_s=3600)  # its pass runs here, not in its thread
    times = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(calls):
            counted.add(model, rows[:n], probabilities)
        counted.count(); times.append((time.perf_counter() - started) / calls)
    return 1e6 * statistics.median(times[1:])
print(json.dumps({"floor_rows_per_s": 10_000 / per_call(10_000, 21), "call_1_row_ms": 1000 * per_call(1, 201),
                  "call_32_rows_ms": 1000 * per_call(32, 201), "metrics_us_per_call": metrics_us(1, 1000),
                  "metrics_us_per_row": metrics_us(1000, 10) / 1000,
                  "model_us_per_row": 1e6 * per_call(1000, 21, model.probabilities) / 1000,
                  "explain_1_row_ms": 1000 * per_call(1, 201, model.contributions),
                  "explain_us_per_row": 1e6 * per_call(1000, 21, model.contributions) / 1000}))
"""


def ensure_wrk() -> str:
    try:
        return require("wrk")
    except ToolMissing as missing:
        sys.exit(str(missing))


class Server:
    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.name, self.command, self.env = name, command, env

    def start(self, **extra_env: str) -> float:
        """Start it and return the seconds from process start to the first correct /predict answer."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        started = time.monotonic()
        self.process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, **self.env, **extra_env},
            preexec_fn=die_with_parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while time.monotonic() - started < 120:
            try:
                answer = requests.post(self.url + "/predict", json=EXAMPLE, timeout=5)
                if answer.status_code == 200 and answer.json()["prediction"] == "Adelie":
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within 120 s")

    def worker_rss_mb(self) -> float:
        """Median resident memory of the worker processes (the supervisor process excluded)."""
        children = psutil.Process(self.process.pid).children(recursive=True)
        workers = [c for c in children if c.memory_info().rss > 50 * 2**20] or [psutil.Process(self.process.pid)]
        return statistics.median(c.memory_info().rss for c in workers) / 2**20

    def cpu_seconds(self) -> float:
        """CPU time the server's process tree has used so far."""
        root = psutil.Process(self.process.pid)
        return sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])

    def stop(self) -> None:
        stop(self.process, timeout_s=20)


def bentoml_serve(service_venv: Path, service: str) -> list[str]:
    """`bentoml serve SERVICE` from that environment, on the port Server fills in."""
    return [str(service_venv / "bin" / "bentoml"), "serve", service, "--host", "127.0.0.1", "--port", "{port}"]


def uvicorn(venv: Path, app: str) -> list[str]:
    """uvicorn from that environment, as fast as it goes: httptools, uvloop, no access log."""
    return [str(venv / "bin" / "uvicorn"), "--host", "127.0.0.1", "--port", "{port}", "--workers", str(WORKERS)] + [
        "--http", "httptools", "--loop", "uvloop", "--no-access-log", app,
    ]  # fmt: skip


def wrk(binary: str, server: Server, path: str, body: str, connections: int, seconds: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.replace("{body}", body))
    try:
        cpu_before = server.cpu_seconds()
        output = subprocess.run(
            [binary, "-t", "1", "-c", str(connections), "-d", f"{int(seconds)}s", "-s", script.name, server.url + path],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        cpu = server.cpu_seconds() - cpu_before
    finally:
        os.unlink(script.name)
    fields = dict(re.findall(r"(\w+)=([\d.]+)", output.split("BENCH", 1)[1]))
    requests_done, duration_s = float(fields["requests"]), float(fields["duration_us"]) / 1e6
    return {
        "rps": requests_done / duration_s,
        "rps_per_cpu_s": requests_done / cpu,
        "errors": int(fields["errors"]),
        "p50": float(fields["p50"]),
        "p95": float(fields["p95"]),
        "p99": float(fields["p99"]),
    }


def median_run(runs: list[dict]) -> dict:
    """The run with the median requests/s (the lower middle of an even count), with all of that run's figures:
    its latencies and CPU belong to its throughput."""
    return sorted(runs, key=lambda run: run["rps"])[(len(runs) - 1) // 2]


def probe_samples(directory: Path) -> list[dict]:
    """The latest sample of each penguin-serve process that has a model loaded (the workers)."""
    samples = [json.loads(path.read_text()) for path in directory.glob("*.json")]
    return [sample for sample in samples if sample["rss_mb"] > 50]


def memory_under_saturation(server: Server, wrk_binary: str, body: str, seconds: float) -> dict:
    """A worker's live objects and memory at rest, right after `seconds` of wrk at 64 connections, and once
    BentoML's per-request timers (PENGUIN_REQUEST_TIMEOUT_S) have all run out."""
    probe_dir = Path(tempfile.mkdtemp(prefix="penguin-probe-"))
    try:
        server.start(PYTHONPATH=str(REPO_ROOT / "benchmarks" / "probe"), PENGUIN_PROBE_DIR=str(probe_dir))
        wrk(wrk_binary, server, "/predict", body, 16, 2)  # warm-up
        time.sleep(2.5)
        rest = probe_samples(probe_dir)
        run = wrk(wrk_binary, server, "/predict", body, 64, seconds)
        time.sleep(1.5)
        after = probe_samples(probe_dir)
        time.sleep(SETTINGS.request_timeout_s + 3)
        expired = probe_samples(probe_dir)
        server.stop()
    finally:
        shutil.rmtree(probe_dir, ignore_errors=True)
    busiest = max(after, key=lambda sample: sample["gc"]["2"]["count"])
    return {
        "saturation_s": seconds, "rps": run["rps"],
        "objects_at_rest": max(sample["objects"] for sample in rest), "objects_after": busiest["objects"],
        "objects_after_timeout": max(sample["objects"] for sample in expired),
        "rss_mb_at_rest": max(sample["rss_mb"] for sample in rest), "rss_mb_after": busiest["rss_mb"],
        "full_gc_count": busiest["gc"]["2"]["count"], "full_gc_max_ms": busiest["gc"]["2"]["max_ms"],
        "full_gc_total_ms": busiest["gc"]["2"]["total_ms"],
    }  # fmt: skip


def in_process(service_venv: Path, model_dir: Path) -> dict:
    """The floor and the per-call and per-row costs, in the service's own environment; metrics in
    prometheus_client's multiprocess mode, as BentoML runs them."""
    with tempfile.TemporaryDirectory() as scratch:
        rows = Path(scratch) / "rows.npy"
        penguins = load_dataset().penguins
        import numpy as np

        from penguin_serve.contract import encode

        np.save(rows, encode([penguins[i % len(penguins)] for i in range(10_000)]))
        os.mkdir(Path(scratch) / "metrics")
        output = subprocess.run(
            [str(service_venv / "bin" / "python"), "-c", IN_PROCESS, str(model_dir), str(rows)],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(Path(scratch) / "metrics")},
        ).stdout
    return json.loads(output)


def scoring_rows_per_s(service_venv: Path, home: Path, rows: int = 200_000) -> dict:
    """One task of the bulk scoring job (penguin_serve.jobs.score) over a local CSV of real penguins: its rows per
    second once the model is loaded, as it logs them. A task is one thread: that is also per CPU-second."""
    import csv

    birds = [p.model_dump(mode="json") for p in load_dataset().penguins]
    columns = list(EXAMPLE)
    folder = home / "scoring"
    (folder / "in").mkdir(parents=True)
    with open(folder / "in" / "penguins.csv", "w", newline="") as table:
        writer = csv.writer(table, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(
            ["" if birds[i % len(birds)][c] is None else birds[i % len(birds)][c] for c in columns] for i in range(rows)
        )
    run = subprocess.run(
        [
            str(service_venv / "bin" / "python"),
            "-m",
            "penguin_serve.jobs.score",
            "--input",
            str(folder / "in"),
            "--output",
            str(folder / "out"),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "BENTOML_HOME": str(home)},
        capture_output=True,
        text=True,
        check=True,
    )
    progress = [json.loads(line) for line in run.stdout.splitlines() if '"rows_per_s"' in line]
    return {"rows": rows, "rows_per_s": progress[-1]["rows_per_s"]}


def prepare_model(home: Path) -> Path:
    """A model store and export for the run, trained by train.py (seeded: the same model every time)."""
    export = home / "export"
    subprocess.run(
        [str(BIN / "python"), "train.py", "--export-dir", str(export)],
        cwd=REPO_ROOT,
        check=True,
        env={**os.environ, "BENTOML_HOME": str(home)},
        stdout=subprocess.DEVNULL,
    )
    return export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--reps", type=int, default=3, help="repetitions; medians are reported")
    parser.add_argument("--saturation-s", type=int, default=60, help="seconds of saturation for the memory figures")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--page", action="store_true", help="also write the printout and targets into docs/PERFORMANCE.md")
    parser.add_argument(
        "--service-venv",
        type=Path,
        default=BIN.parent,
        help="virtual environment that runs penguin-serve (make bench: .venv-serve)",
    )
    parser.add_argument(
        "--peers-venv",
        type=Path,
        default=BIN.parent,
        help="virtual environment that runs the HTTP ceiling and the FastAPI + numpy peer (make bench: .venv-peers)",
    )
    args = parser.parse_args(argv)
    wrk_binary = ensure_wrk()

    home = Path(tempfile.mkdtemp(prefix="penguin-bench-"))
    try:
        model_dir = prepare_model(home)
        ours = bentoml_serve(args.service_venv, "service:PenguinClassifier")
        # As on Cloud Run: no line per successful request (the peers log none either).
        ours_env = {"BENTOML_HOME": str(home), "PENGUIN_WORKERS": str(WORKERS), "PENGUIN_LOG_SUCCESSES": "false"}
        servers = [
            Server("penguin-serve", ours, ours_env),
            Server("gc-default", ours, {**ours_env, "PENGUIN_GC_YOUNG_ALLOCATIONS": "700"}),
            Server("http-ceiling", uvicorn(args.peers_venv, "benchmarks.ceiling_app:app"), {}),
            Server("bentoml-api", bentoml_serve(args.service_venv, "benchmarks.bentoml_api:PenguinClassifier"), ours_env),
            Server(
                "bentoml-floor",
                bentoml_serve(args.service_venv, "benchmarks.bentoml_floor:BentoMLFloor"),
                {"PENGUIN_WORKERS": str(WORKERS)},
            ),
            Server("fastapi-numpy", uvicorn(args.peers_venv, "benchmarks.numpy_app:app"), {"MODEL_DIR": str(model_dir)}),
            # The usual approach's own needs are pandas and scikit-learn: the dev environment's.
            Server("reference", uvicorn(BIN.parent, "benchmarks.reference_app:app"), {"MODEL_DIR": str(model_dir)}),
        ]
        body = json.dumps(EXAMPLE)
        batch_bodies = {
            "columns": json.dumps({name: (values * BATCH_ROWS)[:BATCH_ROWS] for name, values in EXAMPLE_COLUMNS.items()}),
            "records": json.dumps([EXAMPLE] * BATCH_ROWS),
        }
        results: dict[str, dict] = {}
        for server in servers:
            cold = []
            for _ in range(args.reps - 1):
                cold.append(server.start())
                server.stop()
            cold.append(server.start())  # the last start serves the load runs too
            result = {"cold_start_s": statistics.median(cold)}
            try:
                wrk(wrk_binary, server, "/predict", body, 16, 2)  # warm-up
                for connections in CONNECTIONS:
                    runs = [wrk(wrk_binary, server, "/predict", body, connections, args.duration) for _ in range(args.reps)]
                    result[f"c{connections}"] = median_run(runs)
                result["rss_mb"] = server.worker_rss_mb()
                if server.name == "penguin-serve":
                    for connections in CONNECTIONS:
                        runs = [wrk(wrk_binary, server, "/explain", body, connections, args.duration) for _ in range(args.reps)]
                        result[f"explain_c{connections}"] = median_run(runs)
                if server.name in ("penguin-serve", "bentoml-api"):
                    for form, batch_body in batch_bodies.items():
                        runs = [wrk(wrk_binary, server, "/predict_batch", batch_body, 4, args.duration) for _ in range(args.reps)]
                        run = median_run(runs)
                        result[f"batch_{form}"] = {
                            **run,
                            "rows_per_s": run["rps"] * BATCH_ROWS,
                            "rows_per_cpu_s": run["rps_per_cpu_s"] * BATCH_ROWS,
                        }
            finally:
                server.stop()
            if server.name == "penguin-serve":
                result["memory"] = memory_under_saturation(server, wrk_binary, body, args.saturation_s)
            results[server.name] = result
            print(f"{server.name}: {json.dumps(result)}", flush=True)
        costs = in_process(args.service_venv, model_dir)
        scoring = scoring_rows_per_s(args.service_venv, home, rows=20_000 if args.duration < 3 else 200_000)
    finally:
        shutil.rmtree(home, ignore_errors=True)

    figures = {
        "measured_on": date.today().isoformat(),
        "machine": machine(),
        "duration_s": args.duration,
        "reps": args.reps,
        "results": results,
        "in_process": costs,
        "scoring": scoring,
        "timeout_s": SETTINGS.request_timeout_s,
    }
    figures["summary"] = summarize(figures)
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    if args.page:
        write_page(figures)
    print()
    print(report(figures))
    print()
    print(targets_table(figures["summary"]))
    return 0


# The performance goals for the summary's figures: (what, summary key, "<=" or ">=", limit).
TARGETS = (
    ("/predict p99 at 64 connections, ms", "p99_c64_ms", "<=", 25),
    ("p99 / p50 at 64 connections", "p99_over_p50_c64", "<=", 3),
    ("/predict requests/s / the HTTP ceiling's", "ceiling_ratio", ">=", 0.35),
    ("/predict requests/s / FastAPI + numpy's", "numpy_fastapi_rps_ratio", ">=", 2),
    ("/predict requests/s / the usual FastAPI + pandas service's", "predict_rps_ratio", ">=", 5),
    ("p99 at 64 connections / the usual service's", "p99_ratio", "<=", 0.2),
    ("a worker's live objects after 60 s of saturation / at rest", "objects_growth", "<=", 1.1),
    ("a worker's live objects once the load is over / at rest", "objects_left_after_timeout", "<=", 1.1),
    ("metrics per row / the model's own cost per row, 1,000-row call", "metrics_row_share", "<=", 0.1),
    ("metrics per model call of 1 row, µs (1,000 calls counted in one pass)", "metrics_us_per_call", "<=", 10),
    ("1,000-row batch (columns) rows per CPU-second / the in-process floor", "batch_floor_ratio", ">=", 0.5),
    ("scoring job rows/s on one CPU / the in-process floor", "scoring_floor_ratio", ">=", 0.5),
    ("/explain requests/s / /predict's", "explain_ratio", ">=", 0.5),
    ("cold start, s", "cold_start_s", "<=", 2.5),
    ("cold start / FastAPI + numpy's (stretch)", "cold_start_ratio", "<=", 1.0),
    ("worker RSS after the load, MB", "rss_mb", "<=", 250),
)


def write_page(figures: dict) -> None:
    """docs/PERFORMANCE.md's quotes of this run: the printout and the targets table."""
    replace_section(
        "make bench: report",
        f"The run measured on {figures['measured_on']} (`make bench`; its last line is the machine-readable summary):\n\n"
        f"```\n{report(figures)}\n```",
    )
    replace_section("make bench: targets", targets_table(figures["summary"]))


def targets_table(summary: dict) -> str:
    """The targets against this run's figures, as the Markdown table docs/PERFORMANCE.md quotes."""
    rows = ["| target | figure | this run | met |", "|---|---|---:|---|"]
    for what, key, direction, limit in TARGETS:
        value = summary[key]
        met = value <= limit if direction == "<=" else value >= limit
        shown = f"{value:.1f}" if value >= 10 else f"{value:.4f}".rstrip("0").rstrip(".")  # 1.9996 is not 2
        rows.append(f"| {what} {'≤' if direction == '<=' else '≥'} {limit:g} | `{key}` | {shown} | {'yes' if met else 'no'} |")
    return "\n".join(rows)


def summarize(figures: dict) -> dict:
    """The ratios to the peers and the ceiling, and the other figures the performance goals name."""
    results, costs, scoring = figures["results"], figures["in_process"], figures["scoring"]
    ours, reference, numpy_app, ceiling, bentoml_floor, bentoml_api = (
        results[name] for name in ("penguin-serve", "reference", "fastapi-numpy", "http-ceiling", "bentoml-floor", "bentoml-api")
    )
    floor, memory = costs["floor_rows_per_s"], ours["memory"]
    return {
        "predict_rps": ours["c64"]["rps"],
        "ceiling_ratio": ours["c64"]["rps"] / ceiling["c64"]["rps"],
        "ceiling_cpu_ratio": ours["c64"]["rps_per_cpu_s"] / ceiling["c64"]["rps_per_cpu_s"],
        "bentoml_floor_ratio": ours["c64"]["rps"] / bentoml_floor["c64"]["rps"],
        "bentoml_floor_p99_c64_ms": bentoml_floor["c64"]["p99"],
        "bentoml_api_ratio": ours["c64"]["rps"] / bentoml_api["c64"]["rps"],
        "bentoml_api_batch_ratio": ours["batch_columns"]["rows_per_s"] / bentoml_api["batch_columns"]["rows_per_s"],
        "bentoml_api_records_ratio": ours["batch_records"]["rows_per_s"] / bentoml_api["batch_records"]["rows_per_s"],
        "gc_default_p99_c64_ms": results["gc-default"]["c64"]["p99"],
        "numpy_fastapi_rps_ratio": ours["c64"]["rps"] / numpy_app["c64"]["rps"],
        "predict_rps_ratio": ours["c64"]["rps"] / reference["c64"]["rps"],
        "p99_c64_ms": ours["c64"]["p99"],
        "p99_over_p50_c64": ours["c64"]["p99"] / ours["c64"]["p50"],
        "p99_ratio": ours["c64"]["p99"] / reference["c64"]["p99"],
        "batch_rows_per_s": ours["batch_columns"]["rows_per_s"],
        "batch_floor_ratio": ours["batch_columns"]["rows_per_cpu_s"] / floor,
        "batch_records_rows_per_s": ours["batch_records"]["rows_per_s"],
        "batch_records_floor_ratio": ours["batch_records"]["rows_per_cpu_s"] / floor,
        "cold_start_s": ours["cold_start_s"],
        "cold_start_ratio": ours["cold_start_s"] / numpy_app["cold_start_s"],
        "rss_mb": ours["rss_mb"],
        "explain_ratio": ours["explain_c64"]["rps"] / ours["c64"]["rps"],
        "scoring_rows_per_s": scoring["rows_per_s"],
        "scoring_floor_ratio": scoring["rows_per_s"] / floor,
        "objects_growth": memory["objects_after"] / memory["objects_at_rest"],
        "objects_left_after_timeout": memory["objects_after_timeout"] / memory["objects_at_rest"],
        "rss_growth_mb": memory["rss_mb_after"] - memory["rss_mb_at_rest"],
        "metrics_row_share": costs["metrics_us_per_row"] / costs["model_us_per_row"],
        "metrics_us_per_call": costs["metrics_us_per_call"],
    }


def report(figures: dict) -> str:
    """The bench's printout, from its figures alone: docs/PERFORMANCE.md quotes it, and a test checks the quote
    against docs/performance.json."""
    results, costs, scoring, summary = figures["results"], figures["in_process"], figures["scoring"], figures["summary"]
    ours, floor, memory = results["penguin-serve"], costs["floor_rows_per_s"], results["penguin-serve"]["memory"]
    lines = [
        f"{figures['measured_on']}, {figures['machine']}; {WORKERS} workers per server, wrk for {figures['duration_s']} s "
        f"per run; each row's rates and latencies come from one run, the median by requests/s of {figures['reps']}; "
        f"cold start is the median of {figures['reps']} starts",
        f"{'server':<15} "
        + " ".join(f"{'req/s @' + str(c):>10} {'per CPU-s':>9} {'p50/p95/p99 ms':>20}" for c in CONNECTIONS)
        + f" {'errors':>7} {'cold s':>7} {'RSS MB':>7}",
    ]
    for name, r in results.items():
        columns = " ".join(
            f"{r[f'c{c}']['rps']:>10.0f} {r[f'c{c}']['rps_per_cpu_s']:>9.0f} "
            + f"{r[f'c{c}']['p50']:.1f}/{r[f'c{c}']['p95']:.1f}/{r[f'c{c}']['p99']:.1f}".rjust(20)
            for c in CONNECTIONS
        )
        errors = sum(r[f"c{c}"]["errors"] for c in CONNECTIONS)
        lines.append(f"{name:<15} {columns} {errors:>7.0f} {r['cold_start_s']:>7.2f} {r['rss_mb']:>7.0f}")
    lines += [
        f"in-process: inplace_predict floor {floor:,.0f} rows/s (1 thread, 10,000-row batch); one call of 1 row "
        f"{costs['call_1_row_ms']:.3f} ms, of 32 rows {costs['call_32_rows_ms']:.3f} ms; metrics (species, confidence, out-of-distribution flags, drift bins) "
        f"{costs['metrics_us_per_call']:.1f} µs per call of 1 row, {costs['metrics_us_per_row']:.2f} µs per row in a 1,000-row call; "
        f"explanations (TreeSHAP) {costs['explain_1_row_ms']:.3f} ms for 1 row, {costs['explain_us_per_row']:.0f} µs per row in a 1,000-row call",
        f"/predict_batch, {BATCH_ROWS:,} rows: "
        + "; ".join(
            f"as {form} {ours[f'batch_{form}']['rows_per_s']:,.0f} rows/s, {ours[f'batch_{form}']['rows_per_cpu_s']:,.0f} per server "
            f"CPU-second ({ours[f'batch_{form}']['rows_per_cpu_s'] / floor:.0%} of the floor)"
            for form in ("columns", "records")
        ),
        "the same methods on BentoML's own @bentoml.api path (bentoml-api), against penguin-serve's lane: /predict "
        f"{results['bentoml-api']['c64']['rps']:,.0f} requests/s at 64 connections ({summary['bentoml_api_ratio']:.2f}x), "
        + "; ".join(
            f"/predict_batch as {form} {results['bentoml-api'][f'batch_{form}']['rows_per_s']:,.0f} rows/s ({summary[key]:.2f}x)"
            for form, key in (("columns", "bentoml_api_batch_ratio"), ("records", "bentoml_api_records_ratio"))
        ),
        f"bulk scoring job, one task: {scoring['rows_per_s']:,.0f} rows/s over {scoring['rows']:,} rows "
        f"({scoring['rows_per_s'] / floor:.0%} of the floor)",
        "/explain: "
        + "; ".join(
            f"{ours[f'explain_c{c}']['rps']:,.0f} requests/s at {c} connections "
            f"({ours[f'explain_c{c}']['rps'] / ours[f'c{c}']['rps']:.2f} of /predict's)"
            for c in CONNECTIONS
        ),
        f"a worker under {memory['saturation_s']} s of saturation ({memory['rps']:,.0f} requests/s): live objects "
        f"{memory['objects_at_rest']:,} at rest -> {memory['objects_after']:,} -> {memory['objects_after_timeout']:,} once "
        f"the {figures['timeout_s']} s request timers ran out; RSS {memory['rss_mb_at_rest']:.0f} -> "
        f"{memory['rss_mb_after']:.0f} MB; {memory['full_gc_count']} full collections, longest {memory['full_gc_max_ms']:.0f} ms",
        " ".join(f"{key}={value:.3g}" if value < 1000 else f"{key}={value:.0f}" for key, value in summary.items()),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
