"""Code: the validation matrix, through HTTP. Each rule, its status code and the message naming the field."""

import json

import pytest
from conftest import ADELIE

from penguin_serve.contract import MAX_BATCH_RECORDS


def post_json(api, path, body):
    # json.dumps writes NaN/Infinity literally, as a careless client would.
    return api.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "change",
    [
        {"sex": "Male"},
        {"sex": "MALE"},
        {"sex": "female"},
        {"sex": None},
        {"island": "torgersen"},
        {"island": "BISCOE"},
        {"year": None},
        {"bill_length_mm": 40},
        {"body_mass_g": 15000},
    ],
    ids=repr,
)
def test_accepted(api, change):
    response = post_json(api, "/predict", {**ADELIE, **change})
    assert response.status_code == 200, response.text
    assert response.json()["prediction"] in ("Adelie", "Chinstrap", "Gentoo")


@pytest.mark.parametrize("absent", ["sex", "year"])
def test_optional_fields_may_be_absent(api, absent):
    body = {k: v for k, v in ADELIE.items() if k != absent}
    assert post_json(api, "/predict", body).status_code == 200


REJECTED = [
    ("bill_length_mm", float("nan"), "finite number"),
    ("bill_depth_mm", float("inf"), "finite number"),
    ("flipper_length_mm", float("-inf"), "finite number"),
    ("body_mass_g", 0, "greater than 0"),
    ("bill_length_mm", -39.1, "greater than 0"),
    ("bill_length_mm", 121, "less than or equal to 120"),
    ("bill_depth_mm", 50.5, "less than or equal to 50"),
    ("flipper_length_mm", 401, "less than or equal to 400"),
    ("body_mass_g", 3.75e6, "less than or equal to 15000"),
    ("body_mass_g", "3750", "valid number"),
    ("bill_depth_mm", True, "valid number"),
    ("bill_depth_mm", None, "valid number"),
    ("island", "Atlantis", "'Biscoe', 'Dream' or 'Torgersen'"),
    ("island", 3, "'Biscoe', 'Dream' or 'Torgersen'"),
    ("island", None, "'Biscoe', 'Dream' or 'Torgersen'"),
    ("sex", "unknown", "'female' or 'male'"),
    ("year", 2009.5, "valid integer"),
    ("year", 1850, "greater than or equal to 1900"),
    ("year", 2200, "less than or equal to 2100"),
    ("colour", "black", "Extra inputs are not permitted"),
]


@pytest.mark.parametrize("field, value, message", REJECTED, ids=[f"{f}={v!r}" for f, v, _ in REJECTED])
def test_rejected_with_422_naming_field_and_reason(api, field, value, message):
    response = post_json(api, "/predict", {**ADELIE, field: value})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation failed"
    assert [(e["field"], message in e["message"]) for e in body["detail"]] == [(field, True)]


@pytest.mark.parametrize("missing", ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "island"])
def test_required_field_missing(api, missing):
    body = {k: v for k, v in ADELIE.items() if k != missing}
    detail = post_json(api, "/predict", body).json()["detail"]
    assert detail == [{"field": missing, "message": "Field required", "type": "missing"}]


def test_every_invalid_field_is_listed(api):
    response = post_json(api, "/predict", {**ADELIE, "sex": "x", "body_mass_g": -1, "extra": 1})
    assert response.status_code == 422
    assert sorted(e["field"] for e in response.json()["detail"]) == ["body_mass_g", "extra", "sex"]


def test_body_that_is_not_an_object(api):
    response = post_json(api, "/predict", [ADELIE])
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "body"


