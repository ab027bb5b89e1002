"""Model: quality measured through the HTTP API, and proof that every input feature reaches the model."""

import pytest
from conftest import KNOWN_RECORDS

from penguin_serve.contract import SPECIES
from penguin_serve.training.dataset import load_dataset

# A Dream Chinstrap/Adelie borderline bird from the dataset: sex and island both move its probabilities.
BORDERLINE = {
    "bill_length_mm": 40.9,
    "bill_depth_mm": 16.6,
    "flipper_length_mm": 187,
    "body_mass_g": 3200,
    "sex": "female",
    "island": "Dream",
}


def test_accuracy_over_the_whole_dataset(api):
    data = load_dataset()
    records = [p.model_dump(mode="json") for p in data.penguins]
    response = api.post("/predict_batch", json=records)
    assert response.status_code == 200
    predicted = [answer["prediction"] for answer in response.json()]
    accuracy = sum(p == SPECIES[label] for p, label in zip(predicted, data.labels)) / len(records)
    assert accuracy >= 0.97, accuracy


@pytest.mark.parametrize("record, species", KNOWN_RECORDS, ids=[s for _, s in KNOWN_RECORDS])
def test_known_records(api, record, species):
    answer = api.post("/predict", json=record).json()
    assert answer["prediction"] == species
    assert answer["confidence"] == max(answer["probabilities"].values()) > 0.5
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert list(answer["probabilities"]) == list(SPECIES)


def probabilities(api, record):
    return api.post("/predict", json=record).json()["probabilities"]


@pytest.mark.parametrize("change", [{"sex": "male"}, {"sex": None}, {"island": "Biscoe"}, {"island": "Torgersen"}], ids=repr)
def test_sex_and_island_reach_the_model(api, change):
    before = probabilities(api, BORDERLINE)
    after = probabilities(api, {**BORDERLINE, **change})
    assert max(abs(before[s] - after[s]) for s in SPECIES) > 0.05, (before, after)


def test_year_does_not_change_the_answer(api):
    assert probabilities(api, {**BORDERLINE, "year": 2007}) == probabilities(api, {**BORDERLINE, "year": 2009})


def test_batch_answers_in_order_and_match_single_predictions(api):
    records = [record for record, _ in KNOWN_RECORDS]
    batch = api.post("/predict_batch", json=records).json()
    assert [answer["prediction"] for answer in batch] == [species for _, species in KNOWN_RECORDS]
    assert batch == [api.post("/predict", json=record).json() for record in records]


def test_out_of_distribution_measurement_is_flagged(api):
    record, _ = KNOWN_RECORDS[2]
    answer = api.post("/predict", json={**record, "body_mass_g": 9000}).json()
    assert answer["out_of_distribution"] == ["body_mass_g"]
    assert answer["warnings"] == ["body_mass_g=9000 is outside the training range 2700..6300"]


def test_in_distribution_measurements_carry_no_warning(api):
    answer = api.post("/predict", json=KNOWN_RECORDS[0][0]).json()
    assert answer["out_of_distribution"] == [] and answer["warnings"] == []
