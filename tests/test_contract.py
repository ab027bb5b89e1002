"""Code: the shared contract's encoding, the one place that defines column order and categories."""

import math

import numpy as np
import pytest
from conftest import ADELIE

from penguin_serve.contract import FEATURE_NAMES, ISLANDS, Penguin, encode


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
