"""The HTTP side of POST /predict and POST /predict_batch, answered in one ASGI step.

BentoML's own request path (IO descriptors, validating in Python mode, validating the answer again and
serializing it twice, a tracing span) cost ~2 ms of CPU per request and 70 ms per 1,000-record batch
(docs/PERFORMANCE.md). This middleware answers the same routes with the same contract: the body is validated from JSON bytes by
the service's own pydantic types, the answers are serialized in one call, and errors are 415 for a body that
is not JSON, 400 for an empty or malformed one, 422 naming each invalid field, 503 until the model is ready.
The service's typed API methods remain the OpenAPI spec and the interface for in-process callers.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Protocol

import numpy as np
from pydantic import TypeAdapter, ValidationError

from .contract import Penguin, PenguinBatch, PenguinColumns, encode, encode_columns, prediction_records
from .http import ASGIApp, Receive, Scope, Send, field_errors, send_json
from .metrics import record_validation_failures

JSON_MEDIA_TYPE = b"application/json"
EMPTY_BODY = {"error": "empty request body: send a JSON document (Content-Type: application/json)"}
NOT_READY = {"error": "model is still loading; retry shortly"}
Shape = Callable[[dict[str, Any]], Any]  # answers in PredictionColumns' shape -> the response body


class Classifier(Protocol):
    model: Any  # None until the model has loaded and passed its self-check

    def classify(self, features: np.ndarray) -> Awaitable[dict[str, Any]]: ...


class PredictionRoutes:
    def __init__(self, app: ASGIApp, classifier: Callable[[], Classifier]) -> None:
        self.app = app
        self.classifier = classifier
        self.parsers: dict[str, Callable[[bytes], tuple[np.ndarray, Shape]]] = {
            "/predict": self._parse_penguin,
            "/predict_batch": self._parse_batch,
        }
        self._penguin = TypeAdapter(Penguin).validate_json
        self._records = TypeAdapter(PenguinBatch).validate_json
        self._columns = TypeAdapter(PenguinColumns).validate_json

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parse = self.parsers.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if parse is None:
            return await self.app(scope, receive, send)

        content_type = dict(scope["headers"]).get(b"content-type", JSON_MEDIA_TYPE)
        media_type = content_type.split(b";")[0].strip().lower()
        if media_type != JSON_MEDIA_TYPE:
            message = f"unsupported content type '{media_type.decode(errors='replace')}': send application/json"
            return await send_json(send, 415, {"error": message})
        body = await read_body(receive)
        if not body:
            return await send_json(send, 400, EMPTY_BODY)
        try:
            features, shape = parse(body)
        except ValidationError as error:
            return await send_json(send, *invalid_body(error))

        classifier = self.classifier()
        if classifier.model is None:
            return await send_json(send, 503, NOT_READY, [(b"retry-after", b"1")])
        await send_json(send, 200, shape(await classifier.classify(features)))

    def _parse_penguin(self, body: bytes) -> tuple[np.ndarray, Shape]:
        return encode([self._penguin(body)]), lambda answers: prediction_records(answers)[0]

    def _parse_batch(self, body: bytes) -> tuple[np.ndarray, Shape]:
        """A JSON object is a columnar batch, answered in columns; anything else is validated as records."""
        if body.lstrip()[:1] == b"{":
            return encode_columns(self._columns(body)), lambda answers: answers
        return encode(self._records(body)), prediction_records


def invalid_body(error: ValidationError) -> tuple[int, dict]:
    """400 for a body that is not JSON at all, else 422 with one entry per invalid field."""
    errors = error.errors(include_url=False, include_context=False, include_input=False)
    malformed = next((e for e in errors if e["type"] == "json_invalid"), None)
    if malformed is not None:
        return 400, {"error": f"malformed JSON: {malformed['msg']}"}
    detail = field_errors(errors)
    record_validation_failures(entry["field"] for entry in detail)
    return 422, {"error": "validation failed", "detail": detail}


async def read_body(receive: Receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)
