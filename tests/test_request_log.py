"""Which requests get a log line: errors always (4xx WARNING with the rejected fields' names, 5xx ERROR),
successes only where log_successes is on, which is the default everywhere but on Cloud Run (K_SERVICE set).
Every answer carries its request id."""

import asyncio
import json
import logging
import re

import pytest

from penguin_serve.serving import request_log
from penguin_serve.serving.request_log import ACCESS_LOG, RequestLog
from penguin_serve.settings import Settings


def test_success_lines_are_on_by_default_and_off_on_cloud_run():
    assert Settings.from_env({}).log_successes is True
    assert Settings.from_env({"K_SERVICE": "penguin-serve"}).log_successes is False
    assert Settings.from_env({"K_SERVICE": "penguin-serve", "PENGUIN_LOG_SUCCESSES": "true"}).log_successes is True
    assert Settings.from_env({"PENGUIN_LOG_SUCCESSES": "false"}).log_successes is False


def answer_with(status: int, body: dict | list[dict], delay_s: float = 0.0):
    """An app that reads the request and answers `body` (JSON), or sends `body`'s ASGI messages after the start."""

    async def app(scope, receive, send):
        await receive()  # the body, as a route reads it
        await asyncio.sleep(delay_s)
        await send({"type": "http.response.start", "status": status, **({} if isinstance(body, list) else {"headers": []})})
        for message in body if isinstance(body, list) else [{"type": "http.response.body", "body": json.dumps(body).encode()}]:
            await send(message)

    return app


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.entries: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append({"level": record.levelname, **json.loads(record.getMessage())})


def logged(
    log_successes: bool,
    status: int,
    body: dict | list[dict],
    project: str | None = None,
    level: int = logging.INFO,
    request: dict | None = None,
    app=None,
    **scope_fields,
) -> tuple[list[dict], dict]:
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return request or {"type": "http.request", "body": b"{}", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": [(b"x-request-id", b"abc")], "query_string": b""}
    scope.update(scope_fields)
    scope = {key: value for key, value in scope.items() if value is not None}
    lines, old_level, propagate = Lines(), ACCESS_LOG.level, ACCESS_LOG.propagate
    ACCESS_LOG.addHandler(lines)
    ACCESS_LOG.setLevel(level)
    ACCESS_LOG.propagate = False
    try:
        asyncio.run(RequestLog(app or answer_with(status, body), project, log_successes)(scope, receive, send))
    finally:
        ACCESS_LOG.removeHandler(lines)
        ACCESS_LOG.setLevel(old_level)
        ACCESS_LOG.propagate = propagate
    return lines.entries, dict(sent[0]["headers"]) if sent else {}


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
    # Without success lines, a 4xx or 5xx still gets its line, with its error; a 399 none.
    entries, _ = logged(False, status, {"error": "x"})
    assert [(e["severity"], e["error"]) for e in entries] == ([] if status < 400 else [(severity, "x")])


def test_the_line_says_how_long_the_answer_took_in_milliseconds():
    [entry], _ = logged(True, 200, {}, app=answer_with(200, {}, delay_s=0.2))
    latency_s = float(entry["httpRequest"]["latency"][:-1])
    method, path, status, milliseconds, unit = entry["message"].split()
    assert (method, path, status, unit) == ("POST", "/predict", "200", "ms") and latency_s >= 0.2
    # Both figures round the same measurement (to 0.1 ms and to 1 µs), so they may differ by half a step of each.
    assert re.fullmatch(r"\d+\.\d", milliseconds) and abs(float(milliseconds) - latency_s * 1000) <= 0.05 + 0.0005


def test_a_request_without_an_id_or_with_an_unusable_one_gets_a_new_one():
    ids = set()
    for headers in ([], [(b"x-request-id", b"not an id!")], [(b"x-request-id", b"x" * 65)]):
        [entry], answer_headers = logged(True, 200, {}, headers=headers)
        assert re.fullmatch("[0-9a-f]{32}", entry["requestId"]) and answer_headers[b"x-request-id"] == entry["requestId"].encode()
        ids.add(entry["requestId"])
    assert len(ids) == 3


def test_asgi_messages_without_their_optional_keys_are_logged_as_empty():
    """ASGI makes a message's body and headers and the scope's query string optional."""
    chunks = [{"type": "http.response.body", "body": b'{"error":"x"}', "more_body": True}, {"type": "http.response.body"}]
    [entry], headers = logged(True, 400, chunks, level=logging.DEBUG, request={"type": "http.request"}, query_string=None)
    assert headers == {b"x-request-id": b"abc"}
    request = entry["httpRequest"]
    assert (entry["requestBody"], request["responseSize"], request["requestUrl"]) == ("", "13", "/predict")
    assert entry["error"] == "x"  # read from the body's chunks, the empty last one included


def test_the_response_size_counts_every_chunk_and_a_bodys_bad_bytes_are_replaced():
    chunks = [{"type": "http.response.body", "body": b"ab", "more_body": True}, {"type": "http.response.body", "body": b"cde"}]
    [entry], _ = logged(True, 200, chunks, level=logging.DEBUG, request={"type": "http.request", "body": b"\xff{}"})
    assert (entry["httpRequest"]["responseSize"], entry["requestBody"]) == ("5", "\ufffd{}")


def test_an_app_that_fails_before_answering_is_logged_as_a_500():
    async def failing(scope, receive, send):
        raise RuntimeError("broken")

    lines = Lines()
    ACCESS_LOG.addHandler(lines)
    try:
        with pytest.raises(RuntimeError, match="broken"):
            asyncio.run(RequestLog(failing, None)({"type": "http", "method": "GET", "path": "/x", "headers": []}, None, None))
    finally:
        ACCESS_LOG.removeHandler(lines)
    [entry] = lines.entries
    assert (entry["severity"], entry["httpRequest"]["status"], entry["httpRequest"]["responseSize"]) == ("ERROR", 500, "0")


def test_success_lines_are_on_unless_switched_off(monkeypatch):
    monkeypatch.setattr(ACCESS_LOG, "level", logging.INFO)
    lines = Lines()
    ACCESS_LOG.addHandler(lines)
    try:
        asyncio.run(
            RequestLog(answer_with(200, {}), None)(
                {"type": "http", "method": "GET", "path": "/x", "headers": []}, receive_nothing, send_nowhere
            )
        )
    finally:
        ACCESS_LOG.removeHandler(lines)
    assert [e["severity"] for e in lines.entries] == ["INFO"]


async def receive_nothing():
    return {"type": "http.request"}


async def send_nowhere(message):
    pass


def test_lines_go_to_stdout_as_bare_json_and_only_there(capsys, monkeypatch):
    seen_by_root = Lines()
    monkeypatch.setattr(ACCESS_LOG, "handlers", [])
    monkeypatch.setattr(ACCESS_LOG, "propagate", True)
    monkeypatch.setattr(ACCESS_LOG, "level", ACCESS_LOG.level)
    logging.getLogger().addHandler(seen_by_root)
    try:
        request_log.configure("INFO")
        asyncio.run(
            RequestLog(answer_with(200, {}), None)(
                {"type": "http", "method": "GET", "path": "/x", "headers": [(b"x-request-id", b"abc")]},
                receive_nothing,
                send_nowhere,
            )
        )
    finally:
        logging.getLogger().removeHandler(seen_by_root)
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["requestId"] == "abc" and line.startswith('{"severity":"INFO"')
    assert seen_by_root.entries == []
