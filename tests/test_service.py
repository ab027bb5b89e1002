"""Code: the service's readiness, model-info, documentation and probe endpoints."""

import asyncio
import threading

import bentoml
import pytest

import service
from penguin_serve.contract import FEATURE_NAMES, SPECIES, Penguin

from conftest import ADELIE


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


def test_openapi_spec_documents_the_typed_endpoints(api):
    spec = api.get("/docs.json").json()
    assert {"/predict", "/predict_batch"} <= set(spec["paths"])
    penguin = spec["components"]["schemas"]["Penguin"]
    assert set(penguin["required"]) == {"bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island"}
    assert penguin["additionalProperties"] is False
    records, columns = spec["paths"]["/predict_batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert records["maxItems"] == 10_000 and records["items"] == {"$ref": "#/components/schemas/Penguin"}
    assert columns == {"$ref": "#/components/schemas/PenguinColumns"}
    column_schemas = spec["components"]["schemas"]["PenguinColumns"]["properties"]
    assert set(column_schemas) == set(penguin["properties"]) and column_schemas["island"]["maxItems"] == 10_000
    answers = spec["paths"]["/predict_batch"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answers["oneOf"][1] == {"$ref": "#/components/schemas/PredictionColumns"}


def test_liveness(api):
    assert api.get("/livez").status_code == 200


def test_not_ready_and_refusing_predictions_until_the_model_passed_its_self_check(exported_model, monkeypatch):
    # The one timing we cannot cause for real in-process: hold the loader until the test lets it go.
    release = threading.Event()
    real_from_files = service.PenguinModel.from_files

    def held_from_files(*args, **kwargs):
        release.wait(10)
        return real_from_files(*args, **kwargs)

    monkeypatch.setattr(service.PenguinModel, "from_files", held_from_files)
    instance = service.PenguinClassifier.inner()
    assert instance.__is_ready__() is False
    with pytest.raises(bentoml.exceptions.ServiceUnavailable):
        asyncio.run(instance.predict(Penguin(**ADELIE)))
    release.set()
    for _ in range(500):
        if instance.__is_ready__():
            break
        threading.Event().wait(0.01)
    assert instance.__is_ready__() is True


def sample(name, **labels):
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_predictions_confidence_and_out_of_distribution(api):
    from conftest import KNOWN_RECORDS

    gentoo = KNOWN_RECORDS[2][0]
    before = (sample("penguin_predictions_total", species="Gentoo"), sample("penguin_prediction_confidence_count"),
              sample("penguin_out_of_distribution_total", field="body_mass_g"))
    api.post("/predict", json={**gentoo, "body_mass_g": 9000})
    api.post("/predict_batch", json=[gentoo, gentoo])
    after = (sample("penguin_predictions_total", species="Gentoo"), sample("penguin_prediction_confidence_count"),
             sample("penguin_out_of_distribution_total", field="body_mass_g"))
    assert [b - a for a, b in zip(before, after)] == [3, 3, 1]


def test_metrics_count_validation_failures_by_field_with_bounded_labels(api):
    before = (sample("penguin_validation_failures_total", field="island"),
              sample("penguin_validation_failures_total", field="(unknown field)"))
    api.post("/predict", json={**ADELIE, "island": "Mars", "client-chosen-name": 1})
    after = (sample("penguin_validation_failures_total", field="island"),
             sample("penguin_validation_failures_total", field="(unknown field)"))
    assert [b - a for a, b in zip(before, after)] == [1, 1]
    assert sample("penguin_validation_failures_total", field="client-chosen-name") == 0


def test_bulk_histogram_observation_matches_observing_one_by_one():
    from prometheus_client import CollectorRegistry, Histogram

    from penguin_serve.metrics import observe_all

    values = [0.3, 0.4, 0.41, 0.5, 0.95, 0.99, 0.995, 1.0, 0.7]
    registry = CollectorRegistry()
    one_by_one, bulk = (Histogram(name, "test", buckets=(0.4, 0.5, 0.99, 1.0), registry=registry) for name in ("one", "bulk"))
    for value in values:
        one_by_one.observe(value)
    observe_all(bulk, values)
    assert [(s.name.replace("one", "bulk"), s.labels, s.value) for s in one_by_one.collect()[0].samples
            if not s.name.endswith("_created")] == \
        [(s.name, s.labels, s.value) for s in bulk.collect()[0].samples if not s.name.endswith("_created")]
    assert registry.get_sample_value("bulk_bucket", {"le": "0.4"}) == 2
    assert registry.get_sample_value("bulk_sum") == pytest.approx(sum(values))


def test_typed_methods_answer_in_process_like_the_http_routes(api):
    from penguin_serve.contract import PenguinColumns, PredictionColumns

    instance = bentoml.get_current_service()  # the one the api fixture's app started
    penguin = Penguin(**ADELIE)
    single = asyncio.run(instance.predict.local(penguin))  # .local: BentoML's in-process call, no self-proxy
    records = asyncio.run(instance.predict_batch.local([penguin, penguin]))
    columns = asyncio.run(instance.predict_batch.local(PenguinColumns(**{name: [value] * 2 for name, value in ADELIE.items()})))
    over_http = api.post("/predict", json=ADELIE).json()
    assert single.model_dump() == over_http and [r.model_dump() for r in records] == [over_http] * 2
    assert isinstance(columns, PredictionColumns)
    assert columns.model_dump() == api.post("/predict_batch", json={name: [value] * 2 for name, value in ADELIE.items()}).json()
