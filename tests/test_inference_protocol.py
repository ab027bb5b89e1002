"""Code: the Open Inference Protocol v2 over the same model. Its answers validate against the protocol's own
OpenAPI document (tests/protocols/open_inference_rest.yaml), agree with /predict on every bird, name the tensor
and the reason when a request is bad, and a real protocol client (Triton's tritonclient) reads them from a
real `bentoml serve`."""

import asyncio
import os
from pathlib import Path

import jsonschema_rs
import numpy as np
import pytest
import requests
import yaml
from conftest import ADELIE, KNOWN_RECORDS

from penguin_serve.contract import MODEL_NAME, SPECIES, Penguin
from penguin_serve.serving.inference_protocol import INPUTS
from penguin_serve.training.dataset import load_dataset

PROTOCOL = yaml.safe_load((Path(__file__).parent / "protocols" / "open_inference_rest.yaml").read_text())
MODEL = f"/v2/models/{MODEL_NAME}"
INFER = f"{MODEL}/infer"
# The document's operation of each route here, by its summary (the document lists only the versioned form of a
# model's routes; "versions" is optional in the protocol).
OPERATIONS = {
    operation["summary"]: operation
    for methods in PROTOCOL["paths"].values()
    for operation in methods.values()
    if "summary" in operation
}
DOCUMENTED = {
    "/v2": "Server Metadata",
    "/v2/": "Server Metadata",
    "/v2/health/live": "Server Live",
    "/v2/health/ready": "Server Ready",
    MODEL: "Model Metadata",
    f"{MODEL}/ready": "Model Ready",
    INFER: "Inference",
}


def schema(name: str) -> jsonschema_rs.Draft4Validator:
    return jsonschema_rs.Draft4Validator({"$ref": f"#/components/schemas/{name}", "components": PROTOCOL["components"]})


