"""Code: POST /feedback, labelled observations stored once each, in a folder (in-process) and in Cloud Storage
(a real `bentoml serve` against the emulator, its faults through the fault proxy)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import requests

from penguin_serve.contract import OBSERVATIONS, SPECIES
from penguin_serve.labels import OBSERVATION_SUFFIX, BucketLabels, FolderLabels, LabelsUnavailable

FOLDER = Path(os.environ["PENGUIN_FEEDBACK_DIR"])


def observation(observation_id: str, species: str = SPECIES[0]) -> dict:
    return {**OBSERVATIONS[0], "id": observation_id, "species": species}


def penguin_of(observation: dict) -> dict:
    return {name: value for name, value in observation.items() if name not in ("id", "species")}


def stored(observation_id: str) -> dict:
    return json.loads((FOLDER / f"{observation_id}{OBSERVATION_SUFFIX}").read_text())


def test_one_observation_is_stored_with_what_the_model_predicts_and_its_receipt_says_so(api):
    response = api.post("/feedback", json=observation("one-1"))
    assert response.status_code == 200, response.text
    version = api.get("/model").json()["version"]
    receipt = response.json()
    answer = api.post("/predict", json=penguin_of(OBSERVATIONS[0])).json()
    assert receipt == {
        "id": "one-1",
        "species": "Adelie",
        "prediction": "Adelie",
        "agrees": True,
        "prediction_set": answer["prediction_set"],
        "model_version": version,
        "duplicate": False,
    }
    record = stored("one-1")
    assert {name: record[name] for name in observation("one-1")} == observation("one-1")
    assert (record["prediction"], record["model_version"]) == ("Adelie", version)
    assert (record["probabilities"], record["prediction_set"]) == (answer["probabilities"], answer["prediction_set"])
    assert record["received_at"].endswith("+00:00")


def test_the_same_id_again_is_stored_once_and_its_receipt_says_duplicate(api):
    first = api.post("/feedback", json=observation("twice-1", "Adelie")).json()
    again = api.post("/feedback", json=observation("twice-1", "Gentoo")).json()
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    assert again["species"] == "Gentoo" and not again["agrees"]  # the receipt is of the request sent
    assert stored("twice-1")["species"] == "Adelie"  # the first one stays, whole
    assert not list(FOLDER.glob(".incoming-*"))


def test_a_batch_gets_one_receipt_per_observation_in_order(api):
    batch = [{**sent, "id": f"batch-{sent['id']}"} for sent in OBSERVATIONS]
    batch[1] = {**batch[1], "species": "Gentoo"}  # a Chinstrap's measurements, labelled otherwise
    receipts = api.post("/feedback", json=batch).json()
    assert [r["id"] for r in receipts] == [sent["id"] for sent in batch]
    assert [r["prediction"] for r in receipts] == list(SPECIES)
    assert [r["agrees"] for r in receipts] == [True, False, True]
    assert all(stored(sent["id"])["species"] == sent["species"] for sent in batch)


@pytest.mark.parametrize(
    ("body", "field", "index"),
    [
        (observation("bad-1", "Emperor"), "species", None),
        ({name: value for name, value in observation("bad-2").items() if name != "species"}, "species", None),
        ({name: value for name, value in observation("x").items() if name != "id"}, "id", None),
        (observation("../escape"), "id", None),
        (observation("a/b"), "id", None),
        (observation("x" * 129), "id", None),
        ([observation("bad-3"), observation("bad-4", "emperor")], "species", 1),
        ({**observation("bad-5"), "ring": 7}, "ring", None),
    ],
    ids=["unknown-species", "no-species", "no-id", "dot-dot", "slash", "long-id", "batch-index", "unknown-field"],
)
def test_bad_observations_get_422_naming_the_field_and_nothing_is_stored(api, body, field, index):
    response = api.post("/feedback", json=body)
    assert response.status_code == 422, response.text
    [entry] = response.json()["detail"]
    assert entry["field"] == field and entry.get("index") == index, entry
    assert not list(FOLDER.glob("bad-*")) and not (FOLDER.parent / "escape.json").exists()


def test_the_folder_store_creates_once_and_says_why_it_cannot(tmp_path):
    store = FolderLabels(tmp_path / "labels")
    assert store.create("a", {"n": 1}) is True and store.create("a", {"n": 2}) is False
    assert json.loads((tmp_path / "labels" / "a.json").read_text()) == {"n": 1}
    (tmp_path / "file").write_text("")
    with pytest.raises(LabelsUnavailable, match="retry shortly"):
        FolderLabels(tmp_path / "file" / "labels").create("a", {"n": 1})


def test_the_bucket_store_without_a_reachable_storage_is_unavailable_within_its_deadline():
    from scripts.dev.processes import free_port

    store = BucketLabels("b", "labels", 1.0, f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(LabelsUnavailable):
        store.create("a", {"n": 1})
    assert time.monotonic() - started < 3


def test_in_cloud_storage_stored_once_503_while_it_is_down_then_stored_on_retry_also_after_a_restart(
    exported_model, gcs_emulator, bucket, fault_proxy, tmp_path
):
    from server import ServeProcess

    from penguin_serve.storage import make_client

    env = {"GCS_BUCKET_NAME": bucket, "STORAGE_EMULATOR_HOST": fault_proxy.url, "PENGUIN_FEEDBACK_DEADLINE_S": "1"}
    labels = make_client(gcs_emulator.url).bucket(bucket)

    def post(server, body):
        return requests.post(server.url + "/feedback", json=body, timeout=10)

    server = ServeProcess(tmp_path / "serve.log", **env)
    try:
        server.readyz_history()
        assert post(server, observation("gcs-1")).json()["duplicate"] is False
        assert post(server, observation("gcs-1", "Gentoo")).json()["duplicate"] is True
        fault_proxy.unavailable_responses = 10**6  # Cloud Storage answers 503 to everything, past the deadline
        down = post(server, [observation("gcs-2"), observation("gcs-3")])
        assert down.status_code == 503 and down.headers["retry-after"] == "1", down.text
        assert "retry shortly" in down.json()["error"]
        assert labels.get_blob("labels/gcs-2.json") is None and labels.get_blob("labels/gcs-3.json") is None
        fault_proxy.unavailable_responses = 0
        retried = post(server, [observation("gcs-2"), observation("gcs-3")])
        assert [r["duplicate"] for r in retried.json()] == [False, False]
    finally:
        assert server.stop() == 0
    restarted = ServeProcess(tmp_path / "restarted.log", **env)
    try:
        restarted.readyz_history()
        receipts = post(restarted, [observation(f"gcs-{n}") for n in (1, 2, 3, 4)]).json()
        assert [r["duplicate"] for r in receipts] == [True, True, True, False]
    finally:
        assert restarted.stop() == 0
    names = sorted(blob.name for blob in labels.list_blobs(prefix="labels/"))
    assert names == [f"labels/gcs-{n}.json" for n in (1, 2, 3, 4)]
    assert json.loads(labels.blob("labels/gcs-1.json").download_as_bytes())["species"] == "Adelie"


def test_each_stored_observation_is_counted_once_in_its_versions_confusion_matrix_and_log_loss(api):
    import math

    from prometheus_client import REGISTRY

    def counted(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    version = api.get("/model").json()["version"]
    cell = {"model_version": version, "species": "Gentoo", "predicted": "Adelie"}
    before = (
        counted("penguin_labelled_observations_total", **cell),
        counted("penguin_labelled_correct_total", model_version=version),
        counted("penguin_labelled_log_loss_sum_total", model_version=version),
        counted("penguin_labelled_covered_total", model_version=version),
    )
    wrong = api.post("/feedback", json=observation("metrics-1", "Gentoo")).json()
    assert api.post("/feedback", json=observation("metrics-1", "Gentoo")).json()["duplicate"]  # not counted again
    right = api.post("/feedback", json=observation("metrics-2", "Adelie")).json()
    assert (wrong["agrees"], right["agrees"]) == (False, True)
    probabilities = api.post("/predict", json=penguin_of(OBSERVATIONS[0])).json()["probabilities"]
    assert counted("penguin_labelled_observations_total", **cell) == before[0] + 1
    assert counted("penguin_labelled_correct_total", model_version=version) == before[1] + 1
    log_loss = counted("penguin_labelled_log_loss_sum_total", model_version=version) - before[2]
    assert log_loss == pytest.approx(-math.log(probabilities["Gentoo"]) - math.log(probabilities["Adelie"]))
    # Live coverage: the right one's set holds its species, the wrong one's does not.
    assert ("Gentoo" in wrong["prediction_set"], "Adelie" in right["prediction_set"]) == (False, True)
    assert counted("penguin_labelled_covered_total", model_version=version) == before[3] + 1
