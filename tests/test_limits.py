"""Code: request limits. Body size through the service; the in-flight cap and streamed bodies against the
middleware directly, with an inner app held open (the only way to keep requests in flight on demand)."""

import asyncio
import json

from penguin_serve.limits import RequestLimits
from penguin_serve.settings import SETTINGS

from conftest import ADELIE


def test_body_over_the_limit_is_413_before_parsing(api):
    body = json.dumps([ADELIE] * 40_000).encode()
    assert len(body) > SETTINGS.max_body_bytes
    response = api.post("/predict_batch", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"error": f"request body larger than {SETTINGS.max_body_bytes} bytes"}


def test_cors_is_off_by_default(api):
    response = api.options("/predict", headers={"Origin": "https://example.com", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in response.headers


def run_requests(limits, requests):
    """Drive the middleware with raw ASGI requests [(headers, body chunks)]; statuses in order of start."""

    async def one(headers, chunks):
        sent, queue = [], list(chunks)

        async def receive():
            if queue:
                return {"type": "http.request", "body": queue.pop(0), "more_body": bool(queue)}
            await asyncio.sleep(3600)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "path": "/predict", "headers": headers}
        await limits(scope, receive, send)
        return next(m["status"] for m in sent if m["type"] == "http.response.start")

    async def main():
        tasks = []
        for headers, chunks in requests:
            tasks.append(asyncio.create_task(one(headers, chunks)))
            await asyncio.sleep(0.01)
        release.set()
        return await asyncio.gather(*tasks)

    release = asyncio.Event()

    async def held_app(scope, receive, send):
        await receive()
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    limits.app = held_app
    return asyncio.run(main())


def test_requests_over_the_in_flight_limit_get_429():
    limits = RequestLimits(None, ("/predict",), max_body_bytes=100, max_in_flight=2)
    statuses = run_requests(limits, [([], [b"{}"])] * 3)
    assert statuses == [200, 200, 429]
    assert limits.in_flight == 0


def test_streamed_body_without_length_is_limited_too():
    limits = RequestLimits(None, ("/predict",), max_body_bytes=100, max_in_flight=5)
    statuses = run_requests(limits, [([], [b"x" * 60, b"x" * 60]), ([(b"content-length", b"abc")], [b"{}"])])
    assert statuses == [413, 400]
