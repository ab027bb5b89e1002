"""Cloud Storage against a real emulator (fake-gcs-server) with the official client: push, fetch, faults."""

import json
import re
import shutil
import threading
from datetime import UTC, datetime

import bentoml
import numpy as np
import pytest
from google.api_core.exceptions import NotFound

import train
from penguin_serve.contract import MODEL_NAME, encode
from penguin_serve.loading import load_serving_model
from penguin_serve.model import BOOSTER_FILE, METADATA_FILE, ModelCheckError, PenguinModel
from penguin_serve.model_card import MODEL_CARD_FILE
from penguin_serve.settings import Settings
from penguin_serve.storage import (
    LATEST,
    MAX_CALL_TIMEOUT_S,
    Deadline,
    PushConflict,
    UploadCorrupted,
    fetch_model,
    make_client,
)
from penguin_serve.training import publish
from penguin_serve.training.dataset import load_dataset
from penguin_serve.training.publish import current_generation, move_pointer, push_model

DEADLINE_S = 2.0
# The Cloud Storage attempt ends within a quarter of its own budget after the deadline, however busy the
# machine: the bound is the configured deadline, and loading the bento's model afterwards is not part of it.
DEADLINE_TOLERANCE = 1.25


@pytest.fixture
def client(gcs_emulator):
    return make_client(gcs_emulator.url)


@pytest.fixture
def pushed(client, bucket, exported_model):
    return push_model(client, bucket, MODEL_NAME, exported_model)


def settings_for(bucket, host, **overrides):
    return Settings(gcs_bucket=bucket, storage_emulator_host=host, gcs_deadline_s=DEADLINE_S, **overrides)


@pytest.fixture
def bento_path(exported_model) -> str:
    """The model store's model: the one the service falls back to."""
    return bentoml.models.get(f"{MODEL_NAME}:latest").path


def another_version(exported_model, tmp_path, version):
    """The same booster published under another version name, as a later training would be."""
    copy = tmp_path / version
    shutil.copytree(exported_model, copy)
    metadata = json.loads((copy / METADATA_FILE).read_text())
    (copy / METADATA_FILE).write_text(json.dumps({**metadata, "model_version": version}))
    return copy


# --- push ---


def test_round_trip_gives_identical_predictions_and_matching_checksums(client, bucket, pushed, exported_model):
    fetched = fetch_model(client, bucket, MODEL_NAME, LATEST, DEADLINE_S, nthread=1)
    local = PenguinModel.from_files(exported_model, "export", nthread=1)
    assert fetched.version == pushed == local.version and fetched.source == "gcs"
    rows = encode(load_dataset().penguins)
    np.testing.assert_array_equal(fetched.probabilities(rows), local.probabilities(rows))

    blob = client.bucket(bucket).get_blob(f"{MODEL_NAME}/{pushed}/{BOOSTER_FILE}")
    artifact = fetched.metadata["artifact"]
    assert (blob.crc32c, blob.size) == (artifact["crc32c"], artifact["size"])
    remote_metadata = json.loads(client.bucket(bucket).blob(f"{MODEL_NAME}/{pushed}/{METADATA_FILE}").download_as_bytes())
    assert remote_metadata == json.loads((exported_model / METADATA_FILE).read_text())
    for key in ("metrics", "classes", "feature_names", "trained_at", "dataset", "source_commit"):
        assert key in remote_metadata
    pointer = client.bucket(bucket).get_blob(f"{MODEL_NAME}/{LATEST}")
    body = json.loads(pointer.download_as_bytes())
    assert set(body) == {"version", "updated_at"} and body["version"] == pushed
    assert abs((datetime.now(UTC) - datetime.fromisoformat(body["updated_at"])).total_seconds()) < 60
    content_types = {
        name: client.bucket(bucket).get_blob(f"{MODEL_NAME}/{pushed}/{name}").content_type
        for name in (BOOSTER_FILE, METADATA_FILE, MODEL_CARD_FILE)
    }
    assert content_types == {
        BOOSTER_FILE: "application/json",
        METADATA_FILE: "application/json",
        MODEL_CARD_FILE: "text/markdown",
    }
    assert pointer.content_type == "application/json"


