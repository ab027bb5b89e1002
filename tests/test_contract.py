"""Code: the shared contract's encoding, the one place that defines column order and categories."""

import math

import numpy as np
import pytest
from conftest import ADELIE
from pydantic import ValidationError

from penguin_serve.contract import EXAMPLE_COLUMNS, EXAMPLES, FEATURE_NAMES, ISLANDS, Penguin, PenguinColumns, encode


def test_feature_order_is_measurements_then_sex_then_islands():
    assert FEATURE_NAMES == (
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex_male",
        "island_Biscoe",
        "island_Dream",
        "island_Torgersen",
    )


def test_encode_places_each_field_in_its_column():
    row = encode([Penguin(**ADELIE)])
    assert row.dtype == np.float32 and row.shape == (1, len(FEATURE_NAMES))
    np.testing.assert_allclose(row[0], [39.1, 18.7, 181, 3750, 1, 0, 0, 1], rtol=1e-6)


@pytest.mark.parametrize("sex, code", [("male", 1.0), ("female", 0.0)])
def test_sex_is_encoded_as_male_flag(sex, code):
    assert encode([Penguin(**{**ADELIE, "sex": sex})])[0, 4] == code


def test_unknown_sex_is_missing_not_a_guess():
    assert math.isnan(encode([Penguin(**{**ADELIE, "sex": None})])[0, 4])


@pytest.mark.parametrize("island", ISLANDS)
def test_island_is_one_hot(island):
    one_hot = encode([Penguin(**{**ADELIE, "island": island})])[0, 5:]
    assert one_hot.tolist() == [1.0 if other == island else 0.0 for other in ISLANDS]


@pytest.mark.parametrize("given, canonical", [("MALE", "male"), ("Female", "female"), ("dReAm", "Dream")])
def test_categories_are_case_insensitive(given, canonical):
    field = "island" if canonical == "Dream" else "sex"
    assert getattr(Penguin(**{**ADELIE, field: given}), field) == canonical


def test_year_is_not_a_feature():
    rows = encode([Penguin(**{**ADELIE, "year": 2007}), Penguin(**{**ADELIE, "year": None})])
    assert (rows[0] == rows[1]).all()


def test_encode_of_no_penguins_keeps_the_column_count():
    assert encode([]).shape == (0, len(FEATURE_NAMES))


def test_columnar_encoding_equals_record_encoding_for_every_dataset_row():
    from penguin_serve.contract import PenguinColumns, encode_columns
    from penguin_serve.training.dataset import load_dataset

    penguins = load_dataset().penguins
    as_columns = PenguinColumns(**{name: [getattr(p, name) for p in penguins] for name in Penguin.model_fields})
    np.testing.assert_array_equal(encode_columns(as_columns), encode(penguins))


def test_the_columnar_forms_are_derived_field_by_field():
    """A new field of Penguin or Prediction is a new column of its columnar form, with the same rules."""
    from penguin_serve.contract import SHARED, Prediction, PredictionColumns

    assert list(PenguinColumns.model_fields) == list(Penguin.model_fields)
    required = {name for name, field in Penguin.model_fields.items() if field.is_required()}
    assert {name for name, field in PenguinColumns.model_fields.items() if field.is_required()} == required
    with pytest.raises(ValidationError) as rejected:
        PenguinColumns.model_validate({**EXAMPLE_COLUMNS, "island": ["Dream", "Mars", "Biscoe"]})
    assert [error["loc"] for error in rejected.value.errors()] == [("island", 1)]
    assert list(PredictionColumns.model_fields) == list(Prediction.model_fields)
    assert all((name in SHARED) == (PredictionColumns.model_fields[name].annotation is Prediction.model_fields[name].annotation)
               for name in Prediction.model_fields)  # fmt: skip


def test_every_form_of_the_answers_comes_from_the_one_built(exported_model):
    """Records, slices and the scoring job's CSV rows, from one build: each agrees with the others."""
    from penguin_serve import answers
    from penguin_serve.contract import Prediction, PredictionColumns
    from penguin_serve.model import PenguinModel

    model = PenguinModel.from_files(exported_model, "export", nthread=1)
    features = encode([Penguin(**record) for record in EXAMPLES] + [Penguin(**{**EXAMPLES[2], "body_mass_g": 9000})])
    built = PredictionColumns.model_validate(answers.build(model, features, model.probabilities(features))).model_dump()
    records = [Prediction.model_validate(record).model_dump() for record in answers.records(built)]
    assert [r["prediction"] for r in records] == ["Adelie", "Chinstrap", "Gentoo", "Gentoo"]
    assert records[3]["out_of_distribution"] == ["body_mass_g"] and records[0]["out_of_distribution"] == []
    assert answers.records(answers.rows(built, 1, 3)) == records[1:3]
    header, rows = answers.csv_header(), list(answers.csv_rows(built, ["a", "b", "c", "d"]))
    assert [dict(zip(["key", *header], row))["probability_Gentoo"] for row in rows] == [
        r["probabilities"]["Gentoo"] for r in records
    ]
    assert [row[0] for row in rows] == ["a", "b", "c", "d"] and all(len(row) == len(header) + 1 for row in rows)
