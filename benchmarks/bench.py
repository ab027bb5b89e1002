"""`make bench`: this service against the usual approach, side by side, in one run.

Servers, each started here with 2 workers on 127.0.0.1 and driven by wrk (Debian's; it uses ~0.1 core):
  penguin-serve            `bentoml serve service:PenguinClassifier` (this project), from --service-venv:
                           the image's dependencies only (requirements.txt), as in production
  reference                benchmarks/reference_app.py: FastAPI + pandas DataFrame + one-hot per request
  fastapi-numpy            benchmarks/numpy_app.py: FastAPI + a numpy row + inplace_predict (1 thread)
plus the in-process floor: Booster.inplace_predict on a numpy batch (rows/s, 1 thread).

Reported as medians of --reps repetitions: /predict requests/s and p50/p95/p99 at 16 and 64 connections,
/predict_batch rows/s for 1,000-row requests (as columns and as records; compared with the floor per server
CPU-second, because wrk's connections land on one worker or on both by chance), cold start (process start
-> first successful answer) and resident memory per worker. The last line is machine-readable; ratios are penguin-serve over reference.
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
from pathlib import Path

import psutil
import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))
from penguin_serve.contract import encode  # noqa: E402
from penguin_serve.training.dataset import load_dataset  # noqa: E402
from processes import die_with_parent, free_port, stop  # noqa: E402

BIN = Path(sys.executable).parent
RECORD = {"bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181, "body_mass_g": 3750,
          "year": 2009, "sex": "male", "island": "Torgersen"}
WORKERS = 2
CONNECTIONS = (16, 64)
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


def ensure_wrk() -> str:
    if shutil.which("wrk") is None:
        if os.geteuid() != 0:
            sys.exit("wrk is needed: apt-get install wrk")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("wrk")


class Server:
    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.name, self.command, self.env = name, command, env

    def start(self) -> float:
        """Start it and return the seconds from process start to the first correct /predict answer."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        started = time.monotonic()
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, env={**os.environ, **self.env}, preexec_fn=die_with_parent,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while time.monotonic() - started < 120:
            try:
                answer = requests.post(self.url + "/predict", json=RECORD, timeout=5)
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


def wrk(binary: str, url: str, body: str, connections: int, seconds: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.replace("{body}", body))
    try:
        output = subprocess.run([binary, "-t", "1", "-c", str(connections), "-d", f"{int(seconds)}s", "-s", script.name, url],
                                capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script.name)
    fields = dict(re.findall(r"(\w+)=([\d.]+)", output.split("BENCH", 1)[1]))
    requests_done, duration_s = float(fields["requests"]), float(fields["duration_us"]) / 1e6
    return {"rps": requests_done / duration_s, "errors": int(fields["errors"]),
            "p50": float(fields["p50"]), "p95": float(fields["p95"]), "p99": float(fields["p99"])}


def median_of(runs: list[dict]) -> dict:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def in_process_rows_per_s(model_dir: Path) -> float:
    import xgboost as xgb

    booster = xgb.Booster(model_file=str(model_dir / "booster.json"))
    booster.set_param({"nthread": 1})
    penguins = load_dataset().penguins
    batch = encode([penguins[i % len(penguins)] for i in range(10_000)])
    rates = []
    for _ in range(21):  # the first run warms up; each takes ~25 ms
        started = time.perf_counter()
        booster.inplace_predict(batch)
        rates.append(len(batch) / (time.perf_counter() - started))
    return statistics.median(rates[1:])


