"""Data: the shipped Palmer Penguins table, and how training treats its gaps."""

import numpy as np

from penguin_serve.contract import SPECIES
from penguin_serve.training.dataset import load_dataset


def test_dataset_is_the_shipped_table():
    data = load_dataset()
    assert data.rows_total == 344
    assert data.sha256 == "f204db2c753b0937caac3cb35258562c14f073e4bbc76be24b4c51ce22767a93"


def test_rows_without_measurements_are_dropped_and_rows_without_sex_kept():
    data = load_dataset()
    assert data.rows_dropped == 2 and len(data.penguins) == 342
    assert sum(p.sex is None for p in data.penguins) == 9


def test_every_species_is_present_with_its_known_count():
    data = load_dataset()
    assert dict(zip(SPECIES, np.bincount(data.labels).tolist())) == {"Adelie": 151, "Chinstrap": 68, "Gentoo": 123}
