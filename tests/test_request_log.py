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
        await receive()  # the body, as a route reads it
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    return app


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.entries: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append({"level": record.levelname, **json.loads(record.getMessage())})


def logged(
    log_successes: bool, status: int, body: dict, project: str | None = None, level: int = logging.INFO, **scope_fields
) -> tuple[list[dict], dict]:
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": [(b"x-request-id", b"abc")], "query_string": b""}
    scope.update(scope_fields)
    lines, old_level, propagate = Lines(), ACCESS_LOG.level, ACCESS_LOG.propagate
    ACCESS_LOG.addHandler(lines)
    ACCESS_LOG.setLevel(level)
    ACCESS_LOG.propagate = False
    try:
        asyncio.run(RequestLog(answer_with(status, body), project, log_successes)(scope, receive, send))
    finally:
        ACCESS_LOG.removeHandler(lines)
        ACCESS_LOG.setLevel(old_level)
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


def test_a_line_is_cloud_loggings_structured_entry_with_the_request_and_its_trace():
    """Every field Cloud Logging reads (httpRequest, trace, span, sampling), from one request; at DEBUG also its body."""
    headers = [
        (b"x-request-id", b"abc"),
        (b"user-agent", b"curl/8.5"),
        (b"x-cloud-trace-context", b"105445aa7843bc8bf206b12000100000/255;o=1"),
    ]
    scope = {"headers": headers, "query_string": b"debug=1", "client": ("10.0.0.7", 5123), "http_version": "2"}
    [entry], _ = logged(True, 200, {"prediction": "Adelie"}, "my-project", logging.DEBUG, **scope)
    latency = entry["httpRequest"].pop("latency")
    assert latency.endswith("s") and 0 <= float(latency[:-1]) < 1
    assert entry.pop("message") == f"POST /predict 200 {float(latency[:-1]) * 1000:.1f} ms"
    assert entry == {
        "level": "INFO",
        "severity": "INFO",
        "requestId": "abc",
        "httpRequest": {
            "requestMethod": "POST",
            "requestUrl": "/predict?debug=1",
            "status": 200,
            "responseSize": str(len(json.dumps({"prediction": "Adelie"}))),
            "userAgent": "curl/8.5",
            "remoteIp": "10.0.0.7",
            "protocol": "HTTP/2",
        },
        "logging.googleapis.com/trace": "projects/my-project/traces/105445aa7843bc8bf206b12000100000",
        "logging.googleapis.com/spanId": f"{255:016x}",
        "logging.googleapis.com/trace_sampled": True,
        "requestBody": "{}",
    }
    [bare], _ = logged(True, 200, {}, None)  # no query, agent, client, trace or project; not at DEBUG
    assert bare["httpRequest"]["requestUrl"] == "/predict" and bare["httpRequest"]["userAgent"] == ""
    assert bare["httpRequest"]["remoteIp"] == "" and bare["httpRequest"]["protocol"] == "HTTP/1.1"
    assert not {"requestBody", "logging.googleapis.com/trace"} & set(bare)
    [traced], _ = logged(True, 200, {}, None, headers=[(b"x-cloud-trace-context", b"105445aa7843bc8bf206b12000100000")])
    assert traced["logging.googleapis.com/trace"] == "105445aa7843bc8bf206b12000100000"
    assert not {"logging.googleapis.com/spanId", "logging.googleapis.com/trace_sampled"} & set(traced)


@pytest.mark.parametrize(("status", "severity"), [(399, "INFO"), (400, "WARNING"), (499, "WARNING"), (500, "ERROR")])
def test_the_severity_follows_the_status_class(status, severity):
    [entry], _ = logged(True, status, {"error": "x"} if status >= 400 else {})
    assert (entry["severity"], entry["level"]) == (severity, severity)
