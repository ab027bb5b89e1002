"""One model call for all the requests a worker has ready at the same moment.

XGBoost's predict has a fixed cost of ~0.3 ms per call, whether it gets 1 row or 30 (docs/PERFORMANCE.md), so
under concurrency one call per request spends most of the CPU on that overhead. Requests that submit rows
in the same event-loop iteration are predicted together; the flush is scheduled with call_soon, so a
request never waits for later ones and a lone request is answered as soon as its own turn ends.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import numpy as np

Answers = list[dict[str, Any]]


class MicroBatcher:
    def __init__(self, run: Callable[[np.ndarray], Answers]) -> None:
        self._run = run
        self._pending: list[tuple[np.ndarray, asyncio.Future[Answers]]] = []

    async def submit(self, features: np.ndarray) -> Answers:
        """The answers for these feature rows, in order."""
        loop = asyncio.get_running_loop()
        if not self._pending:
            loop.call_soon(self._flush)
        future: asyncio.Future[Answers] = loop.create_future()
        self._pending.append((features, future))
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        try:
            answers = self._run(np.concatenate([features for features, _ in pending]))
        except Exception as error:  # every waiting request fails with it; the next flush starts afresh
            for _, future in pending:
                if not future.done():
                    future.set_exception(error)
            return
        start = 0
        for features, future in pending:
            end = start + len(features)
            if not future.done():  # done: the request was cancelled (client gone, timeout) while it waited
                future.set_result(answers[start:end])
            start = end
