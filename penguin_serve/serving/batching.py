"""One model call for all the requests a worker has ready at the same moment.

XGBoost's predict has a fixed cost of ~0.3 ms per call, whether it gets 1 row or 30 (docs/PERFORMANCE.md), so
under concurrency one call per request spends most of the CPU on that overhead. Requests that submit rows
in the same event-loop iteration are predicted together; the flush is scheduled with call_soon, so a
request never waits for later ones and a lone request is answered as soon as its own turn ends.
"""

from __future__ import annotations

import asyncio
from typing import Callable

import numpy as np


class MicroBatcher:
    def __init__(self, run: Callable[[np.ndarray], np.ndarray]) -> None:
        """run: one output row per input row (the model's class probabilities)."""
        self._run = run
        self._pending: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []

    async def submit(self, rows: np.ndarray) -> np.ndarray:
        """run's output for these rows, computed together with the other rows submitted meanwhile."""
        loop = asyncio.get_running_loop()
        if not self._pending:
            loop.call_soon(self._flush)
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((rows, future))
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        try:
            outputs = self._run(np.concatenate([rows for rows, _ in pending]))
        except Exception as error:  # every waiting request fails with it; the next flush starts afresh
            for _, future in pending:
                if not future.done():
                    future.set_exception(error)
            return
        start = 0
        for rows, future in pending:
            end = start + len(rows)
            if not future.done():  # done: the request was cancelled (client gone, timeout) while it waited
                future.set_result(outputs[start:end])
            start = end
