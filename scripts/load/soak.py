"""Soak test (not in CI): steady load for many minutes against a local server or container, then the errors
and the memory growth of the service.

    .venv/bin/python -m scripts.load.soak --target container --minutes 10 --users 10 --out docs/soak

--out is a folder: Locust's own CSV files (soak_stats.csv, soak_stats_history.csv, soak_failures.csv), the
memory samples (memory.csv), the run's settings (run.json), and soak.json, the figures the docs quote, which
`figures(folder)` derives from the rest (tests/test_figures.py derives them again and compares).

The load is Locust's own `-u N -r N -t Tm` with the checked answers of locustfile.py; 10 users is the `normal`
scenario's level. Memory is sampled every 10 s: the server's process tree (psutil), or the container's cgroup
usage (`docker stats`, which includes the tmpfs /tmp where the Prometheus multiprocess files live).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import psutil

from scripts.load.loadtest import REPO_ROOT, LocalTarget

UNITS = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "B": 1}


def memory_mb(target: LocalTarget) -> float:
    if target.process is not None:
        tree = [psutil.Process(target.process.pid), *psutil.Process(target.process.pid).children(recursive=True)]
        return sum(p.memory_info().rss for p in tree) / 2**20
    usage = (
        subprocess.run(
            ["docker", "stats", "--no-stream", "--format", "{{.MemUsage}}", target.name],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.split("/")[0]
        .strip()
    )
    number, unit = float(usage.rstrip("KMGiB")), usage.lstrip("0123456789.")
    return number * UNITS[unit] / 2**20


def figures(folder: Path) -> dict:
    """The soak's figures, from its CSV files and run.json alone."""
    run = json.loads((folder / "run.json").read_text())
    with open(folder / "soak_stats.csv") as stats:
        totals = next(row for row in csv.DictReader(stats) if row["Name"] == "Aggregated")
    with open(folder / "memory.csv") as memory:
        megabytes = [round(float(row["memory_mb"])) for row in csv.DictReader(memory)]
    return {
        **run,
        "requests": int(totals["Request Count"]),
        "failures": int(totals["Failure Count"]),
        "requests_per_s": round(float(totals["Requests/s"]), 1),
        "memory_mb_every_10_s": megabytes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=("server", "container"), default="container")
    parser.add_argument("--image", default="penguin-serve:latest")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--out", type=Path, help="the folder for the CSV files and figures (default: a temporary one)")
    args = parser.parse_args()
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="penguin-soak-"))
    out_dir.mkdir(parents=True, exist_ok=True)

    target = LocalTarget(args.target, args.image, cpus="2")
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while not done.is_set():
            samples.append((time.monotonic() - started, memory_mb(target)))
            done.wait(10)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = date.today().isoformat()
    try:
        locust = subprocess.run(
            [
                str(Path(sys.executable).with_name("locust")),
                "-f",
                "locustfile.py",
                "--headless",
                "--host",
                target.url,
                "-u",
                str(args.users),
                "-r",
                str(args.users),
                "-t",
                f"{round(args.minutes * 60)}s",
                "--csv",
                str(out_dir / "soak"),
                "--only-summary",
            ],
            cwd=REPO_ROOT,
        )
    finally:
        done.set()
        sampler.join()
        target.close()
    with open(out_dir / "memory.csv", "w", newline="") as memory:
        writer = csv.writer(memory)
        writer.writerow(["seconds", "memory_mb"])
        writer.writerows((round(seconds), f"{megabytes:.1f}") for seconds, megabytes in samples)
    run = {"measured_on": started, "target": target.description, "users": args.users, "minutes": args.minutes}
    (out_dir / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    result = figures(out_dir)
    (out_dir / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"soak: {result['requests']:,} requests, {result['failures']} failures over {args.minutes:g} min "
        f"({result['requests_per_s']:,.0f} req/s, {args.users} users); figures in {out_dir}"
    )
    print("memory (MB, every 10 s): " + ", ".join(map(str, result["memory_mb_every_10_s"])))
    return locust.returncode


if __name__ == "__main__":
    sys.exit(main())
