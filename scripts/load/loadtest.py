"""Runs Locust scenarios headless and writes CSV, HTML and LOAD_TEST_REPORT.md under load_results/<timestamp>/.

    .venv/bin/python -m scripts.load.loadtest --url https://penguin-serve-xyz.a.run.app --scenarios normal,step
    .venv/bin/python -m scripts.load.loadtest --target container --time-scale 0.5     # starts penguin-serve:latest
    .venv/bin/python -m scripts.load.loadtest --target server                         # starts `bentoml serve`

Without --url it starts the local server or container itself (on a free 127.0.0.1 port) and stops it after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import requests

from scripts.dev.processes import die_with_parent, free_port, stop
from scripts.load.load_report import write_report

REPO_ROOT = Path(__file__).resolve().parents[2]
ALL_SCENARIOS = ("baseline", "normal", "stress", "spike", "step")


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return f"{os.cpu_count()} cores ({cpu}), {memory_kb / 2**20:.0f} GiB, {platform.system()} {platform.release()}"


class LocalTarget:
    """The service started here: `bentoml serve` or the image, on a free port; stopped by close()."""

    def __init__(self, kind: str, image: str, cpus: str) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        if kind == "server":
            self.command = [
                str(Path(sys.executable).with_name("bentoml")),
                "serve",
                "service:PenguinClassifier",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ]
            self.process = subprocess.Popen(
                self.command, cwd=REPO_ROOT, preexec_fn=die_with_parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            self.description = f"local `bentoml serve` ({os.environ.get('PENGUIN_WORKERS', 'one worker per core')})"
        else:
            self.name = f"penguin-loadtest-{uuid.uuid4().hex[:8]}"
            self.command = [
                "docker",
                "run",
                "-d",
                "--rm",
                "--name",
                self.name,
                "--read-only",
                "--tmpfs",
                "/tmp",
                "--cpus",
                cpus,
                "--memory",
                "1g",
                "-e",
                "PORT=8080",
                "-p",
                f"127.0.0.1:{port}:8080",
                image,
            ]
            subprocess.run(self.command, check=True, stdout=subprocess.DEVNULL)
            self.process = None
            self.description = f"local container {image} (--cpus {cpus}, --memory 1g, read-only root)"
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        self.close()
        sys.exit(f"{self.description} not ready after {timeout_s}s")

    def close(self) -> None:
        if self.process is not None:
            stop(self.process, timeout_s=20)
        else:
            subprocess.run(["docker", "stop", "-t", "10", self.name], check=False, stdout=subprocess.DEVNULL)


def portable(command: list[str]) -> list[str]:
    """A command as the report records it: programs by name and paths relative to the repository, so that a
    committed report names no machine's folders."""
    parts = []
    for part in command:
        path = Path(part)
        if path.is_absolute() and path.parent == Path(sys.executable).parent:
            part = path.name
        elif path.is_absolute() and path.is_relative_to(REPO_ROOT):
            part = str(path.relative_to(REPO_ROOT))
        parts.append(part)
    return parts


def private(url: str) -> bool:
    """A private Cloud Run service answers 403 without an identity token (unless LOCUST_ID_TOKEN carries one)."""
    if "LOCUST_ID_TOKEN" in os.environ or requests.get(f"{url}/readyz", timeout=30).status_code not in (401, 403):
        return False
    print(f"{url} is private: using `gcloud auth print-identity-token`", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="service to test (default: start one, see --target)")
    parser.add_argument("--target", choices=("server", "container"), default="container", help="what to start without --url")
    parser.add_argument("--image", default="penguin-serve:latest", help="image for --target container (make image)")
    parser.add_argument("--cpus", default=str(os.cpu_count()), help="CPUs for the container (Cloud Run instance size)")
    parser.add_argument("--scenarios", default=",".join(ALL_SCENARIOS), help="comma-separated, run in this order")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiply every scenario duration by this")
    parser.add_argument("--invalid-share", type=float, default=0.05, help="share of deliberately invalid requests")
    parser.add_argument("--batch-share", type=float, default=0.05, help="share of batch requests")
    parser.add_argument("--batch-size", type=int, default=100, help="records per batch request")
    parser.add_argument("--p95-limit-ms", type=float, default=500, help="saturation threshold for p95 latency")
    parser.add_argument("--failure-limit", type=float, default=0.01, help="saturation threshold for failures")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "load_results", help="results folder")
    args = parser.parse_args(argv)

    scenarios = args.scenarios.split(",")
    unknown = set(scenarios) - set(ALL_SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    started_at = datetime.now(UTC)
    run_dir = args.out / started_at.strftime("%Y%m%dT%H%M%SZ")
    run_dir.mkdir(parents=True)
    target = None if args.url else LocalTarget(args.target, args.image, args.cpus)
    url = args.url or target.url
    token = ["--id-token-from-gcloud"] if args.url and private(args.url) else []
    commands = [shlex.join(portable(target.command))] if target else []
    exit_code = 0
    try:
        for scenario in scenarios:
            command = [
                str(Path(sys.executable).with_name("locust")),
                "-f",
                "locustfile.py",
                "--headless",
                "--host",
                url,
                "--scenario",
                scenario,
                "--time-scale",
                str(args.time_scale),
                "--invalid-share",
                str(args.invalid_share),
                "--batch-share",
                str(args.batch_share),
                "--batch-size",
                str(args.batch_size),
                "--p95-limit-ms",
                str(args.p95_limit_ms),
                "--failure-limit",
                str(args.failure_limit),
                "--csv",
                str(run_dir / scenario),
                "--csv-full-history",
                "--html",
                str(run_dir / f"{scenario}.html"),
                "--only-summary",
                *token,
            ]
            commands.append(shlex.join(portable(command)))
            print(f"--- {scenario}", flush=True)
            exit_code |= subprocess.run(command, cwd=REPO_ROOT).returncode
    finally:
        if target:
            target.close()
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "started_at": started_at.isoformat(timespec="seconds"),
                "target": target.description if target else url,
                "machine": machine(),
                "scenarios": scenarios,
                "time_scale": args.time_scale,
                "invalid_share": args.invalid_share,
                "batch_share": args.batch_share,
                "batch_size": args.batch_size,
                "p95_limit_ms": args.p95_limit_ms,
                "failure_limit": args.failure_limit,
                "commands": commands,
                "notes": ["Locust ran on the same machine and shared its CPUs with the service."] if target else [],
            },
            indent=2,
        )
    )
    print(write_report(run_dir))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
