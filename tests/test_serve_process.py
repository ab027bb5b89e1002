"""Integration: the real `bentoml serve` process on a free 127.0.0.1 port with the temporary model store."""

import json
import shutil
import time

import bentoml
import pytest
import requests
from conftest import KNOWN_RECORDS
from server import ServeProcess

from penguin_serve.contract import MODEL_NAME
from penguin_serve.model import BOOSTER_FILE

pytestmark = pytest.mark.slow  # starts servers or processes of its own


@pytest.fixture(scope="module")
def corrupt_model_tag(exported_model):
    """A store entry whose booster was changed behind its metadata, as a damaged copy would be."""
    with bentoml.models.create("penguin_corrupt") as entry:
        shutil.copytree(
            bentoml.models.get(f"{MODEL_NAME}:latest").path,
            entry.path,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("model.yaml"),
        )
        booster_path = f"{entry.path}/{BOOSTER_FILE}"
        booster = json.loads(open(booster_path).read())
        tree = booster["learner"]["gradient_booster"]["model"]["trees"][0]
        tree["split_conditions"] = [c + 1.0 for c in tree["split_conditions"]]
        open(booster_path, "w").write(json.dumps(booster))
    return str(entry.tag)


def test_ready_only_after_the_model_loaded_and_stays_ready(served):
    assert served.readiness[-1] == 200
    assert set(served.readiness[:-1]) <= {0, 503}  # refused while starting, 503 while loading (test_workers.py:
    # a request sent at the first 200 meets no worker still loading)
    assert all(served.get("/readyz").status_code == 200 for _ in range(5))
    assert served.get("/livez").status_code == 200


@pytest.mark.parametrize("record, species", KNOWN_RECORDS, ids=[s for _, s in KNOWN_RECORDS])
def test_predicts_over_real_http(served, record, species):
    response = requests.post(served.url + "/predict", json=record, timeout=5)
    assert response.status_code == 200
    assert response.json()["prediction"] == species


def test_batch_over_real_http(served):
    response = requests.post(served.url + "/predict_batch", json=[r for r, _ in KNOWN_RECORDS], timeout=5)
    assert [a["prediction"] for a in response.json()] == [s for _, s in KNOWN_RECORDS]


def test_invalid_input_is_422_over_real_http(served):
    response = requests.post(served.url + "/predict", json={**KNOWN_RECORDS[0][0], "sex": "yes"}, timeout=5)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "sex"


def test_model_info_and_metrics(served):
    assert served.get("/model").json()["source"] == "bento"
    requests.post(served.url + "/predict", json=KNOWN_RECORDS[0][0], timeout=5)
    metrics = served.get("/metrics").text
    assert 'bentoml_service_request_total{endpoint="/predict"' in metrics
    assert 'penguin_predictions_total{species="Adelie"}' in metrics
    assert "penguin_prediction_confidence_bucket" in metrics


def test_corrupt_model_is_never_served_and_sigterm_exits_cleanly(corrupt_model_tag, tmp_path):
    server = ServeProcess(tmp_path / "serve.log", PENGUIN_MODEL_TAG=corrupt_model_tag)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if server.get("/livez").status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.05)
        statuses = {server.get("/readyz").status_code for _ in range(20)}
        assert statuses == {503}
        assert requests.post(server.url + "/predict", json=KNOWN_RECORDS[0][0], timeout=5).status_code == 503
        assert "no model could be loaded" in server.log() and "does not match" in server.log()
    finally:
        started = time.monotonic()
        returncode = server.stop()
    assert returncode == 0 and time.monotonic() - started < 10


def test_invalid_input_is_one_warning_line_without_traceback(served):
    requests.post(served.url + "/predict", json={"bill_length_mm": "long"}, timeout=5)
    requests.post(served.url + "/predict_batch", data=b"not json", headers={"Content-Type": "application/json"}, timeout=5)
    deadline = time.monotonic() + 5  # the worker writes its line after answering
    while '"message":"POST /predict_batch 400' not in served.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = served.log()
    assert '"severity":"WARNING","message":"POST /predict 422' in log
    assert '"severity":"WARNING","message":"POST /predict_batch 400' in log
    assert "Exception on" not in log and "Traceback" not in log and "ERROR" not in log


def test_serves_the_model_from_gcs_and_is_503_until_it_arrived(exported_model, gcs_emulator, bucket, fault_proxy, tmp_path):
    from penguin_serve.storage import make_client
    from penguin_serve.training.publish import push_model

    version = push_model(make_client(gcs_emulator.url), bucket, MODEL_NAME, exported_model)
    fault_proxy.delay_s = 0.7  # a slow Cloud Storage: pointer, metadata and booster take ~2 s together
    server = ServeProcess(tmp_path / "serve.log", GCS_BUCKET_NAME=bucket, STORAGE_EMULATOR_HOST=fault_proxy.url)
    try:
        readiness = server.readyz_history()
        assert 503 in readiness and readiness[-1] == 200
        assert readiness.index(503) < len(readiness) - 1 and 200 not in readiness[:-1]
        info = server.get("/model").json()
        assert (info["source"], info["version"]) == ("gcs", version)
        assert info["location"] == f"gs://{bucket}/{MODEL_NAME}/{version}/booster.json"
        metrics = server.get("/metrics").text
        assert f'penguin_model_info{{source="gcs",version="{version}"}} 1.0' in metrics
    finally:
        assert server.stop() == 0