def conforming(response, route: str):
    """The response's JSON, after checking it against the document: a documented status with its schema, or an
    error status with the protocol's error object."""
    operation = OPERATIONS[DOCUMENTED[route]]
    documented = operation["responses"].get(str(response.status_code))
    body = response.json()
    if documented is not None and "content" in documented:
        reference = documented["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    else:
        assert documented is not None or response.status_code >= 400, (response.status_code, route)
        reference = "inference_error_response" if response.status_code >= 400 else None
    if reference is not None:
        errors = [error.message for error in schema(reference).iter_errors(body)]
        assert not errors, (reference, errors, body)
    return body


def tensors(records: list[dict]) -> list[dict]:
    """The records as the protocol's input tensors, one per field (an unknown sex as the empty string)."""
    inputs = []
    for name, datatype in INPUTS.items():
        values = [record.get(name) for record in records]
        if name == "sex":
            values = ["" if value is None else value for value in values]
        if all(value is not None for value in values):
            inputs.append({"name": name, "shape": [len(records)], "datatype": datatype, "data": values})
    return inputs


def infer(api, records, route=INFER, **body):
    return api.post(route, json={"inputs": tensors(records), **body})


def test_every_bird_gets_the_probabilities_and_species_predict_gives(api):
    records = [penguin.model_dump() for penguin in load_dataset().penguins]
    response = infer(api, records)
    assert response.status_code == 200
    answer = conforming(response, INFER)
    outputs = {output["name"]: output for output in answer["outputs"]}
    assert outputs["probabilities"]["shape"] == [len(records), 3] and outputs["label"]["shape"] == [len(records)]
    probabilities = np.array(outputs["probabilities"]["data"]).reshape(-1, 3)
    flat = [api.post("/predict", json=record).json() for record in records]
    assert answer["model_name"] == MODEL_NAME and answer["model_version"] == flat[0]["model_version"]
    assert probabilities.tolist() == [[answer["probabilities"][s] for s in SPECIES] for answer in flat]  # identical
    assert outputs["label"]["data"] == [answer["prediction"] for answer in flat]
    assert outputs["probabilities"]["datatype"] == "FP32" and outputs["label"]["datatype"] == "BYTES"


def test_the_request_id_comes_back_and_the_outputs_asked_for_in_their_order(api):
    version = api.get("/model").json()["version"]
    records = [record for record, _ in KNOWN_RECORDS]
    asked = infer(api, records, route=f"{MODEL}/versions/{version}/infer", id="ring-42", outputs=[{"name": "label"}])
    answer = conforming(asked, INFER)
    assert answer["id"] == "ring-42" and answer["model_version"] == version
    assert [output["name"] for output in answer["outputs"]] == ["label"]
    assert answer["outputs"][0]["data"] == [species for _, species in KNOWN_RECORDS]
    both = conforming(infer(api, records, outputs=[{"name": "label"}, {"name": "probabilities"}]), INFER)
    assert [output["name"] for output in both["outputs"]] == ["label", "probabilities"] and "id" not in both


def test_floats_for_a_year_and_doubles_for_measurements_are_read_as_the_fields_take_them(api):
    inputs = tensors([ADELIE])
    for tensor in inputs:
        tensor["datatype"] = {"FP32": "FP64", "INT32": "FP32"}.get(tensor["datatype"], tensor["datatype"])
        if tensor["name"] == "year":
            tensor["data"] = [float(ADELIE["year"])]
    answer = conforming(api.post(INFER, json={"inputs": inputs}), INFER)
    assert answer["outputs"][1]["data"] == [api.post("/predict", json=ADELIE).json()["prediction"]]


def with_tensor(name, **changes):
    inputs = tensors([ADELIE, ADELIE])
    return {"inputs": [{**tensor, **changes} if tensor["name"] == name else tensor for tensor in inputs]}


BAD_REQUESTS = [
    ({"inputs": [*tensors([ADELIE]), {"name": "beak", "shape": [1], "datatype": "FP32", "data": [1.0]}]},
     400, "input tensor 'beak' is unknown: this model's inputs are bill_length_mm, "),
    ({"inputs": tensors([ADELIE]) + tensors([ADELIE])[:1]}, 400, "input tensor 'bill_length_mm' is given twice"),
    (with_tensor("island", datatype="FP32"), 400, "input tensor 'island' has datatype FP32: expected BYTES"),
    (with_tensor("body_mass_g", shape=[2, 1]), 400, "input tensor 'body_mass_g' has shape [2, 1] and 2 values"),
    (with_tensor("body_mass_g", shape=[3]), 400, "input tensor 'body_mass_g' has shape [3] and 2 values"),
    (with_tensor("body_mass_g", data=[3750, -1], shape=[2]), 400, "input tensor 'body_mass_g'[1]: Input should be greater than 0"),
    (with_tensor("island", data=["Torgersen", "Atlantis"]), 400, "input tensor 'island'[1]: Input should be 'Biscoe', 'Dream' or 'Torgersen'"),
    (with_tensor("year", data=[2009, 2009.5]), 400, "input tensor 'year'[1]: Input should be a valid integer"),
    ({"inputs": [t for t in tensors([ADELIE]) if t["name"] != "island"]}, 400, "input tensor 'island' is missing"),
    ({"inputs": [{**t, "shape": [1], "data": t["data"][:1]} if t["name"] == "sex" else t for t in tensors([ADELIE, ADELIE])]},
     400, "input tensors differ in shape (bill_length_mm [2], "),
    ({"inputs": tensors([ADELIE]), "outputs": [{"name": "species"}]}, 400, "output tensor 'species' is unknown"),
    ({"inputs": [{"name": "island", "shape": [1], "data": ["Dream"]}]}, 400, "invalid inference request: inputs[0].datatype: Field required"),
    ({"input": tensors([ADELIE])}, 400, "invalid inference request: inputs: Field required"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "error"), BAD_REQUESTS)
def test_a_bad_request_is_the_protocols_400_naming_the_tensor_and_the_reason(api, body, status, error):
    response = api.post(INFER, json=body)
    assert response.status_code == status and conforming(response, INFER)["error"].startswith(error), response.text


def test_many_invalid_values_are_named_five_at_a_time_and_counted(api):
    from penguin_serve.serving.inference_protocol import MORE_REASONS

    response = api.post(INFER, json={"inputs": tensors([{**ADELIE, "body_mass_g": -1.0}] * (MORE_REASONS + 3))})
    error = conforming(response, INFER)["error"]
    assert response.status_code == 400 and error.count("input tensor 'body_mass_g'[") == MORE_REASONS
    assert error.endswith("; and 3 more")


def test_malformed_json_and_other_models_and_versions_are_refused_with_the_protocols_error(api):
    malformed = api.post(INFER, content=b'{"inputs": [', headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and "binary tensor data is not supported" in conforming(malformed, INFER)["error"]
    other_version = infer(api, [ADELIE], route=f"{MODEL}/versions/0/infer")
    assert other_version.status_code == 404
    assert conforming(other_version, INFER)["error"].startswith(f"model '{MODEL_NAME}' has no version '0' here")
    other_model = infer(api, [ADELIE], route="/v2/models/albatross/infer")
    assert other_model.status_code == 404 and "no model 'albatross'" in other_model.json()["error"]
    for path in (f"{MODEL}/versions/0", f"{MODEL}/versions/0/ready", "/v2/models/albatross", "/v2/models/albatross/ready"):
        assert api.get(path).status_code == 404 and "error" in api.get(path).json(), path


def test_server_and_model_metadata_and_health(api):
    version = api.get("/model").json()["version"]
    for path in ("/v2", "/v2/"):
        server = conforming(api.get(path), path)
        assert server["name"] == "penguin-serve" and server["extensions"] == []
    assert api.get("/v2/health/live").status_code == 200 and api.get("/v2/health/ready").status_code == 200
    for path in (MODEL, f"{MODEL}/versions/{version}"):
        metadata = conforming(api.get(path), MODEL)
        assert metadata["versions"] == [version] and metadata["platform"] == "xgboost"
        assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]] == [
            (name, datatype, [-1]) for name, datatype in INPUTS.items()
        ]
        assert [(t["name"], t["datatype"], t["shape"]) for t in metadata["outputs"]] == [
            ("probabilities", "FP32", [-1, 3]), ("label", "BYTES", [-1]), ("prediction_set", "BOOL", [-1, 3])
        ]  # fmt: skip
    for path in (f"{MODEL}/ready", f"{MODEL}/versions/{version}/ready"):
        assert api.get(path).status_code == 200 and api.get(path).json() == {"name": MODEL_NAME, "ready": True}


