"""Request limits of the API routes: body size (413) and in-flight requests per worker (429).

The batch size limit lives in the request schema (422), the request timeout in BentoML's traffic settings
(504); all of them are configured in settings.py.
"""

from __future__ import annotations

from .http import ASGIApp, Message, Receive, Scope, Send, send_json


class RequestLimits:
    def __init__(self, app: ASGIApp, api_paths: tuple[str, ...], max_body_bytes: int, max_in_flight: int) -> None:
        self.app = app
        self.api_paths = frozenset(api_paths)
        self.max_body_bytes = max_body_bytes
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.api_paths:
            return await self.app(scope, receive, send)
        if self.in_flight >= self.max_in_flight:
            return await send_json(send, 429, {"error": f"too many requests in flight (limit {self.max_in_flight} "
                                               "per worker): retry shortly"}, [(b"retry-after", b"1")])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            return await send_json(send, 400, {"error": "invalid Content-Length header"})
        if declared is not None and int(declared) > self.max_body_bytes:
            return await self._too_large(send)

        self.in_flight += 1
        try:
            body = bytearray()
            more = True
            while more:  # read it all here, so that an undeclared (chunked) body is limited too
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > self.max_body_bytes:
                    return await self._too_large(send)
            await self.app(scope, _replay(bytes(body), receive), send)
        finally:
            self.in_flight -= 1

    async def _too_large(self, send: Send) -> None:
        await send_json(send, 413, {"error": f"request body larger than {self.max_body_bytes} bytes"})


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
