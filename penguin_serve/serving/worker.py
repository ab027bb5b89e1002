"""What each worker process sets up once, when it starts (the service's __init__): logging and the garbage
collector. `make bench`'s BentoML floor sets the same garbage collector."""

from __future__ import annotations

import gc
import logging

from ..settings import Settings
from . import request_log


def configure_worker(settings: Settings) -> None:
    logging.getLogger("penguin_serve").setLevel(logging.INFO)
    request_log.configure(settings.log_level)
    configure_garbage_collector(settings.gc_young_allocations)


def configure_garbage_collector(young_allocations: int) -> None:
    """Full garbage collections pause every request in flight and set the tail (docs/PERFORMANCE.md, "Where
    the tail comes from"). The ~100k objects of start-up leave their scans (gc.freeze). Fewer young
    collections promote fewer objects of requests in flight to the old generation, whose growth is what
    triggers a full collection (CPython 3.11 counts them even after they die)."""
    gc.freeze()
    gc.set_threshold(young_allocations)  # the older generations' thresholds stay as they are
