"""The HTTP error contract of the API routes, as clients of the earlier FastAPI services expect it.

BentoML answers a validation error with 400 and pydantic's raw error list, parses an unknown content type as
JSON and a form body as a form. This ASGI middleware turns that into: 415 for a body that is not JSON, 400
for an empty or malformed body, and 422 with one entry per invalid field. Successful responses pass through
untouched, so the hot path pays nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

from .metrics import record_validation_failures

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_MEDIA_TYPE = b"application/json"
EMPTY_BODY = {"error": "empty request body: send a JSON document (Content-Type: application/json)"}


def field_errors(pydantic_errors: list[dict]) -> list[dict]:
    """Pydantic errors as {"field", "message"} entries; batch records also get their "index"."""
    entries = []
    for error in pydantic_errors:
        location = list(error.get("loc", ()))
        if location[:1] == ["root"]:  # BentoML wraps a positional-only list body as {"root": [...]}
            location.pop(0)
        entry: dict[str, Any] = {}
        if location and isinstance(location[0], int):
            entry["index"] = location.pop(0)
        entry["field"] = ".".join(str(part) for part in location) or "body"
        entry["message"] = error.get("msg", "invalid").removeprefix("Value error, ")
        entry["type"] = error.get("type", "value_error")
        entries.append(entry)
    return entries


def translate_bad_request(payload: Any, body: bytes) -> tuple[int, dict]:
    """The status and body that replace BentoML's answer to a request that failed parsing or validation."""
    if not body:
        return 400, EMPTY_BODY
    errors = payload.get("detail") if isinstance(payload, dict) else None
    if not isinstance(errors, list):
        if not _is_json(body):  # BentoML's batch path lets json.loads fail into a 500
            return 400, {"error": "malformed JSON: not a JSON document"}
        return 400, payload if isinstance(payload, dict) else {"error": str(payload)}
    malformed = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if malformed is not None:
        return 400, {"error": f"malformed JSON: {malformed.get('msg', '')}"}
    detail = field_errors(errors)
    record_validation_failures(entry["field"] for entry in detail)
    return 422, {"error": "validation failed", "detail": detail}


async def send_json(send: Send, status: int, payload: Any, headers: list | None = None) -> None:
    body = json.dumps(payload).encode()
    kept = [(k, v) for k, v in headers or [] if k.lower() not in (b"content-length", b"content-type")]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*kept, (b"content-type", JSON_MEDIA_TYPE), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ErrorContract:
    def __init__(self, app: ASGIApp, api_paths: tuple[str, ...]) -> None:
        self.app = app
        self.api_paths = frozenset(api_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.api_paths:
            return await self.app(scope, receive, send)

        content_type = dict(scope["headers"]).get(b"content-type", JSON_MEDIA_TYPE)
        media_type = content_type.split(b";")[0].strip().lower()
        if media_type != JSON_MEDIA_TYPE:
            return await send_json(
                send,
                415,
                {"error": f"unsupported content type '{media_type.decode(errors='replace')}': "
                 "send application/json"},
            )

        request_body: list[bytes] = []  # references only: joined only on the error path
        held_start: Message | None = None
        held_body: list[bytes] = []
        body = b""

        async def keeping_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request_body.append(message.get("body", b""))
            return message

        async def translating_send(message: Message) -> None:
            nonlocal held_start, body
            if message["type"] == "http.response.start" and message["status"] in (400, 500):
                body = b"".join(request_body)
            if message["type"] == "http.response.start" and (
                message["status"] == 400 or (message["status"] == 500 and not _is_json(body))
            ):
                # 400: BentoML's validation answer. 500 for a body that is not JSON: BentoML's batch path
                # parses with json.loads and lets the error escape; it is a client error.
                held_start = message
            elif held_start is None:
                await send(message)
            elif message["type"] == "http.response.body":
                held_body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    try:
                        payload = json.loads(b"".join(held_body))
                    except ValueError:
                        payload = {"error": b"".join(held_body).decode(errors="replace")}
                    status, translated = translate_bad_request(payload, body)
                    await send_json(send, status, translated, held_start.get("headers"))

        await self.app(scope, keeping_receive, translating_send)


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


class ClientErrorLogFilter:
    """BentoML logs every request that fails validation (or, on the batch path, JSON parsing) as an ERROR
    with a traceback. Invalid client input is not a server fault: keep the line, at INFO, without it."""

    def filter(self, record) -> bool:
        from pydantic import ValidationError

        # Decode errors: BentoML's batch path parses with json.loads before validating.
        client_errors = (ValidationError, json.JSONDecodeError, UnicodeDecodeError)
        if record.exc_info and isinstance(record.exc_info[1], client_errors):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg = "Invalid input on %s [%s]"
            record.exc_info = record.exc_text = None
        return True
