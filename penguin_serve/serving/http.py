"""ASGI plumbing shared by the service's middlewares: types, JSON answers, pydantic errors as field entries."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import pydantic_core

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def field_errors(pydantic_errors: list[dict]) -> list[dict]:
    """Pydantic errors as {"field", "message", "type"} entries; in a batch also the row's "index" (records
    are located as (index, field), columns as (field, index))."""
    entries = []
    for error in pydantic_errors:
        location = list(error["loc"])
        entry: dict[str, Any] = {}
        index = next((part for part in location if isinstance(part, int)), None)
        if index is not None:
            entry["index"] = index
            location.remove(index)
        entry["field"] = ".".join(str(part) for part in location) or "body"
        entry["message"] = error["msg"].removeprefix("Value error, ")
        entry["type"] = error["type"]
        entries.append(entry)
    return entries


async def send_json(send: Send, status: int, payload: Any, headers: list | None = None) -> None:
    body = pydantic_core.to_json(payload)
    kept = [(k, v) for k, v in headers or [] if k.lower() not in (b"content-length", b"content-type")]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*kept, (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
