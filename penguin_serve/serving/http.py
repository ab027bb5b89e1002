"""ASGI plumbing shared by the service's middlewares: types and JSON answers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pydantic_core

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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
