"""Code and model: the split-conformal prediction sets, from the threshold to every answer that carries them."""

import math

import numpy as np
import pytest

from penguin_serve import conformal
from penguin_serve.contract import EXAMPLES, SPECIES

THREE = np.array(
    [
        [0.70, 0.25, 0.05],  # scores 0.70, 0.95, 1.00
        [0.10, 0.60, 0.30],  # scores 1.00, 0.60, 0.90
        [0.34, 0.33, 0.33],  # ties count as at least as likely: 0.34, 1.00, 1.00
    ],
    dtype=np.float32,
)


def test_a_species_score_is_the_probability_of_the_species_at_least_as_likely():
    np.testing.assert_allclose(
        conformal.species_scores(THREE), [[0.70, 0.95, 1.00], [1.00, 0.60, 0.90], [0.34, 1.00, 1.00]], atol=1e-6
    )


def test_the_threshold_is_the_calibration_score_of_rank_ceil_n_plus_one_times_coverage():
    probabilities = np.repeat(THREE[:1], 9, axis=0)
    labels = np.array([0, 0, 0, 0, 0, 0, 0, 1, 2])  # true-species scores: seven 0.70, then 0.95, 1.00
    assert conformal.threshold(probabilities, labels, 0.8) == pytest.approx(0.95)  # rank ceil(10 * 0.8) = 8
    assert conformal.threshold(probabilities, labels, 0.7) == pytest.approx(0.70)  # rank 7
    assert conformal.threshold(probabilities, labels, 0.9) == pytest.approx(1.00)  # rank 9 of 9
    with pytest.raises(ValueError, match="8 calibration rows cannot give a coverage of 0.9: it needs at least 9"):
        conformal.threshold(probabilities[:8], labels[:8], 0.9)


def test_a_set_holds_the_species_scored_at_most_the_threshold_and_always_the_most_likely():
    assert conformal.membership(THREE, 0.95).tolist() == [[True, True, False], [False, True, True], [True, False, False]]
    # Below every score: the most likely species alone, never an empty set.
    assert conformal.membership(THREE, 0.0).tolist() == [[True, False, False], [False, True, False], [True, False, False]]


def test_coverage_holds_on_fresh_rows_drawn_like_the_calibration_rows():
    """The guarantee itself: over many calibration and test draws from one distribution, the sets cover at least
    the target and, with continuous scores, by less than 1 / (n + 1) more."""
    rng = np.random.default_rng(7)
    n, coverage, trials = 50, 0.9, 400

    def draw(rows):
        logits = rng.normal(size=(rows, 3)) * 1.5
        probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        labels = np.array([rng.choice(3, p=p) for p in probabilities])  # the true species follows the probabilities
        return probabilities, labels

    covered = []
    for _ in range(trials):
        limit = conformal.threshold(*draw(n), coverage)
        test, labels = draw(200)
        covered.append(conformal.membership(test, limit)[np.arange(200), labels].mean())
    assert coverage - 0.005 <= np.mean(covered) < coverage + 1 / (n + 1) + 0.005, np.mean(covered)


def test_evaluate_counts_coverage_and_set_sizes():
    result = conformal.evaluate(THREE, np.array([1, 0, 2]), 0.95)
    assert result == {"coverage": pytest.approx(1 / 3), "mean_set_size": pytest.approx(5 / 3),
                      "set_sizes": {"1": 1, "2": 2, "3": 0}, "rows": 3}  # fmt: skip


def test_the_trained_model_records_its_calibration_and_meets_the_target(exported_model):
    import json

    sets = json.loads((exported_model / "metadata.json").read_text())["prediction_sets"]
    assert sets["coverage_target"] == conformal.COVERAGE and sets["calibration_rows"] == 69
    assert 0 < sets["threshold"] <= 1 + 1e-6
    held_out = sets["test"]
    assert held_out["rows"] == 69 and sum(held_out["set_sizes"].values()) == 69
    assert held_out["coverage"] >= conformal.COVERAGE - conformal.COVERAGE_TOLERANCE
    assert 1 <= held_out["mean_set_size"] < 1.5  # informative: mostly one species


def test_every_answer_carries_the_set_of_its_probabilities(api):
    """/predict, both batch forms and the Open Inference Protocol give the set conformal.membership gives."""
    model = api.get("/model").json()
    limit = model["prediction_sets"]["threshold"]
    single = [api.post("/predict", json=example).json() for example in EXAMPLES]
    probabilities = np.array([[answer["probabilities"][s] for s in SPECIES] for answer in single], dtype=np.float32)
    expected = [[s for s, inside in zip(SPECIES, row) if inside] for row in conformal.membership(probabilities, limit)]
    assert [answer["prediction_set"] for answer in single] == expected
    assert all(answer["prediction"] in answer["prediction_set"] for answer in single)
    records = api.post("/predict_batch", json=list(EXAMPLES)).json()
    assert [answer["prediction_set"] for answer in records] == expected
    columns = {name: [example[name] for example in EXAMPLES] for name in EXAMPLES[0]}
    assert api.post("/predict_batch", json=columns).json()["prediction_set"] == expected
    tensors = [
        {"name": name, "shape": [len(EXAMPLES)], "datatype": "BYTES" if isinstance(values[0], str) else "FP32", "data": values}
        for name, values in columns.items()
        if name != "year"
    ]
    outputs = api.post("/v2/models/penguin_classifier/infer", json={"inputs": tensors}).json()["outputs"]
    [oip] = [output for output in outputs if output["name"] == "prediction_set"]
    assert (oip["datatype"], oip["shape"]) == ("BOOL", [len(EXAMPLES), len(SPECIES)])
    assert oip["data"] == [species in row for row in expected for species in SPECIES]


def test_a_borderline_bird_gets_two_species():
    """The sets say what confidence alone hides: a bird the model splits between two species keeps both."""
    assert conformal.membership(np.array([[0.55, 0.44, 0.01]]), 0.99).tolist() == [[True, True, False]]
    assert conformal.membership(np.array([[0.995, 0.004, 0.001]]), 0.99).tolist() == [[True, False, False]]
    assert math.isclose(conformal.species_scores(np.array([[0.55, 0.44, 0.01]]))[0, 1], 0.99)
