"""Code: the shared contract's encoding, the one place that defines column order and categories."""

import json
import math

import numpy as np
import pytest
from conftest import ADELIE, REPO_ROOT
from pydantic import ValidationError

from penguin_serve.contract import EXAMPLE_COLUMNS, EXAMPLES, FEATURE_NAMES, ISLANDS, Penguin, PenguinColumns, encode

BULK_SCORING = REPO_ROOT / "docs" / "bulk-scoring.md"


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


def test_columns_encode_to_the_same_float32_matrix_as_records():
    from penguin_serve.contract import encode_columns

    columns = encode_columns(PenguinColumns.model_validate(EXAMPLE_COLUMNS))
    records = encode([Penguin(**example) for example in EXAMPLES])
    assert columns.dtype == np.float32 and columns.shape == (len(EXAMPLES), len(FEATURE_NAMES))
    np.testing.assert_array_equal(columns, records)


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


def test_an_answer_column_says_per_row_what_its_field_says_and_nothing_for_a_field_that_says_nothing():
    from pydantic import create_model

    from penguin_serve import contract

    grown = create_model("GrownPrediction", __base__=contract.Prediction, runner_up=(str | None, None))
    columns = contract._answer_columns_of(grown).model_fields
    assert columns["confidence"].description == "Per row, in the order of the input rows: Probability of the predicted species."
    assert columns["runner_up"].description is None


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
    assert ",".join(["key", *header]) in BULK_SCORING.read_text()  # the header the docs show
    cells = [dict(zip(["key", *header], row, strict=True)) for row in rows]
    assert cells == [
        {
            "key": key,
            "prediction": record["prediction"],
            **{f"probability_{species}": p for species, p in record["probabilities"].items()},
            "confidence": record["confidence"],
            "prediction_set": json.dumps(record["prediction_set"]),
            "model_version": record["model_version"],
            "out_of_distribution": json.dumps(record["out_of_distribution"]),
            "warnings": json.dumps(record["warnings"]),
        }
        for key, record in zip("abcd", records, strict=True)
    ]
    assert json.loads(cells[3]["warnings"])[0].startswith("body_mass_g=9000 is outside the training range")


def test_a_new_optional_field_reaches_the_scoring_job_and_the_training_loader_as_its_type(tmp_path):
    """Tables are typed by the contract's schema, not by field names: a string field whose cells look like
    numbers (a ring id 123) stays a string, in the job's columns and in the training loader."""
    from pydantic import create_model

    from penguin_serve.contract import table_columns
    from penguin_serve.training.dataset import load_dataset, training_columns

    ringed = create_model("Ringed", __base__=Penguin, ring_id=(str | None, None))
    cells = {"bill_length_mm": ["39.1", "NA"], "island": ["Dream", ""], "year": ["2007", "x"], "ring_id": ["123", "NA"]}
    assert table_columns(cells, ringed) == {
        "bill_length_mm": [39.1, None],
        "island": ["Dream", None],
        "year": [2007, "x"],  # not an integer: left for the schema to reject by name
        "ring_id": ["123", None],
    }
    assert "ring_id" not in table_columns(cells)  # the job's own table: not a field of Penguin
    assert training_columns(ringed)[1] == ("sex", "year", "ring_id")
    table = tmp_path / "ringed.csv"
    table.write_text(
        "species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex,year,ring_id\n"
        "Adelie,Torgersen,39.1,18.7,181,3750,male,2007,123\n"
        "Gentoo,Biscoe,46.1,13.2,211,4500,NA,NA,NA\n"
    )
    data = load_dataset(table, ringed)
    assert [(p.ring_id, p.year, p.sex) for p in data.penguins] == [("123", 2007, "male"), (None, None, None)]
    assert data.labels.tolist() == [0, 2]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [("island", "Mars", "'Biscoe', 'Dream' or 'Torgersen'"), ("sex", "unknown", "'female' or 'male'")],
)
def test_an_unknown_choice_is_refused_in_a_record_and_in_a_column_in_pydantics_words(field, value, expected):
    rows = len(EXAMPLE_COLUMNS["island"])
    with pytest.raises(ValidationError) as in_a_record:
        Penguin.model_validate({**ADELIE, field: value})
    with pytest.raises(ValidationError) as in_a_column:
        PenguinColumns.model_validate({**EXAMPLE_COLUMNS, field: [value] * rows})
    assert [(error["loc"], error["msg"]) for error in in_a_record.value.errors()] == [((field,), f"Input should be {expected}")]
    assert [(error["loc"], error["msg"]) for error in in_a_column.value.errors()] == [
        ((field, index), f"Input should be {expected}") for index in range(rows)
    ]


def test_choices_match_in_any_case_and_only_sex_may_be_missing():
    rows = len(EXAMPLE_COLUMNS["island"])
    assert (
        Penguin.model_validate({**ADELIE, "island": "dREAM", "sex": "MALE"}).island,
        Penguin.model_validate({**ADELIE, "sex": "MALE"}).sex,
    ) == ("Dream", "male")
    folded = PenguinColumns.model_validate({**EXAMPLE_COLUMNS, "island": ["dREAM"] * rows, "sex": [None] * rows})
    assert (folded.island, folded.sex) == (["Dream"] * rows, [None] * rows)
    with pytest.raises(ValidationError) as missing_island:
        PenguinColumns.model_validate({**EXAMPLE_COLUMNS, "island": [None] * rows})
    assert [error["loc"] for error in missing_island.value.errors()] == [("island", index) for index in range(rows)]
