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

from ..contract import MEASUREMENTS, MISSING_CELLS, SPECIES, Penguin, table_columns

DATASET_NAME = "palmerpenguins/penguins.csv"


def training_columns(record: type[Penguin]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A training table's required columns (species and the record's required fields) and optional ones."""
    fields = record.model_fields
    return ("species", *(name for name, f in fields.items() if f.is_required())), tuple(
        name for name, f in fields.items() if not f.is_required()
    )


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


def load_dataset(path: Path | None = None, record: type[Penguin] = Penguin) -> Dataset:
    """The palmerpenguins table, or the CSV at `path` with its columns: species and the record's (Penguin's)
    required fields, its optional ones, nothing else (a DatasetError names what is missing or extra). Cells are
    read as the API's schema types them (contract.table_columns), as the scoring job reads its tables."""
    raw = path.read_bytes() if path else resources.files("palmerpenguins").joinpath("data/penguins.csv").read_bytes()
    frame = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False)
    if path:
        required, optional = training_columns(record)
        missing = [c for c in required if c not in frame.columns]
        extra = [c for c in frame.columns if c not in (*required, *optional)]
        if missing or extra:
            raise DatasetError(
                f"{path}: "
                + "; ".join(
                    [*([f"missing column(s) {', '.join(missing)}"] if missing else []),
                     *([f"unknown column(s) {', '.join(extra)}"] if extra else [])]
                )
                + f" (needs {', '.join(required)}; may have {', '.join(optional)})"
            )  # fmt: skip
        if unknown := sorted(set(frame["species"]) - set(SPECIES) - set(MISSING_CELLS)):
            raise DatasetError(f"{path}: unknown species {', '.join(map(str, unknown))} (the model knows {', '.join(SPECIES)})")
    frame = frame[~frame["species"].isin(MISSING_CELLS)]
    values = table_columns({name: frame[name].tolist() for name in frame.columns}, record)
    complete = [row for row in range(len(frame)) if all(values[name][row] is not None for name in MEASUREMENTS)]
    try:
        penguins = [record.model_validate({name: column[row] for name, column in values.items()}) for row in complete]
    except ValidationError as error:
        first = error.errors()[0]
        raise DatasetError(f"{path or DATASET_NAME}: {first['loc'][0]}: {first['msg']}") from None
    labels = np.array([SPECIES.index(species) for species in frame["species"].iloc[complete]], dtype=np.int32)
    return Dataset(
        penguins=penguins,
        labels=labels,
        sha256=hashlib.sha256(raw).hexdigest(),
        rows_total=len(frame),
        rows_dropped=len(frame) - len(complete),
        name=path.name if path else DATASET_NAME,
    )
