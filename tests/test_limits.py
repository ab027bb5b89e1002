"""Code: request limits. Body size through the service; the in-flight cap and streamed bodies against the
routes directly, with an endpoint held open (the only way to keep requests in flight on demand)."""

import asyncio
import json
from typing import Any

from conftest import ADELIE

from penguin_serve.serving.endpoints import ApiRoute
from penguin_serve.serving.fast_lane import ApiRoutes
from penguin_serve.settings import SETTINGS


def test_body_over_the_limit_is_413_before_parsing(api):
    body = json.dumps([ADELIE] * 40_000).encode()
    assert len(body) > SETTINGS.max_body_bytes
    response = api.post("/predict_batch", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"error": f"request body larger than {SETTINGS.max_body_bytes} bytes"}


def test_cors_is_off_by_default(api):
    response = api.options("/predict", headers={"Origin": "https://example.com", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in response.headers


SERVICE = object()  # the service instance the routes call each method on


def run_requests(max_body_bytes, max_in_flight, requests, answers=None, answer=None):
    """Drive ApiRoutes with raw ASGI requests [(headers, body chunks)] to an endpoint that answers only once
    every request has started (or with `answer`); statuses in order of start (and into `answers`, each
    (status, headers, body) in order of answer). A chunk is the body's bytes or a whole ASGI message."""
    release = asyncio.Event()
    answers = [] if answers is None else answers

    async def held_answer(service, request):
        assert service is SERVICE
        await release.wait()
        return {}

    route = ApiRoute("/predict", Any, Any, "held", "held", answer or held_answer)
    routes = ApiRoutes(None, {"/predict": route}, lambda: SERVICE, max_body_bytes=max_body_bytes, max_in_flight=max_in_flight)

    async def one(headers, chunks):
        sent, queue = [], list(chunks)

        async def receive():
            if queue:
                chunk = queue.pop(0)
                return chunk if isinstance(chunk, dict) else {"type": "http.request", "body": chunk, "more_body": bool(queue)}
            await asyncio.sleep(3600)

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/predict", "headers": headers}
        await routes(scope, receive, send)
        if not sent:
            answers.append(None)
            return None
        start = next(m for m in sent if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        answers.append((start["status"], dict(start["headers"]), body))
        return start["status"]

    async def main():
        tasks = []
        for headers, chunks in requests:
            tasks.append(asyncio.create_task(one(headers, chunks)))
            await asyncio.sleep(0.01)
        release.set()
        return await asyncio.gather(*tasks)

    statuses = asyncio.run(main())
    assert routes.in_flight == 0
    return statuses


def json_answer(status: int, payload: dict, *headers: tuple[bytes, bytes]) -> tuple[int, dict, bytes]:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return status, {**dict(headers), b"content-type": b"application/json", b"content-length": str(len(body)).encode()}, body


def test_requests_over_the_in_flight_limit_get_429():
    answers = []
    assert run_requests(100, 2, [([], [b"{}"])] * 3, answers) == [200, 200, 429]
    refused = {"error": "too many requests in flight (limit 2 per worker): retry shortly"}
    assert answers[0] == json_answer(429, refused, (b"retry-after", b"1"))  # answered first: it waited for nothing


def test_streamed_body_without_length_is_limited_too():
    answers = []
    statuses = run_requests(100, 5, [([], [b"x" * 60, b"x" * 60]), ([(b"content-length", b"abc")], [b"{}"])], answers)
    assert statuses == [413, 400]
    assert sorted(answers) == [
        json_answer(400, {"error": "invalid Content-Length header"}),
        json_answer(413, {"error": "request body larger than 100 bytes"}),
    ]


def test_a_body_of_exactly_the_limit_is_answered():
    body = b'{"x": "' + b"y" * 91 + b'"}'
    assert len(body) == 100
    declared = [(b"content-length", b"100")]
    assert run_requests(100, 5, [(declared, [body]), ([], [body[:50], body[50:]])]) == [200, 200]


def test_asgi_messages_without_body_or_more_body_keys_read_as_empty_and_last():
    """ASGI makes both keys optional (body b"", more_body False)."""
    assert run_requests(
        100, 5, [([], [{"type": "http.request", "more_body": True}, {"type": "http.request", "body": b"{}"}])]
    ) == [200]


def test_a_client_that_disconnects_before_its_body_gets_no_answer():
    answers = []
    assert run_requests(100, 5, [([], [{"type": "http.disconnect"}])], answers) == [None] and answers == [None]


def test_an_undecodable_content_type_is_named_in_its_415():
    answers = []
    assert run_requests(100, 5, [([(b"content-type", b"text/\xff")], [b"{}"])], answers) == [415]
    assert answers == [json_answer(415, {"error": "unsupported content type 'text/\ufffd': send application/json"})]


def test_an_endpoint_not_ready_answers_503_with_retry_after():
    from penguin_serve.serving.predictor import NOT_READY_MESSAGE, NotReady

    async def not_ready(service, request):
        raise NotReady()

    answers = []
    assert run_requests(100, 5, [([], [b"{}"])], answers, answer=not_ready) == [503]
    assert answers == [json_answer(503, {"error": NOT_READY_MESSAGE}, (b"retry-after", b"1"))]


def test_an_answer_has_one_content_type_and_length_whatever_headers_it_is_given():
    from penguin_serve.serving.http import send_json

    sent = []

    async def send(message):
        sent.append(message)

    given = [(b"Content-Length", b"99"), (b"CONTENT-TYPE", b"text/plain"), (b"content-type", b"text/html"), (b"x-kept", b"1")]
    asyncio.run(send_json(send, 200, {"a": 1}, given))
    assert sent[0]["headers"] == [(b"x-kept", b"1"), (b"content-type", b"application/json"), (b"content-length", b"7")]