def test_malformed_json(api):
    response = api.post("/predict", content=b'{"bill_length_mm": 39.1,', headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed JSON")


def test_empty_body(api):
    response = api.post("/predict", content=b"", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("empty request body")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/vnd.bentoml+pickle"],
)
def test_wrong_content_type(api, content_type):
    response = api.post("/predict", content=json.dumps(ADELIE), headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert "send application/json" in response.json()["error"]


def test_content_type_with_charset_is_json(api):
    response = api.post("/predict", content=json.dumps(ADELIE), headers={"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 200


def test_batch_error_names_record_index_and_field_and_answers_nothing(api):
    records = [ADELIE, ADELIE, {**ADELIE, "island": "Mars"}, {**ADELIE, "bill_depth_mm": float("nan")}]
    response = post_json(api, "/predict_batch", records)
    assert response.status_code == 422
    assert [(e["index"], e["field"]) for e in response.json()["detail"]] == [(2, "island"), (3, "bill_depth_mm")]
    assert "prediction" not in response.text


def test_batch_must_not_be_empty(api):
    response = post_json(api, "/predict_batch", [])
    assert response.status_code == 422
    assert "at least 1 item" in response.json()["detail"][0]["message"]


def test_batch_size_limit(api):
    response = post_json(api, "/predict_batch", [ADELIE] * (MAX_BATCH_RECORDS + 1))
    assert response.status_code == 422
    assert f"at most {MAX_BATCH_RECORDS} items" in response.json()["detail"][0]["message"]


def test_batch_at_the_limit_is_answered(api):
    response = post_json(api, "/predict_batch", [ADELIE] * MAX_BATCH_RECORDS)
    assert response.status_code == 200
    assert len(response.json()) == MAX_BATCH_RECORDS


@pytest.mark.parametrize("body", [3, "penguins", None, True], ids=repr)
def test_batch_body_must_be_a_list_or_columns(api, body):
    response = post_json(api, "/predict_batch", body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["field"] == "body"


def test_one_record_sent_as_a_batch_is_read_as_columns_and_rejected(api):
    response = post_json(api, "/predict_batch", ADELIE)
    assert response.status_code == 422
    assert {e["field"]: e["message"] for e in response.json()["detail"]}["bill_length_mm"] == "Input should be a valid array"


@pytest.mark.parametrize("body", [b"\x00", b"[1,", b"nul", b"\xff\xfe"], ids=repr)
def test_batch_body_that_is_not_json_is_400_not_500(api, body):
    # Found by schemathesis: BentoML's batch path parses with json.loads and answered these with 500.
    response = api.post("/predict_batch", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("malformed JSON")


def test_batch_body_that_is_not_utf8_is_400(api):
    response = api.post("/predict_batch", content=b"\x89\x91", headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def columns(records):
    return {name: [record.get(name) for record in records] for name in records[0]}


def test_columnar_batch_is_answered_in_columns(api):
    gentoo = {
        **ADELIE,
        "bill_length_mm": 50.0,
        "bill_depth_mm": 15.0,
        "flipper_length_mm": 230,
        "body_mass_g": 5500,
        "island": "biscoe",
        "sex": None,
    }
    response = post_json(api, "/predict_batch", columns([ADELIE, gentoo]))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["prediction"] == ["Adelie", "Gentoo"]
    assert list(answer["probabilities"]) == ["Adelie", "Chinstrap", "Gentoo"]
    assert answer["confidence"] == [max(p) for p in zip(*answer["probabilities"].values())]
    assert answer["out_of_distribution"] == [[], []] and answer["warnings"] == [[], []]


@pytest.mark.parametrize("absent", ["sex", "year"])
def test_optional_columns_may_be_absent(api, absent):
    body = {name: values for name, values in columns([ADELIE] * 3).items() if name != absent}
    assert post_json(api, "/predict_batch", body).status_code == 200


def test_columns_of_different_lengths_are_422(api):
    body = {**columns([ADELIE] * 3), "island": ["Dream"] * 2}
    response = post_json(api, "/predict_batch", body)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["field"] == "body" and error["message"].startswith("columns must have the same length")
    assert "'island': 2" in error["message"]


def test_columnar_error_names_row_index_and_field(api):
    body = columns([ADELIE, ADELIE, {**ADELIE, "island": "Mars"}, {**ADELIE, "body_mass_g": -1}])
    response = post_json(api, "/predict_batch", {**body, "colour": ["black"] * 4})
    assert response.status_code == 422
    assert [(e.get("index"), e["field"]) for e in response.json()["detail"]] == [
        (3, "body_mass_g"),
        (2, "island"),
        (None, "colour"),
    ]


def test_empty_columns_are_422(api):
    response = post_json(api, "/predict_batch", {name: [] for name in ADELIE})
    assert response.status_code == 422
    assert "at least 1 item" in response.json()["detail"][0]["message"]
