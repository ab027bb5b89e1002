"""An instance of 2 workers, as `make run` on 2 cores or Cloud Run with 2 vCPUs: it says ready only once every
worker is, a request never meets a worker's 503 while the instance says ready (at start and after a worker
died and BentoML restarted it), and /metrics sums what both workers counted.

Each worker loads its model from Cloud Storage behind a slow proxy, so that the workers finish loading
seconds apart, as they may on a busy machine. The readiness tests turn the load wait off (PENGUIN_LOAD_WAIT_S=0),
which would otherwise hold a request at a loading worker and hide its 503; a test of its own covers the wait."""

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
def slow_model_server(exported_model, gcs_emulator, bucket, fault_proxy, tmp_path):
    """Starts `bentoml serve` with these settings over a model in Cloud Storage behind a slow proxy."""
    from penguin_serve.storage import make_client
    from penguin_serve.training.publish import push_model

    push_model(make_client(gcs_emulator.url), bucket, MODEL_NAME, exported_model)
    fault_proxy.delay_s = 0.5
    servers: list[ServeProcess] = []

    def start(**env: str) -> ServeProcess:
        log = tmp_path / f"serve-{len(servers)}" / "serve.log"
        log.parent.mkdir()
        servers.append(ServeProcess(log, GCS_BUCKET_NAME=bucket, STORAGE_EMULATOR_HOST=fault_proxy.url, **env))
        return servers[-1]

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def two_workers(slow_model_server):
    return slow_model_server(PENGUIN_WORKERS="2", PENGUIN_LOAD_WAIT_S="0")


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


def test_after_a_worker_dies_and_restarts_no_request_meets_a_503_while_the_instance_says_ready(two_workers):
    two_workers.readyz_history()
    assert len(workers_of(two_workers)) == 2
    stop = threading.Event()
    sent: list[tuple[float, float, int | str]] = []  # (when sent, when answered, status)

    def steady_traffic() -> None:  # about 50 requests/s, each on its own connection
        while not stop.is_set():
            when = time.monotonic()
            try:
                status: int | str = requests.post(two_workers.url + "/predict", json=KNOWN_RECORDS[1][0], timeout=30).status_code
            except requests.ConnectionError:  # accepted by the worker that was killed
                status = "connection lost"
            sent.append((when, time.monotonic(), status))
            time.sleep(0.02)

    sender = threading.Thread(target=steady_traffic)
    sender.start()
    try:
        time.sleep(0.5)
        victim = workers_of(two_workers)[0]
        killed_at = time.monotonic()
        victim.kill()
        victim.wait(10)
        # The instance is not ready until the replacement worker has loaded its model.
        readiness = []
        deadline = time.monotonic() + 60
        while (not readiness or readiness[-1] != 200 or 503 not in readiness) and time.monotonic() < deadline:
            readiness.append(two_workers.get("/readyz").status_code)
            time.sleep(0.02)
        ready_again_at = time.monotonic()
        assert 503 in readiness and readiness[-1] == 200, readiness[-10:]
        assert len(workers_of(two_workers)) == 2 and victim.pid not in {p.pid for p in workers_of(two_workers)}
        after_restart = burst(two_workers.url)
        time.sleep(0.5)
    finally:
        stop.set()
        sender.join(30)
    assert after_restart == [200] * BURST, after_restart
    # Answered before the kill; the request the victim held when it died was sent before it but is not among these.
    before = [status for _, answered, status in sent if answered < killed_at]
    after = [status for when, _, status in sent if when > ready_again_at]
    lost = [status for _, _, status in sent if status == "connection lost"]
    assert before and set(before) == {200}, before
    assert after and set(after) == {200}, after  # ready again means every worker answers
    assert len(lost) <= 1, sent  # only the request the victim held when it died
    assert {status for _, _, status in sent} <= {200, 503, "connection lost"}, sent  # 503s only while unready


def test_metrics_sum_what_both_workers_counted(two_workers):
    from prometheus_client.multiprocess import MultiProcessCollector
    from prometheus_client.parser import text_string_to_metric_families

    from penguin_serve.serving.metrics import MODEL_CALLS

    two_workers.readyz_history()
    assert burst(two_workers.url) == [200] * BURST
    time.sleep(2 * MODEL_CALLS.every_s)  # each worker counts its model calls once per period
    families = {family.name: family for family in text_string_to_metric_families(two_workers.get("/metrics").text)}
    predictions = {s.labels["species"]: s.value for s in families["penguin_predictions"].samples if s.name.endswith("_total")}
    assert predictions == {"Adelie": BURST, "Chinstrap": 0, "Gentoo": 0}
    assert [s.value for s in families["penguin_model_ready"].samples] == [1.0]  # the lowest over both workers
    # Each worker's own count, from its own file in the folder the workers share: both served a part.
    folder = two_workers.log_path.parent / "bentoml-home" / "prometheus_multiproc_dir"
    per_worker = {
        pid: sum(
            sample.value
            for family in MultiProcessCollector.merge([str(folder / f"counter_{pid}.db")], accumulate=False)
            if family.name == "penguin_predictions"
            for sample in family.samples
            if sample.name.endswith("_total")
        )
        for pid in (worker.pid for worker in workers_of(two_workers))
    }
    assert len(per_worker) == 2 and all(count > 0 for count in per_worker.values()), per_worker
    assert sum(per_worker.values()) == BURST


@pytest.mark.parametrize("load_wait_s, status", [("10", 200), ("0", 503)])
def test_a_prediction_at_a_worker_still_loading_waits_for_its_model_up_to_the_load_wait(slow_model_server, load_wait_s, status):
    server = slow_model_server(PENGUIN_WORKERS="1", PENGUIN_LOAD_WAIT_S=load_wait_s)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the worker is up (it answers /livez) and still loading
        try:
            if server.get("/livez").status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.02)
    assert server.get("/readyz").status_code == 503
    answer = requests.post(server.url + "/predict", json=KNOWN_RECORDS[0][0], timeout=30)
    assert answer.status_code == status, answer.text
    if status == 503:
        assert answer.headers["Retry-After"] == "1"
    else:
        assert answer.json()["prediction"] == KNOWN_RECORDS[0][1]
