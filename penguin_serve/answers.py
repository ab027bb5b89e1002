"""From the model's output to what clients read, in one place: `build` makes the answers for a batch of rows
in PredictionColumns' shape, and every other form is derived from that shape, field by field, without naming
the fields: the records of Prediction (`records`), a slice of the rows (`rows`), and the scoring job's CSV
(`csv_header`, `csv_rows`). A new response field is its type in contract.Prediction and its value in `build`.

The shape: a field shared by every row (SHARED) is one value; a field whose type is a mapping is one list per
key; every other field is one list, a value per row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import repeat
from typing import Any, get_origin

import numpy as np

from .contract import MEASUREMENTS, SHARED, SPECIES, Prediction
from .model import PenguinModel

FIELDS = tuple(Prediction.model_fields)
# Every prediction set, by the bits of its species (bit i: SPECIES[i]): rows share these lists.
SETS = [[species for bit, species in enumerate(SPECIES) if code >> bit & 1] for code in range(1 << len(SPECIES))]
BITS = 1 << np.arange(len(SPECIES))
# The scoring job writes a mapping field as one CSV column per key: `probability_Adelie`, ...
CSV_PREFIXES = {"probabilities": "probability"}


def build(model: PenguinModel, features: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """The answers for these feature rows and their probabilities. Plain lists, built with numpy: the service
    serializes them in one call, and validating values this code computed would only cost time."""
    best = probabilities.argmax(axis=1)
    outside = model.outside_training_ranges(features)
    # Rows inside the training ranges share one empty list (answers are only read and serialized): 10,000
    # separate empty lists cost more than the model call on a 10,000-row batch.
    none: list[str] = []
    out_of_distribution: list[list[str]] = [none] * len(features)
    warnings: list[list[str]] = [none] * len(features)
    ranges = model.metadata["training_ranges"]
    for row in np.flatnonzero(outside.any(axis=1)).tolist():
        names = [MEASUREMENTS[i] for i in np.flatnonzero(outside[row])]
        out_of_distribution[row] = names
        warnings[row] = [
            f"{name}={features[row, MEASUREMENTS.index(name)]:g} is outside the training range "
            f"{ranges[name][0]:g}..{ranges[name][1]:g}"
            for name in names
        ]
    return {
        "prediction": [SPECIES[i] for i in best.tolist()],
        "probabilities": {species: probabilities[:, i].tolist() for i, species in enumerate(SPECIES)},
        "confidence": probabilities[np.arange(len(best)), best].tolist(),
        "prediction_set": [SETS[code] for code in (model.prediction_sets(probabilities) @ BITS).tolist()],
        "model_version": model.version,
        "out_of_distribution": out_of_distribution,
        "warnings": warnings,
    }


def _per_row(name: str, value: Any) -> Iterable:
    if name in SHARED:
        return repeat(value)
    if isinstance(value, dict):
        return [dict(zip(value, values)) for values in zip(*value.values())]
    return value


def records(columns: dict[str, Any]) -> list[dict[str, Any]]:
    """The answers as a list in Prediction's shape, one per row."""
    return [dict(zip(FIELDS, values)) for values in zip(*(_per_row(name, columns[name]) for name in FIELDS))]


def rows(columns: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    """The answers of rows start:end only, in the same shape."""
    return {
        name: value
        if name in SHARED
        else {key: v[start:end] for key, v in value.items()}
        if isinstance(value, dict)
        else value[start:end]
        for name, value in columns.items()
    }


def _is_mapping(name: str) -> bool:
    return get_origin(Prediction.model_fields[name].annotation) is dict


def _is_list(name: str) -> bool:
    return get_origin(Prediction.model_fields[name].annotation) is list


def csv_header() -> list[str]:
    """The scoring job's output columns after the row's key: a mapping field as one column per species."""
    header: list[str] = []
    for name in FIELDS:
        header += [f"{CSV_PREFIXES.get(name, name)}_{species}" for species in SPECIES] if _is_mapping(name) else [name]
    return header


def csv_rows(columns: dict[str, Any], keys: list[str]) -> Iterable[tuple]:
    """The scoring job's output rows: the key, then each field as csv_header says; lists as JSON."""
    cells: list[Iterable] = [keys]
    for name in FIELDS:
        value = columns[name]
        if _is_mapping(name):
            cells += [value[species] for species in SPECIES]
        elif name in SHARED:
            cells.append(repeat(value))
        elif _is_list(name):
            cells.append(map(_json_list, value))
        else:
            cells.append(value)
    return zip(*cells)


def _json_list(values: list[str]) -> str:
    return json.dumps(values) if values else "[]"  # most rows: no call
