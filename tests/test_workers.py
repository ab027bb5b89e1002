"""An instance of 2 workers, as `make run` on 2 cores or Cloud Run with 2 vCPUs: it says ready only once every
worker is, a request never meets a worker's 503 while the instance says ready (at start and after a worker
died and BentoML restarted it), and /metrics sums what both workers counted.

Each worker loads its model from Cloud Storage behind a slow proxy, so that the workers finish loading
seconds apart, as they may on a busy machine."""

import threading
import time

import psutil
import pytest
import requests
from conftest import KNOWN_RECORDS
from server import ServeProcess

from penguin_serve.contract import MODEL_NAME

pytestmark = pytest.mark.slow

BURST = 40


@pytest.fixture
def two_workers(exported_model, gcs_emulator, bucket, fault_proxy, tmp_path):
    from penguin_serve.storage import make_client, push_model

    push_model(make_client(gcs_emulator.url), bucket, MODEL_NAME, exported_model)
    fault_proxy.delay_s = 0.5
    server = ServeProcess(
        tmp_path / "serve.log", PENGUIN_WORKERS="2", GCS_BUCKET_NAME=bucket, STORAGE_EMULATOR_HOST=fault_proxy.url
    )
    try:
        yield server
    finally:
        server.stop()


def burst(url: str, count: int = BURST) -> list[int]:
    """`count` predictions sent at once, each on a connection of its own (so both workers accept some)."""
    statuses: list[int] = []
    record = KNOWN_RECORDS[0][0]

    def send() -> None:
        statuses.append(requests.post(url + "/predict", json=record, timeout=30).status_code)

    threads = [threading.Thread(target=send) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses


def workers_of(server: ServeProcess) -> list[psutil.Process]:
    return [
        p for p in psutil.Process(server.process.pid).children(recursive=True) if "_bentoml_impl.worker" in " ".join(p.cmdline())
    ]


def test_ready_means_every_worker_is_ready(two_workers):
    two_workers.readyz_history()
    statuses = burst(two_workers.url)
    assert statuses == [200] * BURST, statuses
    assert two_workers.get("/health").json()["status"] == "ok"


def test_after_a_worker_dies_and_restarts_no_request_meets_a_503(two_workers):
    two_workers.readyz_history()
    assert len(workers_of(two_workers)) == 2
    stop = threading.Event()
    statuses: list[int | str] = []

    def steady_traffic() -> None:  # about 50 requests/s, each on its own connection
        while not stop.is_set():
            try:
                statuses.append(requests.post(two_workers.url + "/predict", json=KNOWN_RECORDS[1][0], timeout=30).status_code)
            except requests.ConnectionError:  # accepted by the worker that was killed
                statuses.append("connection lost")
            time.sleep(0.02)

    sender = threading.Thread(target=steady_traffic)
    sender.start()
    try:
        victim = workers_of(two_workers)[0]
        victim.kill()
        victim.wait(10)
        # The instance is not ready until the replacement worker has loaded its model.
        readiness = []
        deadline = time.monotonic() + 60
        while (not readiness or readiness[-1] != 200 or 503 not in readiness) and time.monotonic() < deadline:
            readiness.append(two_workers.get("/readyz").status_code)
            time.sleep(0.02)
        assert 503 in readiness and readiness[-1] == 200, readiness[-10:]
        assert len(workers_of(two_workers)) == 2 and victim.pid not in {p.pid for p in workers_of(two_workers)}
        after_restart = burst(two_workers.url)
    finally:
        stop.set()
        sender.join(30)
    assert after_restart == [200] * BURST, after_restart
    assert 503 not in statuses and statuses.count(200) >= len(statuses) - 2, statuses


def test_metrics_sum_what_both_workers_counted(two_workers):
    two_workers.readyz_history()
    assert burst(two_workers.url) == [200] * BURST
    from prometheus_client.parser import text_string_to_metric_families

    families = {family.name: family for family in text_string_to_metric_families(two_workers.get("/metrics").text)}
    predictions = {s.labels["species"]: s.value for s in families["penguin_predictions"].samples if s.name.endswith("_total")}
    assert predictions == {"Adelie": BURST, "Chinstrap": 0, "Gentoo": 0}
    assert [s.value for s in families["penguin_model_ready"].samples] == [1.0]  # the lowest over both workers
