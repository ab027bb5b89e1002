"""The training table: the Palmer Penguins table shipped by the `palmerpenguins` package (read offline, never
downloaded), or a CSV of one's own with the same columns."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import ValidationError

from ..contract import MEASUREMENTS, SPECIES, Penguin

DATASET_NAME = "palmerpenguins/penguins.csv"
REQUIRED_COLUMNS = ("species", *MEASUREMENTS, "island")
OPTIONAL_COLUMNS = ("sex", "year")


class DatasetError(ValueError):
    """A table that cannot be trained on, and why, naming the columns or values."""


@dataclass(frozen=True)
class Dataset:
    penguins: list[Penguin]  # validated against the API contract, so training sees what serving sees
    labels: np.ndarray  # class index into SPECIES
    sha256: str
    rows_total: int
    rows_dropped: int  # rows without all four measurements: the API cannot send such a row
    name: str = DATASET_NAME


def load_dataset(path: Path | None = None) -> Dataset:
    """The palmerpenguins table, or the CSV at `path` with its columns: species, the four measurements and
    island required, sex and year optional, nothing else (a DatasetError names what is missing or extra)."""
    raw = path.read_bytes() if path else resources.files("palmerpenguins").joinpath("data/penguins.csv").read_bytes()
    frame = pd.read_csv(io.BytesIO(raw))
    if path:
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        extra = [c for c in frame.columns if c not in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)]
        if missing or extra:
            raise DatasetError(
                f"{path}: "
                + "; ".join(
                    [*([f"missing column(s) {', '.join(missing)}"] if missing else []),
                     *([f"unknown column(s) {', '.join(extra)}"] if extra else [])]
                )
                + f" (needs {', '.join(REQUIRED_COLUMNS)}; may have {', '.join(OPTIONAL_COLUMNS)})"
            )  # fmt: skip
        if unknown := sorted(set(frame["species"].dropna()) - set(SPECIES)):
            raise DatasetError(f"{path}: unknown species {', '.join(map(str, unknown))} (the model knows {', '.join(SPECIES)})")
        frame = frame.reindex(columns=[*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]).dropna(subset=["species"])
    complete = frame.dropna(subset=list(MEASUREMENTS))
    columns = [*MEASUREMENTS, "island", "sex", "year"]
    records = complete[columns].astype(object).where(complete[columns].notna(), None)
    try:
        penguins = [Penguin.model_validate(row, strict=False) for row in records.to_dict("records")]
    except ValidationError as error:
        first = error.errors()[0]
        raise DatasetError(f"{path or DATASET_NAME}: {first['loc'][0]}: {first['msg']}") from None
    labels = complete["species"].map(SPECIES.index).to_numpy(dtype=np.int32)
    return Dataset(
        penguins=penguins,
        labels=labels,
        sha256=hashlib.sha256(raw).hexdigest(),
        rows_total=len(frame),
        rows_dropped=len(frame) - len(complete),
        name=path.name if path else DATASET_NAME,
    )
