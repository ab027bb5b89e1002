"""Code: the service's readiness, model-info, documentation and probe endpoints."""

import asyncio
import html
import inspect
import json
import os
import re
import threading
import time

import bentoml
import pytest
from conftest import ADELIE

from penguin_serve.contract import FEATURE_NAMES, SPECIES, Penguin, Prediction


def test_model_info_reports_version_source_classes_and_metrics(api, exported_model):
    info = api.get("/model").json()
    assert info["name"] == "penguin_classifier"
    stored = bentoml.models.get(f"penguin_classifier:{info['version']}")
    assert (info["source"], info["location"]) == ("bento", stored.path)
    assert info["classes"] == list(SPECIES) and info["feature_names"] == list(FEATURE_NAMES)
    assert info["metrics"]["holdout"]["macro_f1"] >= 0.95
    assert api.post("/predict", json=ADELIE).json()["model_version"] == info["version"]


def test_docs_lead_to_swagger_ui(api):
    response = api.get("/docs", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/"
    page = api.get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()


def test_openapi_spec_documents_every_public_endpoint_with_real_examples(api):
    from penguin_serve.contract import EXAMPLES

    spec = api.get("/docs.json").json()
    assert spec["info"]["title"] == "penguin-serve" and "XGBoost" in spec["info"]["description"]
    assert "BentoML" not in spec["info"]["description"]
    assert set(spec["paths"]) == {
        "/predict",
        "/predict_batch",
        "/explain",
        "/feedback",
        "/model",
        "/model/card",
        "/health",
        "/livez",
        "/readyz",
        "/metrics",
    }
    schemas = spec["components"]["schemas"]
    assert not {"PenguinIODescriptor", "PredictionIODescriptor", "TaskStatusResponse", "InternalServerError"} & set(schemas)
    penguin = schemas["Penguin"]
    assert set(penguin["required"]) == {"bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island"}
    assert penguin["additionalProperties"] is False
    single = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert single["schema"] == {"$ref": "#/components/schemas/Penguin"}
    assert [example["value"] for example in single["examples"].values()] == list(EXAMPLES)
    batch = spec["paths"]["/predict_batch"]["post"]["requestBody"]["content"]["application/json"]
    records, columns = batch["schema"]["oneOf"]
    assert records["maxItems"] == 10_000 and records["items"] == {"$ref": "#/components/schemas/Penguin"}
    assert columns == {"$ref": "#/components/schemas/PenguinColumns"}
    assert set(batch["examples"]) == {"records", "columns"}
    column_schemas = schemas["PenguinColumns"]["properties"]
    assert set(column_schemas) == set(penguin["properties"]) and column_schemas["island"]["maxItems"] == 10_000
    answers = spec["paths"]["/predict_batch"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/PredictionColumns"} in answers["anyOf"]
    feedback = spec["paths"]["/feedback"]["post"]["requestBody"]["content"]["application/json"]
    one, many = feedback["schema"]["oneOf"]
    assert one == {"$ref": "#/components/schemas/Observation"} and many["items"] == one
    assert set(schemas["Observation"]["required"]) == {*penguin["required"], "id", "species"}
    # Every example is answered 200 by the service itself.
    for path in ("/predict", "/predict_batch", "/explain", "/feedback"):
        for example in spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["examples"].values():
            assert api.post(path, json=example["value"]).status_code == 200


def test_health_answers_the_model_version_once_ready(api):
    answer = api.get("/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "model_version": api.get("/model").json()["version"]}


def test_liveness(api):
    assert api.get("/livez").status_code == 200


def test_not_ready_and_refusing_predictions_until_the_model_passed_its_self_check(exported_model, monkeypatch, tmp_path):
    # The one timing we cannot cause for real in-process: hold the loader until the test lets it go.
    from penguin_serve.model import PenguinModel
    from penguin_serve.serving.endpoints import predict
    from penguin_serve.serving.predictor import NOT_READY_MESSAGE, NotReady, Predictor
    from penguin_serve.serving.readiness import InstanceReadiness
    from penguin_serve.settings import SETTINGS

    release = threading.Event()
    real_from_files = PenguinModel.from_files

    def held_from_files(*args, **kwargs):
        release.wait(10)
        return real_from_files(*args, **kwargs)

    monkeypatch.setattr(PenguinModel, "from_files", held_from_files)
    predictor = Predictor(InstanceReadiness(1, tmp_path), load_wait_s=0.0)
    loader = threading.Thread(target=predictor.load, args=(SETTINGS, exported_model))
    loader.start()
    assert predictor.ready is False and predictor.instance_ready is False
    with pytest.raises(NotReady, match=NOT_READY_MESSAGE) as refused:
        asyncio.run(predict(predictor, Penguin(**ADELIE)))
    assert refused.value.error_code == 503  # BentoML answers in-process callers' NotReady with 503 too
    release.set()
    loader.join(10)
    assert predictor.ready is True and predictor.instance_ready is True
    assert asyncio.run(predict(predictor, Penguin(**ADELIE)))["prediction"] == "Adelie"


def test_a_prediction_that_reaches_a_worker_still_loading_waits_for_its_model(exported_model, monkeypatch, tmp_path):
    from penguin_serve.model import PenguinModel
    from penguin_serve.serving.endpoints import predict
    from penguin_serve.serving.predictor import Predictor
    from penguin_serve.serving.readiness import InstanceReadiness
    from penguin_serve.settings import SETTINGS

    real_from_files = PenguinModel.from_files
    loaded_at = []

    def slow_from_files(*args, **kwargs):
        time.sleep(0.2)
        model = real_from_files(*args, **kwargs)
        loaded_at.append(time.monotonic())
        return model

    monkeypatch.setattr(PenguinModel, "from_files", slow_from_files)
    predictor = Predictor(InstanceReadiness(1, tmp_path), load_wait_s=SETTINGS.load_wait_s)
    loader = threading.Thread(target=predictor.load, args=(SETTINGS, exported_model))
    loader.start()
    try:
        assert predictor.ready is False
        assert asyncio.run(predict(predictor, Penguin(**ADELIE)))["prediction"] == "Adelie"
        assert time.monotonic() - loaded_at[0] < 0.5  # answered soon after the model loaded: it polls often
    finally:
        loader.join(10)


def test_an_explanation_that_reaches_a_worker_still_loading_waits_for_its_model(exported_model, monkeypatch, tmp_path):
    from penguin_serve.contract import encode
    from penguin_serve.model import PenguinModel
    from penguin_serve.serving.predictor import Predictor
    from penguin_serve.serving.readiness import InstanceReadiness
    from penguin_serve.settings import SETTINGS

    real_from_files = PenguinModel.from_files
    monkeypatch.setattr(PenguinModel, "from_files", lambda *args, **kwargs: time.sleep(0.2) or real_from_files(*args, **kwargs))
    predictor = Predictor(InstanceReadiness(1, tmp_path), load_wait_s=SETTINGS.load_wait_s)
    loader = threading.Thread(target=predictor.load, args=(SETTINGS, exported_model))
    loader.start()
    try:
        assert predictor.ready is False
        base, fields = asyncio.run(predictor.contributions(encode([Penguin(**ADELIE)])))  # on its own, not after a prediction
        assert base.shape == (1, len(SPECIES)) and fields.shape[0] == 1
    finally:
        loader.join(10)


def test_a_worker_whose_model_cannot_load_says_why_and_stays_unready(tmp_path, caplog):
    from penguin_serve.serving.metrics import MODEL_READY
    from penguin_serve.serving.predictor import Predictor
    from penguin_serve.serving.readiness import InstanceReadiness
    from penguin_serve.settings import SETTINGS

    try:
        predictor = Predictor(InstanceReadiness(1, tmp_path), load_wait_s=0.0)
        assert sample("penguin_model_ready") == 0
        with caplog.at_level("ERROR", logger="penguin_serve.serving.predictor"):
            predictor.load(SETTINGS, tmp_path / "no-model-here")
        assert (predictor.ready, predictor.loading, sample("penguin_model_ready")) == (False, False, 0)
        (logged,) = caplog.records
        assert logged.getMessage() == "no model could be loaded: staying unready" and logged.exc_info[0] is FileNotFoundError
    finally:
        MODEL_READY.set(1)  # this process's service worker has its model


def test_a_worker_with_its_model_is_not_the_instance_ready_while_another_worker_loads(exported_model, tmp_path):
    """/readyz and /health answer for the instance: one worker's model is not enough where two serve."""
    import subprocess

    from penguin_serve.serving.predictor import Predictor
    from penguin_serve.serving.readiness import InstanceReadiness
    from penguin_serve.settings import SETTINGS

    predictor = Predictor(InstanceReadiness(2, tmp_path), load_wait_s=0.0)
    predictor.load(SETTINGS, exported_model)
    assert (predictor.ready, predictor.instance_ready) == (True, False)
    other = subprocess.Popen(["sleep", "30"])  # the second worker, alive, marks itself ready
    try:
        (tmp_path / str(other.pid)).touch()
        assert predictor.instance_ready is True
    finally:
        other.kill()
        other.wait()


def test_the_instance_is_ready_only_once_every_live_worker_is(tmp_path):
    import subprocess

    from penguin_serve.serving.readiness import InstanceReadiness

    instance = InstanceReadiness(2, tmp_path)
    instance.worker_ready()  # this process: one worker of two
    assert (instance.ready_workers(), instance.all_ready()) == (1, False)
    other = subprocess.Popen(["sleep", "30"])  # a second live worker that marked itself ready
    try:
        (tmp_path / str(other.pid)).touch()
        assert (instance.ready_workers(), instance.all_ready()) == (2, True)
        with pytest.raises(subprocess.TimeoutExpired):  # asking whether a worker lives sends it no signal
            other.wait(timeout=0.5)
    finally:
        other.kill()
        other.wait()
    # A dead worker no longer counts, and its mark is removed: the instance waits for its replacement.
    assert (instance.ready_workers(), instance.all_ready()) == (1, False)
    assert sorted(path.name for path in tmp_path.iterdir()) == [str(os.getpid())]


def test_each_worker_sets_its_logging_and_the_young_garbage_collection_threshold_from_the_settings(api):
    """The service configures them when its worker starts (the api fixture started one in this process)."""
    import gc
    import logging

    from penguin_serve.settings import SETTINGS

    assert logging.getLogger("penguin_serve").level == logging.INFO
    assert gc.get_threshold()[0] == SETTINGS.gc_young_allocations
    assert gc.get_freeze_count() > 10_000  # start-up's objects, frozen out of every collection


def test_a_starting_worker_logs_the_services_info_lines_and_leaves_other_loggers_alone(monkeypatch):
    import logging

    from penguin_serve.serving.worker import configure_worker
    from penguin_serve.settings import SETTINGS

    root = logging.getLogger()
    monkeypatch.setattr(logging.getLogger("penguin_serve"), "level", logging.NOTSET)
    monkeypatch.setattr(root, "level", logging.WARNING)
    configure_worker(SETTINGS)
    assert (logging.getLogger("penguin_serve").level, root.level) == (logging.INFO, logging.WARNING)


def sample(name, **labels):
    """A series' value once this process's model calls so far are counted (their thread does it each second)."""
    from prometheus_client import REGISTRY

    from penguin_serve.serving.metrics import MODEL_CALLS

    MODEL_CALLS.count()
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_loaded_model_publishes_its_identity_its_training_reference_and_every_labelled_series(api, exported_model):
    import dataclasses

    from penguin_serve.contract import MEASUREMENTS
    from penguin_serve.model import PenguinModel
    from penguin_serve.serving.metrics import MODEL_INFO, record_model_loaded

    model = dataclasses.replace(PenguinModel.from_files(exported_model, source="test", nthread=1), version="v-test")
    record_model_loaded(model)
    try:
        assert sample("penguin_model_info", version="v-test", source="test") == 1
        assert sample("penguin_model_ready") == 1
        shares = model.metadata["training_bin_shares"]
        assert {
            (feature, index): sample("penguin_training_bin_share", feature=feature, bin=str(index))
            for feature in shares
            for index in range(len(shares[feature]))
        } == {(feature, index): share for feature in shares for index, share in enumerate(shares[feature])}
        prior = model.metadata["class_prior"]
        assert {species: sample("penguin_training_class_prior", species=species) for species in prior} == prior
        present = {("penguin_out_of_distribution_total", "field", name) for name in MEASUREMENTS} | {
            ("penguin_validation_failures_total", "field", name) for name in [*Penguin.model_fields, "body", "(unknown field)"]
        }
        from prometheus_client import REGISTRY

        assert [
            series for series in sorted(present) if REGISTRY.get_sample_value(series[0], {series[1]: series[2]}) is None
        ] == []
        flagged_fields = {
            series.labels["field"]
            for family in REGISTRY.collect()
            if family.name == "penguin_out_of_distribution"
            for series in family.samples
            if series.name == "penguin_out_of_distribution_total"
        }
        assert flagged_fields == set(MEASUREMENTS)  # bounded: the measurements, nothing else
    finally:
        MODEL_INFO.remove("v-test", "test")


def test_metrics_count_predictions_confidence_and_out_of_distribution(api):
    from conftest import KNOWN_RECORDS

    gentoo = KNOWN_RECORDS[2][0]

    def counted() -> tuple[float, ...]:
        return (
            sample("penguin_predictions_total", species="Gentoo"),
            sample("penguin_out_of_distribution_total", field="body_mass_g"),
            sample("penguin_out_of_distribution_total", field="flipper_length_mm"),
            sample("penguin_out_of_distribution_rows_total"),
            sample("penguin_confidence_sum_total"),
        )

    before = counted()
    odd = api.post("/predict", json={**gentoo, "body_mass_g": 9000, "flipper_length_mm": 400}).json()
    usual = api.post("/predict_batch", json=[gentoo, gentoo]).json()
    after = counted()
    # Two fields of one row out of range: two flags, one row; the confidence sum is the answers' own.
    confidence = odd["confidence"] + sum(answer["confidence"] for answer in usual)
    assert [b - a for a, b in zip(before, after)][:4] == [3, 1, 1, 1]
    assert after[4] - before[4] == pytest.approx(confidence, abs=1e-6)


def test_confidence_is_observed_for_one_prediction_in_64_whatever_the_calls(api):
    from conftest import KNOWN_RECORDS

    from penguin_serve.serving.metrics import CONFIDENCE_SAMPLE_EVERY

    before = sample("penguin_prediction_confidence_count")
    sizes = [1, 5, 100, 3, 1, 50, 160]  # 320 predictions in calls of every size: 5 observed
    for size in sizes:
        api.post("/predict_batch", json=[KNOWN_RECORDS[2][0]] * size)
    assert sum(sizes) % CONFIDENCE_SAMPLE_EVERY == 0
    assert sample("penguin_prediction_confidence_count") - before == sum(sizes) / CONFIDENCE_SAMPLE_EVERY


def test_model_calls_reach_their_series_within_a_period_without_anyone_asking(exported_model):
    from prometheus_client import REGISTRY

    from penguin_serve.contract import encode
    from penguin_serve.model import PenguinModel
    from penguin_serve.serving.metrics import ModelCalls

    model = PenguinModel.from_files(exported_model, source="test", nthread=1)
    features = encode([Penguin(**ADELIE)] * 3)
    probabilities = model.probabilities(features)
    series = ("penguin_predictions_total", {"species": SPECIES[int(probabilities[0].argmax())]})
    before = sample(*series[:1], **series[1])
    calls = ModelCalls(every_s=0.05)
    calls.add(model, features[:1], probabilities[:1])  # two calls: counted in one pass
    calls.add(model, features[1:], probabilities[1:])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and REGISTRY.get_sample_value(*series) < before + 3:
        time.sleep(0.02)
    assert REGISTRY.get_sample_value(*series) == before + 3


def model_and_one_call(exported_model):
    from penguin_serve.contract import encode
    from penguin_serve.model import PenguinModel

    model = PenguinModel.from_files(exported_model, source="test", nthread=1)
    rows = encode([Penguin(**ADELIE)])
    return model, rows, model.probabilities(rows)


def test_a_pass_counts_each_call_by_its_own_models_training_ranges(exported_model):
    import dataclasses

    from penguin_serve.contract import MEASUREMENTS
    from penguin_serve.serving.metrics import ModelCalls

    model, rows, probabilities = model_and_one_call(exported_model)
    narrow = dataclasses.replace(model, metadata={**model.metadata, "training_ranges": dict.fromkeys(MEASUREMENTS, [0, 1])})

    def counted() -> list[float]:
        fields = [sample("penguin_out_of_distribution_total", field=name) for name in MEASUREMENTS]
        return [sample("penguin_out_of_distribution_rows_total"), *fields]

    before = counted()
    calls = ModelCalls(every_s=3600)  # counted below, in one pass
    for each in (model, narrow, narrow):  # the same rows: in range for the model, outside the narrow one's ranges
        calls.add(each, rows, probabilities)
    calls.count()
    assert [after - earlier for earlier, after in zip(before, counted())] == [2] * (1 + len(MEASUREMENTS))


def test_a_pass_that_fails_is_logged_and_the_next_counts_afresh(exported_model, caplog):
    import dataclasses

    from penguin_serve.serving.metrics import ModelCalls

    model, rows, probabilities = model_and_one_call(exported_model)
    broken = dataclasses.replace(model, metadata={**model.metadata, "training_ranges": {}})
    series = {"species": SPECIES[int(probabilities[0].argmax())]}
    calls = ModelCalls(every_s=0.05)

    def within_seconds(condition) -> bool:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not condition():
            time.sleep(0.02)
        return condition()

    def logged():
        return [record for record in caplog.records if record.name == "penguin_serve.serving.metrics"]

    with caplog.at_level("ERROR", logger="penguin_serve.serving.metrics"):
        calls.add(broken, rows, probabilities)
        assert within_seconds(logged)
    (record,) = logged()
    assert record.getMessage() == "counting model calls into /metrics failed" and record.exc_info
    counted = sample("penguin_predictions_total", **series)
    calls.add(model, rows, probabilities)
    assert within_seconds(lambda: sample("penguin_predictions_total", **series) == counted + 1)


def test_a_worker_that_exits_counts_the_model_calls_it_still_holds(exported_model, tmp_path):
    import subprocess
    import sys

    from conftest import REPO_ROOT
    from prometheus_client.multiprocess import MultiProcessCollector

    one_call_then_exit = (
        "import sys; from penguin_serve.contract import EXAMPLE, Penguin, encode; "
        "from penguin_serve.model import PenguinModel; from penguin_serve.serving.metrics import MODEL_CALLS; "
        "model = PenguinModel.from_files(sys.argv[1], source='test', nthread=1); rows = encode([Penguin(**EXAMPLE)] * 2); "
        "MODEL_CALLS.add(model, rows, model.probabilities(rows))"  # and exits at once, long before a period ends
    )
    subprocess.run(
        [sys.executable, "-c", one_call_then_exit, str(exported_model)],
        cwd=REPO_ROOT,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
        check=True,
        timeout=120,
    )
    counted = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in MultiProcessCollector.merge([str(path) for path in tmp_path.glob("*.db")])
        for sample in family.samples
    }
    assert sum(value for (name, _), value in counted.items() if name == "penguin_predictions_total") == 2
    assert counted[("penguin_model_call_rows_count", ())] == 1


def test_one_row_in_n_is_picked_at_a_fixed_stride_across_calls_of_any_size():
    from penguin_serve.serving.metrics import EveryNth

    every_64, seen, picked = EveryNth(64), 0, []
    # 58 after the 1: a call exactly as long as the rows still to skip picks none.
    for size in [1, 5, 100, 3, 1, 50, 160, 10, 10, 10, 10, 10, 10, 10, 64, 63, 1, 58, 1]:
        rows = every_64.rows(size)
        indexes = [] if rows is None else [seen + index for index in range(size)[rows]]
        assert (rows is None) == (not indexes), size  # None where no row is picked: most calls slice nothing
        picked += indexes
        seen += size
    assert picked == list(range(0, seen, 64))


def test_metrics_count_validation_failures_by_field_with_bounded_labels(api):
    before = (
        sample("penguin_validation_failures_total", field="island"),
        sample("penguin_validation_failures_total", field="(unknown field)"),
    )
    api.post("/predict", json={**ADELIE, "island": "Mars", "client-chosen-name": 1})
    after = (
        sample("penguin_validation_failures_total", field="island"),
        sample("penguin_validation_failures_total", field="(unknown field)"),
    )
    assert [b - a for a, b in zip(before, after)] == [1, 1]
    assert sample("penguin_validation_failures_total", field="client-chosen-name") == 0


def test_typed_methods_answer_in_process_with_the_json_data_of_their_return_type_that_http_clients_read(api):
    from pydantic import TypeAdapter

    import service
    from penguin_serve.contract import PenguinColumns

    instance = bentoml.get_current_service()  # the one the api fixture's app started
    penguin = Penguin(**ADELIE)
    columns = {name: [value] * 2 for name, value in ADELIE.items()}
    asked = {  # .local: BentoML's in-process call, no self-proxy
        "/predict": (instance.predict.local(penguin), ADELIE),
        "/predict_batch": (instance.predict_batch.local([penguin, penguin]), [ADELIE, ADELIE]),
        "/explain": (instance.explain.local(penguin), ADELIE),
    }
    for path, (in_process, body) in asked.items():
        answer = asyncio.run(in_process)
        assert answer == api.post(path, json=body).json(), path
        response_type = service.ROUTES[path].response
        assert TypeAdapter(response_type).dump_python(TypeAdapter(response_type).validate_python(answer)) == answer, path
    in_columns = asyncio.run(instance.predict_batch.local(PenguinColumns(**columns)))
    assert in_columns == api.post("/predict_batch", json=columns).json() and set(in_columns) == set(Prediction.model_fields)


def test_every_typed_method_is_a_route_the_http_lane_answers_and_the_spec_documents(api):
    import re

    import service
    from penguin_serve.contract import BatchRequest, Explanation, FeedbackRequest, PredictionColumns, Receipt
    from penguin_serve.serving.inference_protocol import InferenceRequest, InferenceResponse

    flat = ["/predict", "/predict_batch", "/explain", "/feedback"]
    protocol = ["/v2/models/{model}/infer", "/v2/models/{model}/versions/{version}/infer"]
    assert {path: (route.request, route.response) for path, route in service.ROUTES.items()} == {
        "/predict": (Penguin, Prediction),
        "/predict_batch": (BatchRequest, list[Prediction] | PredictionColumns),
        "/explain": (Penguin, Explanation),
        "/feedback": (FeedbackRequest, list[Receipt] | Receipt),
        **{path: (InferenceRequest, InferenceResponse) for path in protocol},
    }
    assert list(service.ROUTES) == flat + protocol  # service.py's order, the spec's
    assert sorted(service.ROUTES) == sorted(api.route for api in service.PenguinClassifier.apis.values())
    # BentoML's own spec, which `bentoml build` writes into the bento, builds for every method's types.
    assert set(service.ROUTES) <= set(service.PenguinClassifier.openapi_spec.paths)
    # BentoML's spans cost more than the model: none for any route, whatever its path's values.
    excluded = re.compile("|".join(service.PenguinClassifier.config["tracing"]["excluded_urls"]))
    for url in ("/predict", "/predict_batch", "/explain", "/feedback", "/v2/models/a/infer", "/v2/models/a/versions/1/infer"):
        assert excluded.search(f"http://127.0.0.1:3000{url}"), url
    assert not excluded.search("http://127.0.0.1:3000/v2/models/a/versions/1")
    spec = api.get("/docs.json").json()
    for path in flat:
        summary, description = inspect.cleandoc(service.PenguinClassifier.apis[path[1:]].doc).split("\n\n", 1)
        assert spec["paths"][path]["post"]["summary"] == summary
        assert spec["paths"][path]["post"]["description"] == " ".join(description.split())
        assert api.post(path, json={}).status_code == 422  # the lane's contract, not BentoML's 400
    # The protocol's routes follow its own document (tests/test_inference_protocol.py), and its 400.
    assert not any(path.startswith("/v2") for path in spec["paths"])
    for path in ("/v2/models/penguin_classifier/infer", "/v2/models/penguin_classifier/versions/1/infer"):
        assert api.post(path, json={}).status_code == 400


def test_a_typed_method_becomes_a_route_and_one_the_lane_cannot_answer_is_named_with_what_to_change():
    from types import SimpleNamespace

    from penguin_serve.contract import EXAMPLES
    from penguin_serve.serving.endpoints import UnservableMethod, route_of

    async def well(self, penguin: Penguin, /) -> Prediction:
        """Classify
        one penguin

        Its measurements
        as JSON.

        One answer.
        """

    async def keyword(self, penguin: Penguin) -> Prediction:
        """Summary\n\nDescription."""

    async def two(self, penguin: Penguin, other: Penguin, /) -> Prediction:
        """Summary\n\nDescription."""

    async def untyped(self, penguin, /):
        """Summary\n\nDescription."""

    async def unanswered(self, penguin: Penguin, /):
        """Summary\n\nDescription."""

    async def undocumented(self, penguin: Penguin, /) -> Prediction: ...

    async def unexampled(self, penguin: dict, /) -> Prediction:
        """Summary\n\nDescription."""

    async def summary_only(self, penguin: Penguin, /) -> Prediction:
        """Summary"""

    def method(func):
        return SimpleNamespace(name=func.__name__, route=f"/{func.__name__}", func=func, doc=func.__doc__)

    route = route_of(method(well))
    assert (route.path, route.request, route.response, route.call) == ("/well", Penguin, Prediction, well)
    assert (route.summary, route.description) == ("Classify one penguin", "Its measurements as JSON. One answer.")
    assert route.examples == dict(zip(SPECIES, EXAMPLES))
    one_body = "must take its request body as one positional-only parameter"
    expected = {
        keyword: f"@bentoml.api method keyword {one_body} (def keyword(self, body: Type, /) -> Answer), not (penguin)",
        two: f"@bentoml.api method two {one_body} (def two(self, body: Type, /) -> Answer), not (penguin, other)",
        untyped: "@bentoml.api method untyped must annotate its request and its return type",
        unanswered: "@bentoml.api method unanswered must annotate its request and its return type",
        unexampled: "@bentoml.api method unexampled's request type has no examples for the spec: add them to REQUEST_EXAMPLES",
        undocumented: "@bentoml.api method undocumented needs a docstring: a summary, a blank line, a description",
        summary_only: "@bentoml.api method summary_only needs a docstring: a summary, a blank line, a description",
    }
    for func, message in expected.items():
        with pytest.raises(UnservableMethod) as refused:
            route_of(method(func))
        assert str(refused.value) == message


@pytest.mark.slow  # starts a Python process that imports BentoML
def test_a_service_with_a_typed_method_the_http_lane_cannot_answer_refuses_to_start(tmp_path):
    """The routes are read where the service module is imported, so `bentoml serve` stops with the message."""
    import subprocess
    import sys

    from conftest import REPO_ROOT

    source = (REPO_ROOT / "service.py").read_text()
    later = '    @bentoml.api\n    async def later(self, penguin: Penguin) -> Prediction:\n        """Later\n\n        Soon.\n        """\n\n'
    extended = source.replace("    @bentoml.api\n    async def explain", later + "    @bentoml.api\n    async def explain")
    assert extended != source
    (tmp_path / "extended_service.py").write_text(extended)
    result = subprocess.run(
        [sys.executable, "-c", "import extended_service"],
        cwd=REPO_ROOT,  # where `bentoml serve` runs: the image's requirements file is found from there
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert (
        "UnservableMethod: @bentoml.api method later must take its request body as one positional-only parameter" in result.stderr
    )


def test_front_page_names_the_service_the_source_and_the_model_with_a_curl_line_for_this_origin(api):
    from penguin_serve.contract import EXAMPLE

    version = api.get("/model").json()["version"]
    page = api.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<title>penguin-serve</title>" in page.text
    assert f'<p id="versions">bento none (source) &middot; model {version}</p>' in page.text
    curl = f"curl -X POST http://testserver/predict -H 'Content-Type: application/json' -d '{json.dumps(EXAMPLE)}'"
    shown = re.search(r"<code>(.*?)</code>", page.text).group(1)
    assert html.unescape(shown) == curl and '"' not in shown  # escaped, so the browser shows it as typed
    assert api.get("/docs.json").json()["info"]["version"] == f"bento none (source), model {version}"


def test_model_card_is_the_served_models_markdown(api):
    card = api.get("/model/card")
    assert card.status_code == 200 and card.headers["content-type"].startswith("text/markdown")
    assert card.text.startswith(f"# Model card: penguin_classifier {api.get('/model').json()['version']}\n")


def test_before_the_model_loads_every_page_says_loading_and_the_model_pages_answer_503():
    """The pages over a worker whose model has not loaded (what a request meets during start-up)."""
    from types import SimpleNamespace

    from starlette.testclient import TestClient

    import service
    from penguin_serve.serving.get_app import create_app
    from penguin_serve.serving.predictor import NOT_READY_MESSAGE

    client = TestClient(create_app(SimpleNamespace(model=None, instance_ready=False), service.ROUTES))
    for path in ("/model", "/model/card"):
        answer = client.get(path)
        assert (answer.status_code, answer.json()) == (503, {"error": NOT_READY_MESSAGE})
    health = client.get("/health")
    assert (health.status_code, health.json()) == (503, {"status": "loading", "model_version": None})
    assert "bento none (source) &middot; model loading" in client.get("/").text
    assert client.get("/docs.json").json()["info"]["version"] == "bento none (source), model loading"


def test_health_names_the_revision_that_answered(api, monkeypatch):
    import dataclasses

    from penguin_serve.serving import get_app

    monkeypatch.setattr(get_app, "SETTINGS", dataclasses.replace(get_app.SETTINGS, revision="penguin-00002-abc"))
    assert api.get("/health").json()["revision"] == "penguin-00002-abc"
