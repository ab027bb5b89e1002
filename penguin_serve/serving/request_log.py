"""JSON lines on stdout in Cloud Logging's structured format (severity, httpRequest, trace), and a request id
echoed in the X-Request-ID response header on every answer.

Which requests get a line: every 4xx (WARNING, with the invalid fields' names) and 5xx (ERROR); successes
(INFO) only where log_successes is on, by default everywhere but on Cloud Run, whose own request log already
has an entry for each request. Request bodies (input values) only at DEBUG."""

from __future__ import annotations

import logging
import os
import re
import sys
import time

import pydantic_core

from .http import ASGIApp, Message, Receive, Scope, Send

ACCESS_LOG = logging.getLogger("penguin_serve.access")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TRACE_CONTEXT = re.compile(r"([0-9a-fA-F]{32})(?:/(\d+))?(?:;o=([01]))?")
_LEVELS = {"INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR}
QUIET_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/health", "/metrics"})  # probes and scrapes: no line each


def configure(level: str) -> None:
    """Lines go to stdout as bare JSON, where Cloud Run's agent parses them."""
    if not ACCESS_LOG.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        ACCESS_LOG.addHandler(handler)
        ACCESS_LOG.propagate = False
    ACCESS_LOG.setLevel(level)


class RequestLog:
    def __init__(self, app: ASGIApp, project: str | None, log_successes: bool = True) -> None:
        self.app = app
        self.project = project
        self.log_successes = log_successes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in QUIET_PATHS:
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        given_id = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given_id if _REQUEST_ID.fullmatch(given_id) else os.urandom(16).hex()
        debug = ACCESS_LOG.isEnabledFor(logging.DEBUG)
        body = bytearray()
        answer = bytearray()  # an error's body, for the names of the fields it rejects
        status, size = 500, 0
        started = time.perf_counter()

        async def logged_receive() -> Message:
            message = await receive()
            if debug and message["type"] == "http.request":
                body.extend(message.get("body", b""))
            return message

        async def logged_send(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
                if status >= 400:
                    answer.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, logged_receive, logged_send)
        finally:
            if status >= 400 or self.log_successes:
                latency = time.perf_counter() - started
                self._log(scope, headers, request_id, status, size, latency, body if debug else None, answer)

    def _log(
        self,
        scope: Scope,
        headers: dict,
        request_id: str,
        status: int,
        size: int,
        latency: float,
        body: bytearray | None,
        answer: bytearray,
    ) -> None:
        severity = "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"
        level = _LEVELS[severity]
        if not ACCESS_LOG.isEnabledFor(level):
            return
        query = scope.get("query_string", b"").decode("latin-1")
        entry = {
            "severity": severity,
            "message": f"{scope['method']} {scope['path']} {status} {latency * 1000:.1f} ms",
            "requestId": request_id,
            "httpRequest": {
                "requestMethod": scope["method"],
                "requestUrl": scope["path"] + (f"?{query}" if query else ""),
                "status": status,
                "responseSize": str(size),
                "userAgent": headers.get(b"user-agent", b"").decode("latin-1"),
                "remoteIp": (scope.get("client") or ("", 0))[0],
                "latency": f"{latency:.6f}s",
                "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
            },
            **self._trace(headers.get(b"x-cloud-trace-context", b"").decode("latin-1")),
        }
        if answer:
            entry.update(_error_fields(bytes(answer)))
        if body is not None:
            entry["requestBody"] = body.decode("utf-8", "replace")
        ACCESS_LOG.log(level, pydantic_core.to_json(entry).decode())

    def _trace(self, header: str) -> dict:
        match = _TRACE_CONTEXT.match(header)
        if not match:
            return {}
        trace_id, span, sampled = match.groups()
        fields = {"logging.googleapis.com/trace": f"projects/{self.project}/traces/{trace_id}" if self.project else trace_id}
        if span:
            fields["logging.googleapis.com/spanId"] = f"{int(span):016x}"
        if sampled:
            fields["logging.googleapis.com/trace_sampled"] = sampled == "1"
        return fields


def _error_fields(answer: bytes) -> dict:
    """The error message and the names of the rejected fields, from an error answer's JSON body."""
    try:
        error = pydantic_core.from_json(answer)
    except ValueError:
        return {}
    if not isinstance(error, dict):
        return {}
    fields = {"error": str(error.get("error", ""))}
    detail = error.get("detail")
    if isinstance(detail, list):
        fields["invalidFields"] = sorted({str(entry.get("field")) for entry in detail if isinstance(entry, dict)})
    return fields
