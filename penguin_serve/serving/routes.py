"""The prediction endpoints over HTTP (POST /predict, /predict_batch and /explain: endpoints.ENDPOINTS), each
answered in one ASGI step.

From the socket to the answer: the limits (429 in-flight, 415 content type, 413 body size), the body read
once, validated from JSON bytes by the endpoint's own pydantic type (400 malformed, 422 per field), the
endpoint's answer (503 until the model is ready), serialized in one call. BentoML's own path for these
routes (IO descriptors, validating in Python mode, serializing twice, a tracing span) cost more CPU than the
model (docs/PERFORMANCE.md); the typed BentoML methods in service.py call the same endpoint answers for
in-process callers and define the typed API.
"""

from __future__ import annotations

from pydantic import ValidationError

from ..contract import BATCH_FORMS, field_errors
from .endpoints import Endpoint
from .http import ASGIApp, Receive, Scope, Send, send_json
from .metrics import record_validation_failures
from .predictor import NotReady, Predictor

JSON_MEDIA_TYPE = b"application/json"
EMPTY_BODY = {"error": "empty request body: send a JSON document (Content-Type: application/json)"}
RETRY_SHORTLY = [(b"retry-after", b"1")]


class ApiRoutes:
    def __init__(
        self,
        app: ASGIApp,
        predictor: Predictor,
        endpoints: dict[str, Endpoint],
        max_body_bytes: int,
        max_in_flight: int,
    ) -> None:
        self.app = app
        self.predictor = predictor
        self.endpoints = endpoints
        self.max_body_bytes = max_body_bytes
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.too_large = {"error": f"request body larger than {max_body_bytes} bytes"}
        self.too_many = {"error": f"too many requests in flight (limit {max_in_flight} per worker): retry shortly"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.endpoints.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if endpoint is None:
            return await self.app(scope, receive, send)
        if self.in_flight >= self.max_in_flight:
            return await send_json(send, 429, self.too_many, RETRY_SHORTLY)
        headers = dict(scope["headers"])
        media_type = headers.get(b"content-type", JSON_MEDIA_TYPE).split(b";")[0].strip().lower()
        if media_type != JSON_MEDIA_TYPE:
            message = f"unsupported content type '{media_type.decode(errors='replace')}': send application/json"
            return await send_json(send, 415, {"error": message})
        declared = headers.get(b"content-length")
        if declared is not None and not declared.isdigit():
            return await send_json(send, 400, {"error": "invalid Content-Length header"})
        if declared is not None and int(declared) > self.max_body_bytes:
            return await send_json(send, 413, self.too_large)

        self.in_flight += 1
        try:
            await self._answer(endpoint, receive, send)
        finally:
            self.in_flight -= 1

    async def _answer(self, endpoint: Endpoint, receive: Receive, send: Send) -> None:
        body = bytearray()
        more = True
        while more:  # an undeclared (chunked) body is limited too
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                return await send_json(send, 413, self.too_large)
        if not body:
            return await send_json(send, 400, EMPTY_BODY)
        try:
            request = endpoint.parse(body)
        except ValidationError as error:
            return await send_json(send, *invalid_body(error))
        try:
            answer = await endpoint.answer(self.predictor, request)
        except NotReady as error:
            return await send_json(send, 503, {"error": error.message}, RETRY_SHORTLY)
        await send_json(send, 200, answer)


def unserved_apis(typed_routes: set[str], endpoints: dict[str, Endpoint]) -> list[str]:
    """What keeps the typed API and the HTTP routes from being the same set: a `@bentoml.api` route that
    ApiRoutes does not answer (BentoML would, with its 400 instead of this API's 422, missing from /docs.json),
    or an endpoint without its typed method (BentoML's clients would not see it). Empty when they agree."""
    problems = [
        f"@bentoml.api route {route} has no Endpoint: add one to ENDPOINTS in penguin_serve/serving/endpoints.py "
        "(path, request and response types, answer) so that the HTTP routes answer it and /docs.json documents it"
        for route in sorted(typed_routes - set(endpoints))
    ]
    problems += [
        f"Endpoint {path} has no typed method: add a @bentoml.api(route={path!r}) method to service.py that "
        "returns its answer, for BentoML's clients and in-process callers"
        for path in sorted(set(endpoints) - typed_routes)
    ]
    return problems


def invalid_body(error: ValidationError) -> tuple[int, dict]:
    """400 for a body that is not JSON at all, else 422 with one entry per invalid field."""
    errors = error.errors(include_url=False, include_context=False, include_input=False)
    malformed = next((e for e in errors if e["type"] == "json_invalid"), None)
    if malformed is not None:
        return 400, {"error": f"malformed JSON: {malformed['msg']}"}
    for entry in errors:  # a batch's errors start with its form's name: the client needs only index and field
        if entry["loc"][:1] and entry["loc"][0] in BATCH_FORMS:
            entry["loc"] = entry["loc"][1:]
    detail = field_errors(errors)
    record_validation_failures(entry["field"] for entry in detail)
    return 422, {"error": "validation failed", "detail": detail}
