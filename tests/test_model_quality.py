"""Model: quality measured through the HTTP API, and proof that every input feature reaches the model."""

import numpy as np
import pytest
from conftest import KNOWN_RECORDS

from penguin_serve.contract import SPECIES
from penguin_serve.training.dataset import load_dataset

# Any change of sex or island that moves no bird of the dataset by more than this never reached the model.
MOVED = 0.01


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


def batch_probabilities(api, records):
    response = api.post("/predict_batch", json=records)
    assert response.status_code == 200, response.text
    return np.array([[answer["probabilities"][s] for s in SPECIES] for answer in response.json()])


@pytest.mark.parametrize(
    "field, value, other",
    [("sex", "male", "female"), ("sex", "male", None), ("island", "Biscoe", "Dream"), ("island", "Torgersen", "Dream")],
)
def test_sex_and_island_reach_the_model(api, field, value, other):
    """Every bird of the dataset with one value of the field and with the other: some of them move."""
    birds = [p.model_dump(mode="json") for p in load_dataset().penguins]
    with_value = batch_probabilities(api, [{**b, field: value} for b in birds])
    moved = np.abs(with_value - batch_probabilities(api, [{**b, field: other} for b in birds])).max()
    assert moved > MOVED, moved


def test_year_does_not_change_the_answer(api):
    birds = [p.model_dump(mode="json") for p in load_dataset().penguins]
    as_2007 = batch_probabilities(api, [{**b, "year": 2007} for b in birds])
    assert (as_2007 == batch_probabilities(api, [{**b, "year": 2009} for b in birds])).all()


def test_batch_answers_in_order_and_match_single_predictions(api):
    records = [record for record, _ in KNOWN_RECORDS]
    batch = api.post("/predict_batch", json=records).json()
    assert [answer["prediction"] for answer in batch] == [species for _, species in KNOWN_RECORDS]
    assert batch == [api.post("/predict", json=record).json() for record in records]


def test_out_of_distribution_measurement_is_flagged(api):
    record, _ = KNOWN_RECORDS[2]
    answer = api.post("/predict", json={**record, "body_mass_g": 9000}).json()
    low, high = api.get("/model").json()["training_ranges"]["body_mass_g"]
    assert answer["out_of_distribution"] == ["body_mass_g"]
    assert high < 9000 and answer["warnings"] == [f"body_mass_g=9000 is outside the training range {low:g}..{high:g}"]


def test_in_distribution_measurements_carry_no_warning(api):
    answer = api.post("/predict", json=KNOWN_RECORDS[0][0]).json()
    assert answer["out_of_distribution"] == [] and answer["warnings"] == []
