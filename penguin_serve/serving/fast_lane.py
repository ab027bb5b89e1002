"""The typed methods of service.py over HTTP (POST /predict, /predict_batch and /explain), each answered in one
ASGI step.

From the socket to the answer: the limits (429 in-flight, 415 content type, 413 body size), the body read
once, validated from JSON bytes by the method's own request type (400 malformed, 422 per field), the method
called with it (503 until the model is ready), its answer serialized in one call. BentoML's own path for
these routes (IO descriptors, validating in Python mode, serializing twice, a tracing span) cost more CPU than
the model (docs/PERFORMANCE.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bentoml.exceptions import BentoMLException
from pydantic import ValidationError

from ..contract import FORM_TAGS, field_errors
from .endpoints import ApiRoute
from .http import ASGIApp, Receive, Scope, Send, send_json
from .metrics import record_validation_failures

JSON_MEDIA_TYPE = b"application/json"
EMPTY_BODY = {"error": "empty request body: send a JSON document (Content-Type: application/json)"}
RETRY_SHORTLY = [(b"retry-after", b"1")]


class ApiRoutes:
    def __init__(
        self,
        app: ASGIApp,
        routes: dict[str, ApiRoute],
        service: Callable[[], Any],
        max_body_bytes: int,
        max_in_flight: int,
    ) -> None:
        self.app = app
        self.routes = {path: route for path, route in routes.items() if route.pattern is None}
        self.with_parameters = [route for route in routes.values() if route.pattern is not None]
        self.service = service  # the service instance the methods are called on (bentoml.get_current_service)
        self.max_body_bytes = max_body_bytes
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.too_large = {"error": f"request body larger than {max_body_bytes} bytes"}
        self.too_many = {"error": f"too many requests in flight (limit {max_in_flight} per worker): retry shortly"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route, parameters = self._route(scope) if scope["type"] == "http" and scope["method"] == "POST" else (None, None)
        if route is None:
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
            await self._answer(route, parameters, receive, send)
        finally:
            self.in_flight -= 1

    def _route(self, scope: Scope) -> tuple[ApiRoute | None, dict[str, str] | None]:
        """The route of a POST's path, and the values of its path's parameters."""
        route = self.routes.get(scope["path"])
        if route is not None:
            return route, None
        for route in self.with_parameters:
            matched = route.pattern.match(scope["path"])
            if matched:
                return route, matched.groupdict()
        return None, None

    async def _answer(self, route: ApiRoute, parameters: dict[str, str] | None, receive: Receive, send: Send) -> None:
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
            request = route.parse(body, parameters)
        except ValidationError as error:
            return await send_json(send, *(route.rejection or invalid_body)(error))
        try:
            answer = await route.call(self.service(), request)
        except BentoMLException as error:  # NotReady's 503, a protocol's 400 or 404: the status it names
            status = int(error.error_code)
            return await send_json(send, status, {"error": error.message}, RETRY_SHORTLY if status == 503 else None)
        await send_json(send, 200, answer)


def invalid_body(error: ValidationError) -> tuple[int, dict]:
    """400 for a body that is not JSON at all, else 422 with one entry per invalid field."""
    errors = error.errors(include_url=False, include_context=False, include_input=False)
    malformed = next((e for e in errors if e["type"] == "json_invalid"), None)
    if malformed is not None:
        return 400, {"error": f"malformed JSON: {malformed['msg']}"}
    for entry in errors:  # a batch's errors start with its form's name: the client needs only index and field
        if entry["loc"][:1] and entry["loc"][0] in FORM_TAGS:
            entry["loc"] = entry["loc"][1:]
    detail = field_errors(errors)
    record_validation_failures(entry["field"] for entry in detail)
    return 422, {"error": "validation failed", "detail": detail}