def test_falls_back_to_the_bento_model_when_gcs_is_down_and_says_so(exported_model, tmp_path):
    from scripts.dev.processes import free_port

    server = ServeProcess(
        tmp_path / "serve.log",
        GCS_BUCKET_NAME="models",
        GCS_LOAD_DEADLINE_S="1",
        STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{free_port()}",  # nothing listens there
    )
    try:
        server.readyz_history()
        info = server.get("/model").json()
        assert info["source"] == "fallback" and info["fallback_reason"]
        assert info["version"] == bentoml.models.get(f"{MODEL_NAME}:latest").tag.version
        assert f'penguin_model_info{{source="fallback",version="{info["version"]}"}} 1.0' in server.get("/metrics").text
        assert "[WARNING]" in server.log() and "serving the model in the bento instead" in server.log()
    finally:
        assert server.stop() == 0


def test_cors_for_configured_origins_only(exported_model, tmp_path):
    server = ServeProcess(tmp_path / "serve.log", PENGUIN_CORS_ORIGINS="https://app.example.com")
    try:
        server.readyz_history()
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "Content-Type"}
        allowed = requests.options(server.url + "/predict", headers={"Origin": "https://app.example.com", **preflight}, timeout=5)
        assert allowed.headers.get("access-control-allow-origin") == "https://app.example.com"
        other = requests.options(server.url + "/predict", headers={"Origin": "https://evil.example", **preflight}, timeout=5)
        assert "access-control-allow-origin" not in other.headers
        # The answers themselves carry the header too, or a browser would not let the page read them.
        for path, body in (("/predict", KNOWN_RECORDS[0][0]), ("/predict_batch", [KNOWN_RECORDS[0][0]]), ("/model", None)):
            answer = requests.request(
                "POST" if body else "GET", server.url + path, json=body, timeout=5, headers={"Origin": "https://app.example.com"}
            )
            assert answer.status_code == 200 and answer.headers.get("access-control-allow-origin") == "https://app.example.com"
        refused = requests.post(
            server.url + "/predict", json=KNOWN_RECORDS[0][0], headers={"Origin": "https://evil.example"}, timeout=5
        )
        assert "access-control-allow-origin" not in refused.headers
    finally:
        assert server.stop() == 0


def request_log_entries(server, request_id):
    lines = [line for line in server.log().splitlines() if line.startswith("{")]
    return [entry for entry in map(json.loads, lines) if entry.get("requestId") == request_id]


def test_one_json_log_line_per_request_in_cloud_logging_format(served):
    trace = "105445aa7843bc8bf206b12000100000"
    response = requests.post(
        served.url + "/predict",
        json=KNOWN_RECORDS[0][0],
        timeout=5,
        headers={"X-Request-ID": "req-123", "X-Cloud-Trace-Context": f"{trace}/12;o=1"},
    )
    assert response.headers["x-request-id"] == "req-123"
    invalid = requests.post(served.url + "/predict", json={"sex": "x"}, timeout=5)
    generated_id = invalid.headers["x-request-id"]
    time.sleep(0.5)  # let the worker flush its line

    [entry] = request_log_entries(served, "req-123")
    assert entry["severity"] == "INFO"
    assert entry["httpRequest"]["requestMethod"] == "POST" and entry["httpRequest"]["requestUrl"] == "/predict"
    assert entry["httpRequest"]["status"] == 200 and entry["httpRequest"]["latency"].endswith("s")
    assert entry["logging.googleapis.com/trace"] == trace
    assert entry["logging.googleapis.com/spanId"] == f"{12:016x}" and entry["logging.googleapis.com/trace_sampled"] is True
    assert "requestBody" not in entry and "39.1" not in json.dumps(entry)  # input values only at DEBUG
    [warning] = request_log_entries(served, generated_id)
    assert (warning["severity"], warning["httpRequest"]["status"]) == ("WARNING", 422)
    assert warning["error"] == "validation failed" and "sex" in warning["invalidFields"]


def test_request_bodies_are_logged_only_at_debug(exported_model, tmp_path):
    server = ServeProcess(tmp_path / "serve.log", PENGUIN_LOG_LEVEL="DEBUG")
    try:
        server.readyz_history()
        requests.post(server.url + "/predict", json=KNOWN_RECORDS[1][0], timeout=5, headers={"X-Request-ID": "debug-1"})
        time.sleep(0.5)
        [entry] = request_log_entries(server, "debug-1")
        assert entry["severity"] == "INFO" and json.loads(entry["requestBody"]) == KNOWN_RECORDS[1][0]
    finally:
        assert server.stop() == 0


def test_a_request_past_the_timeout_is_504_with_json_not_a_hang(exported_model, tmp_path):
    """A request still unfinished when PENGUIN_REQUEST_TIMEOUT_S (1 s here) runs out gets 504 with a JSON body.
    Its body stalls on the client's side: the one way to hold a request open in the server on demand (the
    service answers even 10,000-record batches well within a second)."""
    import http.client
    import socket

    server = ServeProcess(tmp_path / "serve.log", PENGUIN_REQUEST_TIMEOUT_S="1")
    try:
        server.readyz_history()
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
            connection.sendall(
                b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"bill_length_mm": '
            )
            started = time.monotonic()
            answer = http.client.HTTPResponse(connection)
            answer.begin()
            waited = time.monotonic() - started
            assert answer.status == 504 and 1 <= waited < 5 * 1  # the configured timeout, then the answer
            assert json.loads(answer.read()) == {"error": "Not able to process the request in 1 seconds"}  # BentoML's own
        assert requests.post(server.url + "/predict", json=KNOWN_RECORDS[0][0], timeout=5).status_code == 200
    finally:
        assert server.stop() == 0
