"""What each worker process sets up once, when it starts: the service and `make bench`'s BentoML floor call it."""

from __future__ import annotations

import gc


def configure_garbage_collector(young_allocations: int) -> None:
    """Full garbage collections pause every request in flight and set the tail (docs/PERFORMANCE.md, "Where
    the tail comes from"). The ~100k objects of start-up leave their scans (gc.freeze). Fewer young
    collections promote fewer objects of requests in flight to the old generation, whose growth is what
    triggers a full collection (CPython 3.11 counts them even after they die)."""
    gc.freeze()
    gc.set_threshold(young_allocations, *gc.get_threshold()[1:])