def test_a_worker_without_its_model_answers_not_ready(tmp_path):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from penguin_serve.serving.inference_protocol import GetRoutes, InferenceRequest, infer
    from penguin_serve.serving.predictor import NotReady, Predictor
    from penguin_serve.serving.readiness import InstanceReadiness

    predictor = Predictor(InstanceReadiness(1, tmp_path), load_wait_s=0.0)
    predictor.loading = False
    client = TestClient(Starlette(routes=GetRoutes(predictor, "penguin-serve", lambda: "source").routes()))
    assert client.get("/v2/health/live").status_code == 200
    for path in ("/v2/health/ready", MODEL, f"{MODEL}/ready"):
        assert client.get(path).status_code == 503, path
    assert client.get(MODEL).headers["retry-after"] == "1"
    with pytest.raises(NotReady):
        asyncio.run(infer(predictor, InferenceRequest(inputs=tensors([ADELIE]))))


def test_ready_means_every_worker_of_the_instance(api, tmp_path):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    import service
    from penguin_serve.serving.inference_protocol import GetRoutes
    from penguin_serve.serving.predictor import Predictor
    from penguin_serve.serving.readiness import InstanceReadiness

    predictor = Predictor(InstanceReadiness(2, tmp_path), load_wait_s=0.0)
    predictor.model = service.PREDICTOR.model  # this worker loaded; the instance's other one has not
    predictor.instance.worker_ready()
    client = TestClient(Starlette(routes=GetRoutes(predictor, "penguin-serve", lambda: "source").routes()))
    assert client.get("/v2/health/ready").status_code == 503 and client.get(f"{MODEL}/ready").status_code == 503
    assert client.get(MODEL).status_code == 200  # its metadata is known
    (tmp_path / str(os.getppid())).touch()  # the other worker: a live process's ready file
    assert client.get("/v2/health/ready").status_code == 200 and client.get(f"{MODEL}/ready").status_code == 200


def test_tritons_own_client_reads_health_metadata_and_answers_from_a_real_bentoml_serve(served):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=served.url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL_NAME)
        assert client.get_server_metadata()["name"] == "penguin-serve"
        metadata = client.get_model_metadata(MODEL_NAME)
        assert [t["name"] for t in metadata["inputs"]] == list(Penguin.model_fields)
        records = [record for record, _ in KNOWN_RECORDS]
        inputs = []
        for tensor in tensors(records):
            array = np.array(
                tensor["data"], dtype={"FP32": np.float32, "INT32": np.int32, "BYTES": np.object_}[tensor["datatype"]]
            )
            inputs.append(triton.InferInput(tensor["name"], [len(records)], tensor["datatype"]))
            inputs[-1].set_data_from_numpy(array, binary_data=False)
        outputs = [triton.InferRequestedOutput(name, binary_data=False) for name in ("probabilities", "label")]
        result = client.infer(MODEL_NAME, inputs, model_version=metadata["versions"][0], outputs=outputs, request_id="7")
    finally:
        client.close()
    flat = requests.post(served.url + "/predict_batch", json=records, timeout=5).json()
    assert result.get_response()["id"] == "7"
    assert result.as_numpy("label").tolist() == [species for _, species in KNOWN_RECORDS]
    np.testing.assert_array_equal(
        result.as_numpy("probabilities"), np.array([[a["probabilities"][s] for s in SPECIES] for a in flat], dtype=np.float32)
    )


def test_invalid_tensor_values_are_counted_by_field_as_the_flat_apis_are(api):
    from test_service import sample

    before = sample("penguin_validation_failures_total", field="island")
    assert api.post(INFER, json=with_tensor("island", data=["Mars", "Atlantis"])).status_code == 400
    assert sample("penguin_validation_failures_total", field="island") - before == 2
