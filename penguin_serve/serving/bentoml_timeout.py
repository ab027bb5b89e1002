"""BentoML's request timeout without its uncancelled timer: the one patch of a library's internals here.

BentoML's `TimeoutMiddleware` (bentoml/_internal/server/http/traffic.py) schedules `loop.call_later(timeout,
...)` for every request and never cancels it, so a worker at N requests/s holds N x 30 s live timers, each
with its future, and full garbage collections grow long enough to set the tail (docs/PERFORMANCE.md, "The
request timer"). The same code is in BentoML 1.4.39, 1.4.40 and upstream main. This replacement cancels the
timer once the response starts or the request ends; otherwise it behaves the same: the same 504 body after
`traffic.timeout`, websockets timed too, lifespan passed through. docs/PERFORMANCE.md has the upstream patch.

It applies only where BentoML's version and the replaced class's source are the ones it was checked against
(tests/test_bentoml_timeout.py fails when either changes); elsewhere BentoML's own class stays, with a warning.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging

import bentoml
from bentoml._internal.server.http import traffic
from starlette.responses import JSONResponse

logger = logging.getLogger(__name__)

CHECKED_VERSIONS = frozenset({"1.4.39"})
CHECKED_SOURCE_SHA256 = "4dab3e6bdd06efc590294d89beed9a399be6959b62bce9da024b33292e1be34b"
UPSTREAM = traffic.TimeoutMiddleware


def upstream_source_sha256() -> str:
    return hashlib.sha256(inspect.getsource(UPSTREAM).encode()).hexdigest()


class CancellingTimeoutMiddleware:
    def __init__(self, app, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def timed_out() -> None:
            if not waiter.done():
                waiter.set_exception(asyncio.TimeoutError)

        def answered(_=None) -> None:
            if not waiter.done():
                waiter.set_result(None)
            timer.cancel()

        timer = loop.call_later(self.timeout, timed_out)

        async def _send(message) -> None:
            answered()
            await send(message)

        fut = asyncio.ensure_future(self.app(scope, receive, _send))
        fut.add_done_callback(answered)
        try:
            await waiter
        except TimeoutError:
            if fut.cancel():
                resp = JSONResponse({"error": f"Not able to process the request in {self.timeout} seconds"}, status_code=504)
                await resp(scope, receive, send)
        else:
            await fut


def install() -> bool:
    """Replaces BentoML's class where it was checked; True when installed. Call before BentoML builds its app
    (service.py does, at import, in every worker)."""
    if bentoml.__version__ not in CHECKED_VERSIONS or upstream_source_sha256() != CHECKED_SOURCE_SHA256:
        logger.warning(
            "BentoML %s's TimeoutMiddleware is not the one penguin_serve/serving/bentoml_timeout.py was checked "
            "against: keeping BentoML's own (its request timers are not cancelled)",
            bentoml.__version__,
        )
        return False
    traffic.TimeoutMiddleware = CancellingTimeoutMiddleware
    return True
