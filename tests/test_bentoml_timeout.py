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


def test_a_slow_request_still_gets_bentomls_504_and_its_handler_is_cancelled():
    seen: list[str] = []

    async def run() -> tuple[list[dict], list[str]]:
        async def slow(scope, receive, send):
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise
            seen.append("ran to the end")

        sent: list[dict] = []

        async def send(message):
            sent.append(message)

        await CancellingTimeoutMiddleware(slow, timeout=0.2)(
            {"type": "http", "method": "GET", "path": "/", "headers": []}, None, send
        )
        await asyncio.sleep(0.1)
        return sent, list(seen)  # before asyncio.run cancels what is left: a handler still running shows nothing

    (start, body), seen_then = asyncio.run(run())
    assert start["status"] == 504 and body["body"] == b'{"error":"Not able to process the request in 0.2 seconds"}'
    assert seen_then == ["cancelled"]


def test_a_request_that_ends_without_an_answer_ends_at_once_and_leaves_no_timer():
    async def run() -> tuple[float, int]:
        async def silent(scope, receive, send):  # ends without sending: a disconnected client, say
            return None

        before = live_timers()
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(
            CancellingTimeoutMiddleware(silent, timeout=30)(
                {"type": "http", "method": "GET", "path": "/", "headers": []}, None, None
            ),
            timeout=5,
        )
        return asyncio.get_running_loop().time() - started, live_timers() - before

    took_s, left = asyncio.run(run())
    assert took_s < 1 and left == 0


@pytest.mark.parametrize("changed", ["__version__", "source"])
def test_the_patch_stays_out_where_bentoml_is_not_the_one_it_was_checked_against(monkeypatch, caplog, changed):
    monkeypatch.setattr(traffic, "TimeoutMiddleware", bentoml_timeout.UPSTREAM)
    if changed == "__version__":
        monkeypatch.setattr(bentoml, "__version__", "1.4.99")
    else:
        monkeypatch.setattr(bentoml_timeout, "CHECKED_SOURCE_SHA256", "0" * 64)
    assert bentoml_timeout.install() is False
    assert traffic.TimeoutMiddleware is bentoml_timeout.UPSTREAM
    assert caplog.messages == [
        f"BentoML {bentoml.__version__}'s TimeoutMiddleware is not the one penguin_serve/serving/bentoml_timeout.py was "
        "checked against: keeping BentoML's own (its request timers are not cancelled)"
    ]


def test_the_patch_goes_in_where_bentoml_is_the_one_it_was_checked_against(monkeypatch):
    monkeypatch.setattr(traffic, "TimeoutMiddleware", bentoml_timeout.UPSTREAM)
    assert bentoml_timeout.install() is True
    assert traffic.TimeoutMiddleware is CancellingTimeoutMiddleware


def test_lifespan_passes_through_untimed():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    asyncio.run(CancellingTimeoutMiddleware(app, timeout=0.01)({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]
