"""The one patch of BentoML's internals (penguin_serve/serving/bentoml_timeout.py): it is checked against the
installed BentoML, it is what the service's workers run, a request leaves no timer behind, and a slow request
still gets BentoML's 504."""

import asyncio
import gc

import bentoml
import pytest
from bentoml._internal.server.http import traffic

from penguin_serve.serving import bentoml_timeout
from penguin_serve.serving.bentoml_timeout import CancellingTimeoutMiddleware


def test_the_installed_bentoml_is_the_one_the_patch_was_checked_against():
    """Fails on an upgrade of BentoML or a change of its TimeoutMiddleware: look at the new source, check that
    the timer is still never cancelled (else drop the patch), then update the version and the hash."""
    assert bentoml.__version__ in bentoml_timeout.CHECKED_VERSIONS
    assert bentoml_timeout.upstream_source_sha256() == bentoml_timeout.CHECKED_SOURCE_SHA256


def test_the_service_installs_it_before_bentoml_builds_its_app():
    import service  # noqa: F401  (importing the service installs it, as in every worker)

    assert traffic.TimeoutMiddleware is CancellingTimeoutMiddleware


def live_timers() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, asyncio.TimerHandle) and not o.cancelled())


async def serve(middleware, requests: int, answer_after_s: float = 0.0) -> list[dict]:
    async def app(scope, receive, send):
        await asyncio.sleep(answer_after_s)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    wrapped = middleware(app, timeout=30)
    for _ in range(requests):
        await wrapped({"type": "http", "method": "POST", "path": "/predict", "headers": []}, receive, send)
    return sent


@pytest.mark.parametrize("middleware, left", [(bentoml_timeout.UPSTREAM, 1000), (CancellingTimeoutMiddleware, 0)])
def test_a_request_leaves_no_timer_behind(middleware, left):
    async def run() -> int:
        before = live_timers()
        sent = await serve(middleware, 1000)
        assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200] * 1000
        return live_timers() - before

    assert asyncio.run(run()) == left  # BentoML's own keeps one per request for its 30 s


def test_a_slow_request_still_gets_bentomls_504():
    async def run() -> list[dict]:
        async def slow(scope, receive, send):
            await asyncio.sleep(5)

        sent: list[dict] = []

        async def send(message):
            sent.append(message)

        await CancellingTimeoutMiddleware(slow, timeout=0.2)(
            {"type": "http", "method": "GET", "path": "/", "headers": []}, None, send
        )
        return sent

    start, body = asyncio.run(run())
    assert start["status"] == 504 and body["body"] == b'{"error":"Not able to process the request in 0.2 seconds"}'


def test_lifespan_passes_through_untimed():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    asyncio.run(CancellingTimeoutMiddleware(app, timeout=0.01)({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]
