"""Injected by `make bench` (PYTHONPATH) into penguin-serve's processes for the memory and GC measurement only:
every second, each process writes its live object count (gc.get_objects()), resident memory and the garbage
collector's pauses by generation to $PENGUIN_PROBE_DIR/<pid>.json. Nothing in the service imports it."""

import gc
import json
import os
import threading
import time

_pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
_started = [0.0]


def _on_collection(phase: str, info: dict) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _pauses[info["generation"]].append(time.perf_counter() - _started[0])


def _report(directory: str) -> None:
    path = os.path.join(directory, f"{os.getpid()}.json")
    while True:
        time.sleep(1)
        with open("/proc/self/statm") as statm:
            rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        sample = {
            "objects": len(gc.get_objects()),
            "rss_mb": rss / 2**20,
            "gc": {str(generation): {"count": len(p), "max_ms": 1000 * max(p, default=0), "total_ms": 1000 * sum(p)}
                   for generation, p in _pauses.items()},
        }  # fmt: skip
        with open(path + ".tmp", "w") as out:
            json.dump(sample, out)
        os.replace(path + ".tmp", path)


if os.environ.get("PENGUIN_PROBE_DIR"):
    gc.callbacks.append(_on_collection)
    threading.Thread(target=_report, args=(os.environ["PENGUIN_PROBE_DIR"],), daemon=True).start()
