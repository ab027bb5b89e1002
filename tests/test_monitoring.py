"""Monitoring as code: the rule files check and pass their promtool unit tests, and a real Prometheus (Debian's)
scraping a real `bentoml serve` finds no drift on training-like traffic and a pending drift alert for the
right feature once every bill length is 1.3 times longer. The dashboard's queries run against it too.

PENGUIN_DASHBOARD_PNG=docs/images/dashboard.png also draws the dashboard from that run for the README."""

import json
import math
import os
import subprocess
import time

import pytest
import requests
from conftest import REPO_ROOT, required

from penguin_serve.contract import SPECIES
from penguin_serve.training.dataset import load_dataset
from scripts.dev.processes import die_with_parent, free_port, stop

MONITORING = REPO_ROOT / "monitoring"
RULE_FILES = ("recording-rules.yaml", "alert-rules.yaml")


@pytest.mark.slow  # runs promtool, a program the suite installs
def test_rule_files_are_valid_and_pass_their_unit_tests():
    promtool = required("promtool")
    checked = subprocess.run([promtool, "check", "rules", *RULE_FILES], cwd=MONITORING, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", "alert-rules.test.yaml"], cwd=MONITORING, capture_output=True, text=True)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    # Every alert has a test that fires it.
    import yaml

    alerts = {
        rule["alert"]
        for group in yaml.safe_load((MONITORING / "alert-rules.yaml").read_text())["groups"]
        for rule in group["rules"]
    }
    tests = yaml.safe_load((MONITORING / "alert-rules.test.yaml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert fired == alerts


@pytest.fixture
def monitored(exported_model, tmp_path):
    """A `bentoml serve` of its own: no other test's requests (422s, out-of-range values) in its metrics."""
    from server import ServeProcess

    server = ServeProcess(tmp_path / "serve.log")
    try:
        server.readyz_history()
        yield server
    finally:
        server.stop()


@pytest.fixture
def prometheus(monitored, tmp_path):
    """A Prometheus scraping the test's `bentoml serve` every second and evaluating the rules every second."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(MONITORING / name) for name in RULE_FILES],
        "scrape_configs": [
            {"job_name": "penguin-serve", "static_configs": [{"targets": [monitored.url.removeprefix("http://")]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(json.dumps(config))
    process = subprocess.Popen(
        [
            required("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        preexec_fn=die_with_parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        yield url
    finally:
        stop(process, timeout_s=10)


def query(prometheus, expression, by="feature"):
    """An instant query's values by one label."""
    answer = requests.get(f"{prometheus}/api/v1/query", params={"query": expression}, timeout=10).json()
    return {r["metric"].get(by): float(r["value"][1]) for r in answer["data"]["result"]}


def alerts(prometheus, name=None):
    """Every alert Prometheus holds (pending or firing), or those of one name: (name, feature) -> state."""
    found = requests.get(f"{prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return {
        (a["labels"]["alertname"], a["labels"].get("feature")): a["state"]
        for a in found
        if name is None or a["labels"]["alertname"] == name
    }


def wait_for(condition, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    return condition()


def test_real_prometheus_sees_drift_on_the_right_feature_only(monitored, prometheus):
    served = monitored
    started = time.time()
    records = [p.model_dump(mode="json") for p in load_dataset().penguins]
    # Prometheus holds two scrapes of the counters before any traffic: increases count from there.
    assert wait_for(lambda: query(prometheus, "count_over_time(penguin_model_ready[1m]) >= 2"))
    # A training-like population: the dataset itself, 1,710 rows (the alerts want at least 500 an hour).
    for _ in range(5):
        assert requests.post(served.url + "/predict_batch", json=records, timeout=30).status_code == 200
    # Until Prometheus has scraped the traffic, each share is 0/0 and each index NaN.
    psi = wait_for(
        lambda: (lambda found: found if len(found) == 4 and not any(map(math.isnan, found.values())) else None)(
            query(prometheus, "penguin:input_psi:1h")
        )
    )
    assert all(value < 0.1 for value in psi.values()), psi
    assert alerts(prometheus) == {}  # no alert of any kind on training traffic

    # Then every bill length 1.3 times longer, ten times as many rows.
    longer = [{**record, "bill_length_mm": round(record["bill_length_mm"] * 1.3, 1)} for record in records]
    for _ in range(50):
        assert requests.post(served.url + "/predict_batch", json=longer, timeout=30).status_code == 200
    pending = wait_for(lambda: alerts(prometheus, "PenguinInputDrift"))
    assert pending == {("PenguinInputDrift", "bill_length_mm"): "pending"}
    # The recording rules evaluate in their own group: wait for their next round too.
    psi = wait_for(
        lambda: (lambda found: found if found.get("bill_length_mm", 0) > 0.25 else None)(
            query(prometheus, "penguin:input_psi:1h")
        )
    )
    assert psi and all(value < 0.1 for feature, value in psi.items() if feature != "bill_length_mm"), psi

    # Then a population of Gentoos alone, measured as in training: the predicted species mix drifts.
    gentoos = [record for record in records if record["island"] == "Biscoe" and record["flipper_length_mm"] >= 210]
    for _ in range(40):
        assert requests.post(served.url + "/predict_batch", json=gentoos * 10, timeout=30).status_code == 200
    assert wait_for(lambda: alerts(prometheus, "PenguinPredictionMixDrift")) == {("PenguinPredictionMixDrift", None): "pending"}

    # Then labelled observations: 40 birds confirmed as the model says, then 100 labelled as a shifted model
    # would (each species taken for the next): accuracy 40 of 140, under the alert's 0.9.
    run = f"prometheus-{started:.0f}"
    species = [
        answer["prediction"] for answer in requests.post(served.url + "/predict_batch", json=records[:140], timeout=30).json()
    ]
    shifted = [SPECIES[(SPECIES.index(name) + 1) % len(SPECIES)] for name in species[40:]]
    labelled = [
        {**record, "id": f"{run}-{index}", "species": label}
        for index, (record, label) in enumerate(zip(records[:140], species[:40] + shifted))
    ]
    receipts = requests.post(served.url + "/feedback", json=labelled, timeout=30).json()
    assert [receipt["agrees"] for receipt in receipts] == [True] * 40 + [False] * 100
    assert wait_for(lambda: alerts(prometheus, "PenguinLabelledAccuracyLow")) == {("PenguinLabelledAccuracyLow", None): "pending"}
    accuracy = query(
        prometheus,
        "sum by (model_version) (increase(penguin_labelled_correct_total[1d]))"
        " / sum by (model_version) (increase(penguin_labelled_observations_total[1d]))",
        by="model_version",
    )
    assert list(accuracy) == [receipts[0]["model_version"]] and accuracy[receipts[0]["model_version"]] == pytest.approx(40 / 140)
    # Live coverage: the share of receipts whose prediction set held the confirmed species.
    covered = sum(receipt["species"] in receipt["prediction_set"] for receipt in receipts)
    assert 40 <= covered < 140  # the shifted labels fall outside most sets
    coverage = query(
        prometheus,
        "sum by (model_version) (increase(penguin_labelled_covered_total[1d]))"
        " / sum by (model_version) (increase(penguin_labelled_observations_total[1d]))",
        by="model_version",
    )
    assert coverage == {receipts[0]["model_version"]: pytest.approx(covered / 140)}

    # The dashboard's queries are valid PromQL and each finds data in this run (the error tiles once a client
    # has sent something invalid).
    assert requests.post(served.url + "/predict", json={**records[0], "island": "Mars"}, timeout=10).status_code == 422
    time.sleep(2)  # two scrapes: a rate needs two samples
    tiles = json.loads((MONITORING / "dashboard.json").read_text())["mosaicLayout"]["tiles"]
    for tile in tiles:
        for data_set in tile["widget"]["xyChart"]["dataSets"]:
            answer = requests.get(f"{prometheus}/api/v1/query", params={"query": data_set["prometheusQuery"]}, timeout=10).json()
            assert answer["status"] == "success", (tile["widget"]["title"], answer)
            assert answer["data"]["result"], (tile["widget"]["title"], data_set["prometheusQuery"])
    if os.environ.get("PENGUIN_DASHBOARD_PNG"):
        from monitoring.render_dashboard import render

        render(prometheus, REPO_ROOT / os.environ["PENGUIN_DASHBOARD_PNG"], minutes=(time.time() - started) / 60)
