"""The Palmer Penguins table shipped by the `palmerpenguins` package (read offline, never downloaded)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

from ..contract import MEASUREMENTS, SPECIES, Penguin

DATASET_NAME = "palmerpenguins/penguins.csv"


@dataclass(frozen=True)
class Dataset:
    penguins: list[Penguin]  # validated against the API contract, so training sees what serving sees
    labels: np.ndarray  # class index into SPECIES
    sha256: str
    rows_total: int
    rows_dropped: int  # rows without all four measurements: the API cannot send such a row


def load_dataset() -> Dataset:
    raw = resources.files("palmerpenguins").joinpath("data/penguins.csv").read_bytes()
    frame = pd.read_csv(io.BytesIO(raw))
    complete = frame.dropna(subset=list(MEASUREMENTS))
    columns = [*MEASUREMENTS, "island", "sex", "year"]
    records = complete[columns].astype(object).where(complete[columns].notna(), None)
    penguins = [Penguin.model_validate(row, strict=False) for row in records.to_dict("records")]
    labels = complete["species"].map(SPECIES.index).to_numpy(dtype=np.int32)
    return Dataset(
        penguins=penguins,
        labels=labels,
        sha256=hashlib.sha256(raw).hexdigest(),
        rows_total=len(frame),
        rows_dropped=len(frame) - len(complete),
    )
