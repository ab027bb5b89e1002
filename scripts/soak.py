"""Soak test (not in CI): about half capacity for 10 minutes against a local server or container, then the
errors and the memory growth of the service.

    .venv/bin/python -m scripts.soak --target container --minutes 10

One Locust user sending back to back is about half of what 2 cores serve (see docs/load_test/). Memory is
sampled every 10 s: the server's process tree (psutil), or the container's cgroup usage (`docker stats`).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from scripts.loadtest import REPO_ROOT, LocalTarget

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=("server", "container"), default="container")
    parser.add_argument("--image", default="penguin-serve:latest")
    parser.add_argument("--minutes", type=float, default=10)
    args = parser.parse_args()

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
    out = Path(tempfile.mkdtemp(prefix="penguin-soak-")) / "soak"
    try:
        # The baseline scenario is 1 user for 60 s: a time scale of minutes stretches it to the soak length.
        locust = subprocess.run(
            [
                str(Path(sys.executable).with_name("locust")),
                "-f",
                "locustfile.py",
                "--headless",
                "--host",
                target.url,
                "--scenario",
                "baseline",
                "--time-scale",
                str(args.minutes),
                "--csv",
                str(out),
                "--only-summary",
            ],
            cwd=REPO_ROOT,
        )
    finally:
        done.set()
        sampler.join()
        target.close()
    totals = next(r for r in csv.DictReader(open(f"{out}_stats.csv")) if r["Name"] == "Aggregated")
    first, peak, last = samples[0][1], max(m for _, m in samples), samples[-1][1]
    print(
        f"soak: {totals['Request Count']} requests, {totals['Failure Count']} failures over {args.minutes:g} min "
        f"({float(totals['Requests/s']):.0f} req/s)"
    )
    print(
        f"memory: {first:.0f} MB at start, {last:.0f} MB at end, peak {peak:.0f} MB "
        f"(growth {100 * (last - first) / first:+.1f} %); samples: " + ", ".join(f"{m:.0f}" for _, m in samples)
    )
    return locust.returncode


if __name__ == "__main__":
    sys.exit(main())
