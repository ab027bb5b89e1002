"""The one data contract: request schema, feature order and category encoding.

train.py and service.py both import this module, so a column can never mean one thing in training and
another in serving.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

SPECIES = ("Adelie", "Chinstrap", "Gentoo")
ISLANDS = ("Biscoe", "Dream", "Torgersen")
SEXES = ("female", "male")

# Upper bounds are generous on purpose (about twice the largest penguin of any species): they reject
# typos and unit mix-ups (grams vs kilograms), not unusual birds, which get an out-of-distribution warning.
MEASUREMENT_BOUNDS = {
    "bill_length_mm": 120.0,
    "bill_depth_mm": 50.0,
    "flipper_length_mm": 400.0,
    "body_mass_g": 15000.0,
}
MEASUREMENTS = tuple(MEASUREMENT_BOUNDS)
YEAR_BOUNDS = (1900, 2100)
MAX_BATCH_RECORDS = 10_000  # per POST /predict_batch request

# Column order of the model's input matrix. sex_male is 1/0, or NaN when the sex is unknown (XGBoost
# learns a default branch for missing values); islands are one-hot.
FEATURE_NAMES = (*MEASUREMENTS, "sex_male", *(f"island_{island}" for island in ISLANDS))

_SEX_CODE = {"male": 1.0, "female": 0.0, None: math.nan}
_ISLAND_ONE_HOT = {
    island: tuple(1.0 if other == island else 0.0 for other in ISLANDS) for island in ISLANDS
}
_ISLAND_BY_FOLDED_NAME = {island.casefold(): island for island in ISLANDS}


def _measurement(name: str) -> Any:
    return Annotated[
        float,
        Field(
            gt=0,
            le=MEASUREMENT_BOUNDS[name],
            strict=True,
            allow_inf_nan=False,
            description=f"Positive, at most {MEASUREMENT_BOUNDS[name]:g}.",
        ),
    ]


class Penguin(BaseModel):
    """One penguin's measurements: the body of POST /predict and each record of POST /predict_batch."""

    model_config = ConfigDict(
        extra="forbid",
        # OpenAPI 3.0's singular `example`: BentoML's spec generator rejects JSON Schema's `examples`.
        json_schema_extra={
            "example": {
                "bill_length_mm": 39.1,
                "bill_depth_mm": 18.7,
                "flipper_length_mm": 181,
                "body_mass_g": 3750,
                "year": 2009,
                "sex": "male",
                "island": "Torgersen",
            }
        },
    )

    bill_length_mm: _measurement("bill_length_mm")
    bill_depth_mm: _measurement("bill_depth_mm")
    flipper_length_mm: _measurement("flipper_length_mm")
    body_mass_g: _measurement("body_mass_g")
    island: Literal[ISLANDS] = Field(description="Biscoe, Dream or Torgersen; case-insensitive.")
    sex: Literal[SEXES] | None = Field(
        default=None, description="female or male, case-insensitive; null or absent when unknown."
    )
    year: int | None = Field(
        default=None,
        ge=YEAR_BOUNDS[0],
        le=YEAR_BOUNDS[1],
        strict=True,
        description="Accepted for compatibility with existing clients; not a model feature.",
    )

    @field_validator("sex", mode="before")
    @classmethod
    def _fold_sex(cls, value: Any) -> Any:
        return value.casefold() if isinstance(value, str) else value

    @field_validator("island", mode="before")
    @classmethod
    def _fold_island(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _ISLAND_BY_FOLDED_NAME.get(value.casefold(), value)
        return value


# The body of POST /predict_batch: answers come back in the same order.
PenguinBatch = Annotated[list[Penguin], Field(min_length=1, max_length=MAX_BATCH_RECORDS)]


def encode(penguins: Sequence[Penguin]) -> np.ndarray:
    """The model's input matrix (float32, one row per penguin, columns in FEATURE_NAMES order)."""
    rows = [
        (
            p.bill_length_mm,
            p.bill_depth_mm,
            p.flipper_length_mm,
            p.body_mass_g,
            _SEX_CODE[p.sex],
            *_ISLAND_ONE_HOT[p.island],
        )
        for p in penguins
    ]
    return np.array(rows, dtype=np.float32).reshape(len(rows), len(FEATURE_NAMES))


class Prediction(BaseModel):
    """The answer for one penguin. `prediction` is the field existing clients read: keep its name."""

    prediction: Literal[SPECIES]
    probabilities: dict[str, float] = Field(description="Probability of each species; they sum to 1.")
    confidence: float = Field(description="Probability of the predicted species.")
    model_version: str
    out_of_distribution: list[str] = Field(
        default_factory=list,
        description="Measurements outside the range seen in training: the prediction is less reliable.",
    )
    warnings: list[str] = Field(default_factory=list)
