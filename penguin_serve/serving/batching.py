"""One model call, and one pass of answer building, for all the requests a worker has ready at the same moment.

XGBoost's predict has a fixed cost per call whether it gets 1 row or 30, and so has each numpy step of building
the answers (docs/PERFORMANCE.md): under concurrency, one call per request would spend most of the CPU on that
overhead. Requests that submit rows in the same event-loop iteration are answered together; the flush is
scheduled with call_soon, so a request never waits for later ones and a lone request is answered as soon as
its own turn ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import numpy as np

Output = TypeVar("Output")


class MicroBatcher(Generic[Output]):
    def __init__(self, run: Callable[[np.ndarray], Output], split: Callable[[Output, int, int], Any]) -> None:
        """run: the output for a matrix of rows; split(output, start, end): the part of it for rows start:end."""
        self._run = run
        self._split = split
        self._pending: list[tuple[np.ndarray, asyncio.Future]] = []

    async def submit(self, rows: np.ndarray) -> Any:
        """run's output for these rows, computed together with the other rows submitted meanwhile."""
        loop = asyncio.get_running_loop()
        if not self._pending:
            loop.call_soon(self._flush)
        future = loop.create_future()
        self._pending.append((rows, future))
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        try:
            output = self._run(np.concatenate([rows for rows, _ in pending]))
        except Exception as error:  # every waiting request fails with it; the next flush starts afresh
            for _, future in pending:
                if not future.done():
                    future.set_exception(error)
            return
        start = 0
        for rows, future in pending:
            end = start + len(rows)
            if not future.done():  # done: the request was cancelled (client gone, timeout) while it waited
                future.set_result(self._split(output, start, end))
            start = end


def slice_rows(arrays: tuple[np.ndarray, ...], start: int, end: int) -> tuple[np.ndarray, ...]:
    """A split for outputs that are arrays with one row per input row."""
    return tuple(array[start:end] for array in arrays)