def test_a_push_says_what_it_pushed_and_where(client, bucket, exported_model, caplog):
    with caplog.at_level("INFO", logger="penguin_serve.training.publish"):
        version = push_model(client, bucket, MODEL_NAME, exported_model)
    assert caplog.messages == [f"pushed model {version} to gs://{bucket}/{MODEL_NAME}/{version}/ and moved {LATEST}"]


def test_each_call_fits_in_what_is_left_of_the_deadline():
    options = Deadline(0.5).call_options()
    assert 0.4 < options["timeout"] <= 0.5
    # A short back-off: 0.1 s, doubling, at most 1 s, never past the deadline (the retry's public description).
    described = dict(re.findall(r"(initial|maximum|multiplier|timeout)=([\d.]+)", str(options["retry"])))
    assert {key: float(value) for key, value in described.items() if key != "timeout"} == {
        "initial": 0.1,
        "maximum": 1.0,
        "multiplier": 2.0,
    }
    assert 0.4 < float(described["timeout"]) <= 0.5
    assert Deadline(60).call_options()["timeout"] == MAX_CALL_TIMEOUT_S


def test_no_call_starts_past_the_deadline():
    with pytest.raises(TimeoutError, match="^Cloud Storage deadline exceeded$"):
        Deadline(-0.001).call_options()


def test_a_version_is_never_overwritten(client, bucket, pushed, exported_model):
    blob = client.bucket(bucket).get_blob(f"{MODEL_NAME}/{pushed}/{BOOSTER_FILE}")
    with pytest.raises(PushConflict, match="already exists"):
        push_model(client, bucket, MODEL_NAME, exported_model)
    assert client.bucket(bucket).get_blob(blob.name).generation == blob.generation


def test_latest_moves_to_the_newest_push_and_older_versions_stay_loadable(client, bucket, pushed, exported_model, tmp_path):
    newer = push_model(client, bucket, MODEL_NAME, another_version(exported_model, tmp_path, "v2"))
    assert fetch_model(client, bucket, MODEL_NAME, LATEST, DEADLINE_S, 1).version == newer == "v2"
    assert fetch_model(client, bucket, MODEL_NAME, pushed, DEADLINE_S, 1).version == pushed


