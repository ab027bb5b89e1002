"""`make profile`: where one worker's CPU goes while /predict is saturated, layer by layer.

Starts penguin-serve with one worker (from --service-venv, as `make bench` does), drives /predict with wrk at
64 connections, samples the worker with py-spy (native frames included, so garbage collection shows; sampling native
stacks pauses the worker ~100 times a second, so absolute throughput here is not the bench's) and
attributes each sample to the innermost layer on its stack: BentoML's middlewares in the order a request
crosses them, this service's own layers, the model call, or garbage collection wherever it struck. Prints the
shares and, with --out, writes them as JSON (docs/profile.json).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from datetime import date
from pathlib import Path

import psutil

from benchmarks.bench import BIN, Server, bentoml_serve, ensure_wrk, prepare_model, wrk
from benchmarks.page import replace_section
from penguin_serve.contract import EXAMPLE

# (layer, a file its code lives in), in the order a request crosses them. A sample belongs to the innermost
# layer on its stack, so a response written by uvicorn counts as uvicorn's even when a middleware's send
# wrapper called it; "garbage collection" wins over all of them, wherever it struck.
LAYERS = (
    ("Starlette ServerErrorMiddleware", "starlette/middleware/errors.py"),
    ("BentoML RunnerTrafficMetricsMiddleware", "bentoml/_internal/server/http/instruments.py"),
    ("OpenTelemetryMiddleware (route excluded)", "asgi/__init__.py"),  # py-spy shortens the package path
    ("TimeoutMiddleware (BentoML's, its timer cancelled)", "penguin_serve/serving/bentoml_timeout.py"),
    ("RequestLog (errors, and successes where on)", "penguin_serve/serving/request_log.py"),
    ("ApiRoutes (limits, parsing, validation, answer)", "penguin_serve/serving/fast_lane.py"),
    ("Predictor (model call, metrics)", "penguin_serve/serving/predictor.py"),
    ("uvicorn (HTTP parsing and writes)", "uvicorn/protocols/http/httptools_impl.py"),
)
GARBAGE_COLLECTION = "garbage collection"
OTHER = "event loop and the rest"
GC_FRAME = re.compile(r"^(gc_collect_main|gc_collect_with_callback|gc_collect_impl|collect) ")
FRAME = re.compile(r"^\S+ \((?P<file>[^:)]+)")


def layer_of(stack: list[str]) -> str:
    """The innermost known layer on a stack (outermost frame first)."""
    if any(GC_FRAME.match(frame) for frame in stack):
        return GARBAGE_COLLECTION
    found = OTHER
    for frame in stack:
        match = FRAME.match(frame)
        for layer, file in LAYERS if match else ():
            if match["file"].endswith(file):
                found = layer
    return found


def shares(raw: str) -> dict[str, float]:
    """Each layer's share of the samples in py-spy's raw (collapsed) output."""
    samples: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            samples[layer_of(stack.split(";"))] += int(count)
    total = sum(samples.values())
    order = [GARBAGE_COLLECTION, *(layer for layer, _ in LAYERS), OTHER]
    return {layer: samples[layer] / total for layer in order}


def table(figures: dict) -> str:
    """The shares as a Markdown table: the printout, and what docs/PERFORMANCE.md quotes (a test compares)."""
    rows = [f"| {layer} | {share:.1%} |" for layer, share in figures["shares"].items()]
    heading = f"| where one worker's samples were ({figures['connections']} connections, {figures['seconds']} s) | share |"
    return "\n".join([heading, "|---|---:|", *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=30, help="seconds of sampling under load")
    parser.add_argument("--service-venv", type=Path, default=BIN.parent, help="environment that runs penguin-serve")
    parser.add_argument("--out", type=Path, help="also write the shares as JSON here")
    parser.add_argument("--page", action="store_true", help="also write the table into docs/PERFORMANCE.md")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy", path=str(BIN)) or sys.exit("py-spy is needed (requirements-dev.txt)")
    wrk_binary = ensure_wrk()

    home = Path(tempfile.mkdtemp(prefix="penguin-profile-"))
    server = Server(
        "penguin-serve",
        bentoml_serve(args.service_venv, "service:PenguinClassifier"),
        {"BENTOML_HOME": str(home), "PENGUIN_WORKERS": "1", "PENGUIN_LOG_SUCCESSES": "false"},  # as on Cloud Run
    )
    try:
        prepare_model(home)
        server.start()
        worker = max(psutil.Process(server.process.pid).children(recursive=True), key=lambda p: p.memory_info().rss)
        body = json.dumps(EXAMPLE)
        wrk(wrk_binary, server, "/predict", body, 16, 2)  # warm-up
        load = threading.Thread(target=wrk, args=(wrk_binary, server, "/predict", body, 64, args.seconds + 4))
        load.start()
        with tempfile.NamedTemporaryFile(suffix=".txt") as raw:
            subprocess.run(
                [py_spy, "record", "--pid", str(worker.pid), "--native", "--rate", "100"]
                + ["--duration", str(args.seconds), "--format", "raw", "--output", raw.name],
                check=True,
                capture_output=True,
            )
            figures = {
                "measured_on": date.today().isoformat(),
                "seconds": args.seconds,
                "connections": 64,
                "workers": 1,
                "shares": shares(Path(raw.name).read_text()),
            }
        load.join()
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)

    print(table(figures))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
    if args.page:
        replace_section("make profile: table", table(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
