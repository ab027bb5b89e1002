"""Soak test (not in CI): steady load for many minutes against a local server or container, then the errors
and the memory growth of the service.

    .venv/bin/python -m scripts.soak --target container --minutes 10 --users 10 --out docs/soak.json

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
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
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
    figures = {
        "measured_on": date.today().isoformat(),
        "target": target.description,
        "users": args.users,
        "minutes": args.minutes,
        "requests": int(totals["Request Count"]),
        "failures": int(totals["Failure Count"]),
        "requests_per_s": round(float(totals["Requests/s"]), 1),
        "memory_mb_every_10_s": [round(megabytes) for _, megabytes in samples],
    }
    print(
        f"soak: {figures['requests']:,} requests, {figures['failures']} failures over {args.minutes:g} min "
        f"({figures['requests_per_s']:,.0f} req/s, {args.users} users)"
    )
    print("memory (MB, every 10 s): " + ", ".join(map(str, figures["memory_mb_every_10_s"])))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    return locust.returncode


if __name__ == "__main__":
    sys.exit(main())