def test_concurrent_pointer_moves_exactly_one_wins(client, bucket, pushed):
    pointer = client.bucket(bucket).blob(f"{MODEL_NAME}/{LATEST}")
    generation = current_generation(pointer)
    barrier = threading.Barrier(2)
    outcomes = {}

    def move(version):
        barrier.wait()
        try:
            move_pointer(client.bucket(bucket).blob(pointer.name), version, generation)
            outcomes[version] = "won"
        except PushConflict as exc:
            outcomes[version] = str(exc)

    threads = [threading.Thread(target=move, args=(v,)) for v in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [v for v, outcome in outcomes.items() if outcome == "won"]
    assert len(winners) == 1
    loser = ({"a", "b"} - set(winners)).pop()
    assert "moved by another push" in outcomes[loser]
    assert json.loads(pointer.download_as_bytes())["version"] == winners[0]


def test_upload_stored_with_other_bytes_is_detected_and_removed(gcs_emulator, bucket, exported_model, fault_proxy):
    fault_proxy.corrupt_uploads = True
    proxied = make_client(fault_proxy.url)
    with pytest.raises(UploadCorrupted, match="crc32c"):
        push_model(proxied, bucket, MODEL_NAME, exported_model)
    direct = make_client(gcs_emulator.url)
    assert list(direct.list_blobs(bucket)) == []  # nothing half-pushed, latest untouched


def test_train_push_cli(gcs_emulator, bucket, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    assert train.main(["--push", "--bucket", bucket, "--prefix", "models/penguins", "--export-dir", str(tmp_path)]) == 0
    version = json.loads((tmp_path / METADATA_FILE).read_text())["model_version"]
    assert f"gs://{bucket}/models/penguins/{version}/" in capsys.readouterr().out
    names = {blob.name for blob in make_client(gcs_emulator.url).list_blobs(bucket)}
    assert names == {f"models/penguins/{version}/{name}" for name in (BOOSTER_FILE, METADATA_FILE, MODEL_CARD_FILE)} | {
        f"models/penguins/{LATEST}"
    }


def test_train_push_needs_a_bucket(monkeypatch, capsys):
    monkeypatch.delenv("GCS_BUCKET_NAME", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--push"])
    assert exit_info.value.code == 2 and "needs a bucket" in capsys.readouterr().err


def test_train_push_conflict_exits_non_zero(gcs_emulator, bucket, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    client = make_client(gcs_emulator.url)
    client.bucket(bucket).blob(f"{MODEL_NAME}/{LATEST}").upload_from_string("{}")
    # Another push moves latest between our read of it and our move.
    real_upload_new = publish.upload_new

    def upload_then_race(blob, data, *content_type):
        real_upload_new(blob, data, *content_type)
        if blob.name.endswith(METADATA_FILE):
            client.bucket(bucket).blob(f"{MODEL_NAME}/{LATEST}").upload_from_string('{"version": "other"}')

    monkeypatch.setattr(publish, "upload_new", upload_then_race)
    assert train.main(["--push", "--bucket", bucket, "--export-dir", str(tmp_path)]) == 1
    assert "moved by another push" in capsys.readouterr().err


# --- load at start-up: outcome and bounded time for each fault ---


def test_service_loads_from_gcs(bucket, pushed, gcs_emulator, bento_path):
    model = load_serving_model(settings_for(bucket, gcs_emulator.url, xgboost_threads=2), bento_path)
    assert (model.source, model.version, model.fallback_reason, model.nthread) == ("gcs", pushed, None, 2)
    assert model.location == f"gs://{bucket}/{MODEL_NAME}/{pushed}/{BOOSTER_FILE}"


def test_without_a_bucket_the_service_loads_the_bentos_model(bento_path):
    model = load_serving_model(Settings(xgboost_threads=2), bento_path)
    assert (model.source, model.location, model.fallback_reason, model.nthread) == ("bento", bento_path, None, 2)


def assert_fell_back(settings, bento_path, caplog, reason) -> float:
    """Loads with these settings; asserts the bento's model is served, for `reason`, with a WARNING that says
    so. Returns how long the Cloud Storage attempt took, as the loader measured it."""
    with caplog.at_level("WARNING", logger="penguin_serve.loading"):
        model = load_serving_model(settings, bento_path)
    assert (model.source, model.location, model.nthread) == ("fallback", bento_path, settings.xgboost_threads)
    assert model.version == bentoml.models.get(f"{MODEL_NAME}:latest").tag.version
    assert reason in model.fallback_reason, model.fallback_reason
    assert model.info()["fallback_reason"] == model.fallback_reason
    (warning,) = [r for r in caplog.records if "serving the model in the bento instead" in r.getMessage()]
    assert warning.levelname == "WARNING"
    attempt_s = warning.args[1]
    assert warning.getMessage() == (
        f"loading the model from gs://{settings.gcs_bucket}/{settings.gcs_prefix} failed after {attempt_s:.1f}s "
        f"({model.fallback_reason}); serving the model in the bento instead"
    )
    assert attempt_s <= DEADLINE_S * DEADLINE_TOLERANCE, attempt_s
    return attempt_s


def test_missing_object_falls_back(bucket, gcs_emulator, bento_path, caplog):
    assert_fell_back(settings_for(bucket, gcs_emulator.url, gcs_model_version="no-such-version"), bento_path, caplog, "NotFound")


def test_missing_bucket_falls_back(gcs_emulator, bento_path, caplog):
    assert_fell_back(settings_for("no-such-bucket", gcs_emulator.url), bento_path, caplog, "NotFound")


def test_object_changed_behind_its_metadata_is_never_served(client, bucket, pushed, gcs_emulator, bento_path, caplog):
    blob = client.bucket(bucket).blob(f"{MODEL_NAME}/{pushed}/{BOOSTER_FILE}")
    blob.upload_from_string(blob.download_as_bytes().replace(b'"learner"', b'"leArner"', 1))
    with pytest.raises(ModelCheckError, match="sha256"):
        fetch_model(client, bucket, MODEL_NAME, LATEST, DEADLINE_S, 1)
    assert_fell_back(settings_for(bucket, gcs_emulator.url), bento_path, caplog, "does not match")


def test_bytes_corrupted_in_transit_are_never_served(bucket, pushed, fault_proxy, bento_path, caplog):
    fault_proxy.corrupt_downloads = True
    assert_fell_back(settings_for(bucket, fault_proxy.url), bento_path, caplog, "DataCorruption")


def test_emulator_down_falls_back_within_the_deadline(bucket, bento_path, caplog):
    from scripts.dev.processes import free_port

    settings = settings_for(bucket, f"http://127.0.0.1:{free_port()}")
    assert_fell_back(settings, bento_path, caplog, "Connection refused")  # retried until the deadline


def test_slow_emulator_falls_back_within_the_deadline(bucket, pushed, fault_proxy, bento_path, caplog):
    fault_proxy.delay_s = 30
    attempt_s = assert_fell_back(settings_for(bucket, fault_proxy.url), bento_path, caplog, "Read timed out")
    assert attempt_s >= DEADLINE_S  # it waited for its whole budget, no less


def test_transient_503s_are_retried_and_succeed(bucket, pushed, fault_proxy, bento_path):
    fault_proxy.unavailable_responses = 3
    model = load_serving_model(settings_for(bucket, fault_proxy.url), bento_path)
    # Served from Cloud Storage, so within the deadline: past it, the bento's model would be served instead.
    assert (model.source, model.version) == ("gcs", pushed)
    assert fault_proxy.requests >= 3 + 3  # three refused, then pointer, metadata and booster


def test_strict_mode_refuses_instead_of_falling_back(bucket, gcs_emulator, bento_path, caplog):
    settings = settings_for(bucket, gcs_emulator.url, gcs_strict=True, gcs_model_version="no-such-version")
    with pytest.raises(NotFound) as refused, caplog.at_level("ERROR", logger="penguin_serve.loading"):
        load_serving_model(settings, bento_path)
    (error,) = caplog.records
    assert error.levelname == "ERROR" and error.getMessage() == (
        f"loading the model from gs://{bucket}/{MODEL_NAME} failed after {error.args[1]:.1f}s "
        f"(NotFound: {refused.value}); GCS_STRICT: not serving"
    )


def test_settings_from_environment():
    settings = Settings.from_env(
        {
            "GCS_BUCKET_NAME": "b",
            "GCS_MODEL_PREFIX": "/p/",
            "GCS_STRICT": "true",
            "GCS_LOAD_DEADLINE_S": "4.5",
            "GCS_MODEL_VERSION": "v1",
            "PENGUIN_WORKERS": "3",
            "STORAGE_EMULATOR_HOST": "http://h",
        }
    )
    assert (settings.gcs_bucket, settings.gcs_prefix, settings.gcs_strict) == ("b", "p", True)
    assert (settings.gcs_deadline_s, settings.gcs_model_version, settings.workers) == (4.5, "v1", 3)
    assert Settings.from_env({}) == Settings()