def prepare_model(home: Path) -> Path:
    """A model store and export for the run, trained by train.py (seeded: the same model every time)."""
    export = home / "export"
    subprocess.run([str(BIN / "python"), "train.py", "--export-dir", str(export)], cwd=REPO_ROOT, check=True,
                   env={**os.environ, "BENTOML_HOME": str(home)}, stdout=subprocess.DEVNULL)
    return export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--reps", type=int, default=3, help="repetitions; medians are reported")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--service-venv", type=Path, default=BIN.parent,
                        help="virtual environment that runs penguin-serve (make bench: .venv-serve)")
    args = parser.parse_args(argv)
    wrk_binary = ensure_wrk()

    home = Path(tempfile.mkdtemp(prefix="penguin-bench-"))
    try:
        model_dir = prepare_model(home)
        uvicorn = [str(BIN / "uvicorn"), "--host", "127.0.0.1", "--port", "{port}", "--workers", str(WORKERS)]
        servers = [
            Server("penguin-serve", [str(args.service_venv / "bin" / "bentoml"), "serve", "service:PenguinClassifier", "--host", "127.0.0.1",
                                     "--port", "{port}"], {"BENTOML_HOME": str(home), "PENGUIN_WORKERS": str(WORKERS)}),
            Server("reference", [*uvicorn, "benchmarks.reference_app:app"], {"MODEL_DIR": str(model_dir)}),
            Server("fastapi-numpy", [*uvicorn, "benchmarks.numpy_app:app"], {"MODEL_DIR": str(model_dir)}),
        ]
        body = json.dumps(RECORD)
        batch_rows = 1_000
        batch_bodies = {"columns": json.dumps({name: [value] * batch_rows for name, value in RECORD.items()}),
                        "records": json.dumps([RECORD] * batch_rows)}
        results: dict[str, dict] = {}
        for server in servers:
            cold = []
            for _ in range(args.reps):
                cold.append(server.start())
                server.stop()
            result = {"cold_start_s": statistics.median(cold)}
            server.start()
            try:
                wrk(wrk_binary, server.url + "/predict", body, 16, 2)  # warm-up
                for connections in CONNECTIONS:
                    runs = [wrk(wrk_binary, server.url + "/predict", body, connections, args.duration) for _ in range(args.reps)]
                    result[f"c{connections}"] = median_of(runs)
                result["rss_mb"] = server.worker_rss_mb()
                if server.name == "penguin-serve":
                    for form, batch_body in batch_bodies.items():
                        runs = []
                        for _ in range(args.reps):
                            cpu_before = server.cpu_seconds()
                            run = wrk(wrk_binary, server.url + "/predict_batch", batch_body, 4, args.duration)
                            rows = run["rps"] * batch_rows
                            # Per CPU-second of the server: comparable with the one-thread floor whether
                            # wrk's connections landed on one worker or on both.
                            runs.append({**run, "rows_per_s": rows,
                                         "rows_per_cpu_s": rows * args.duration / (server.cpu_seconds() - cpu_before)})
                        result[f"batch_{form}"] = median_of(runs)
            finally:
                server.stop()
            results[server.name] = result
            print(f"{server.name}: {json.dumps(result)}", flush=True)
        floor = in_process_rows_per_s(model_dir)
    finally:
        shutil.rmtree(home, ignore_errors=True)

    ours, reference = results["penguin-serve"], results["reference"]
    best = {name: max(r[f"c{c}"]["rps"] for c in CONNECTIONS) for name, r in results.items()}
    print()
    print(f"{'server':<15} {'req/s':>8} " + " ".join(f"{'p50/p95/p99 ms @' + str(c):>24}" for c in CONNECTIONS)
          + f" {'errors':>7} {'cold s':>7} {'RSS MB':>7}")
    for name, r in results.items():
        latencies = " ".join(f"{r[f'c{c}']['p50']:>8.1f}/{r[f'c{c}']['p95']:.1f}/{r[f'c{c}']['p99']:.1f}".rjust(24) for c in CONNECTIONS)
        errors = sum(r[f"c{c}"]["errors"] for c in CONNECTIONS)
        print(f"{name:<15} {best[name]:>8.0f} {latencies} {errors:>7.0f} {r['cold_start_s']:>7.2f} {r['rss_mb']:>7.0f}")
    print(f"in-process inplace_predict floor: {floor:,.0f} rows/s (1 thread); /predict_batch, 1,000 rows: "
          + "; ".join(f"as {form} {ours[f'batch_{form}']['rows_per_s']:,.0f} rows/s, "
                      f"{ours[f'batch_{form}']['rows_per_cpu_s']:,.0f} per server CPU-second "
                      f"({ours[f'batch_{form}']['rows_per_cpu_s'] / floor:.0%} of the floor)" for form in batch_bodies))
    summary = {
        "predict_rps_ratio": best["penguin-serve"] / best["reference"],
        "numpy_fastapi_rps_ratio": best["penguin-serve"] / best["fastapi-numpy"],
        "p99_ratio": ours["c64"]["p99"] / reference["c64"]["p99"],
        "batch_rows_per_s": ours["batch_columns"]["rows_per_s"],
        "batch_floor_ratio": ours["batch_columns"]["rows_per_cpu_s"] / floor,
        "batch_records_rows_per_s": ours["batch_records"]["rows_per_s"],
        "batch_records_floor_ratio": ours["batch_records"]["rows_per_cpu_s"] / floor,
        "cold_start_s": ours["cold_start_s"],
        "rss_mb": ours["rss_mb"],
    }
    if args.out:
        args.out.write_text(json.dumps({"results": results, "floor_rows_per_s": floor, "summary": summary}, indent=2))
    print(" ".join(f"{key}={value:.3g}" if value < 1000 else f"{key}={value:.0f}" for key, value in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
