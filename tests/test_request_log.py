"""Which requests get a log line: errors always (4xx WARNING with the rejected fields' names, 5xx ERROR),
successes only where log_successes is on, which is the default everywhere but on Cloud Run (K_SERVICE set).
Every answer carries its request id."""

import asyncio
import json
import logging

import pytest

from penguin_serve.serving.request_log import ACCESS_LOG, RequestLog
from penguin_serve.settings import Settings


def test_success_lines_are_on_by_default_and_off_on_cloud_run():
    assert Settings.from_env({}).log_successes is True
    assert Settings.from_env({"K_SERVICE": "penguin-serve"}).log_successes is False
    assert Settings.from_env({"K_SERVICE": "penguin-serve", "PENGUIN_LOG_SUCCESSES": "true"}).log_successes is True
    assert Settings.from_env({"PENGUIN_LOG_SUCCESSES": "false"}).log_successes is False


def answer_with(status: int, body: dict):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    return app


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.entries: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append({"level": record.levelname, **json.loads(record.getMessage())})


def logged(log_successes: bool, status: int, body: dict) -> tuple[list[dict], dict]:
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": [(b"x-request-id", b"abc")], "query_string": b""}
    lines, level, propagate = Lines(), ACCESS_LOG.level, ACCESS_LOG.propagate
    ACCESS_LOG.addHandler(lines)
    ACCESS_LOG.setLevel(logging.INFO)
    ACCESS_LOG.propagate = False
    try:
        asyncio.run(RequestLog(answer_with(status, body), None, log_successes)(scope, receive, send))
    finally:
        ACCESS_LOG.removeHandler(lines)
        ACCESS_LOG.setLevel(level)
        ACCESS_LOG.propagate = propagate
    return lines.entries, dict(sent[0]["headers"])


@pytest.mark.parametrize("log_successes", [True, False])
def test_errors_always_get_a_line_with_the_rejected_fields(log_successes):
    rejected = {"error": "validation failed", "detail": [{"field": "sex", "msg": "x"}, {"field": "island", "msg": "y"}]}
    [entry], headers = logged(log_successes, 422, rejected)
    assert (entry["severity"], entry["requestId"], entry["httpRequest"]["status"]) == ("WARNING", "abc", 422)
    assert (entry["error"], entry["invalidFields"]) == ("validation failed", ["island", "sex"])
    [entry], _ = logged(log_successes, 503, {"error": "model is still loading; retry shortly"})
    assert (entry["severity"], entry["error"]) == ("ERROR", "model is still loading; retry shortly")
    assert headers[b"x-request-id"] == b"abc"


def test_a_success_gets_a_line_only_where_success_lines_are_on():
    entries, headers = logged(True, 200, {"prediction": "Adelie"})
    assert [e["severity"] for e in entries] == ["INFO"] and "invalidFields" not in entries[0]
    entries, headers = logged(False, 200, {"prediction": "Adelie"})
    assert entries == [] and headers[b"x-request-id"] == b"abc"  # the id is still echoed
