"""The one data contract: request schema, feature order and category encoding.

train.py and service.py both import this module, so a column can never mean one thing in training and
another in serving.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from functools import cache
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    create_model,
    model_validator,
)

from .conformal import COVERAGE

# The model's name in BentoML's model store and its folder in Cloud Storage, for training and serving alike.
MODEL_NAME = "penguin_classifier"

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

# An explanation's fields: each request field that reaches the model, with the model columns it is encoded
# into (contributions of one-hot columns add up to their field's).
FIELD_COLUMNS = {
    **{name: (FEATURE_NAMES.index(name),) for name in MEASUREMENTS},
    "sex": (FEATURE_NAMES.index("sex_male"),),
    "island": tuple(FEATURE_NAMES.index(f"island_{island}") for island in ISLANDS),
}

_SEX_CODE = {"male": 1.0, "female": 0.0, None: math.nan}
_ISLAND_ONE_HOT = {island: tuple(1.0 if other == island else 0.0 for other in ISLANDS) for island in ISLANDS}
_MEASURED = operator.attrgetter(*MEASUREMENTS)  # a record's measurements, in FEATURE_NAMES order
_CATEGORY_CODES = {  # (sex, island) -> the row's columns after the measurements
    (sex, island): (_SEX_CODE[sex], *_ISLAND_ONE_HOT[island]) for sex in _SEX_CODE for island in ISLANDS
}


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


def _column(item: Any) -> Any:
    """A batch of 1 to MAX_BATCH_RECORDS items: the records of POST /predict_batch, or one of its columns."""
    return Annotated[list[item], Field(min_length=1, max_length=MAX_BATCH_RECORDS)]


class _CaseInsensitive:
    """A choice among canonical names, matched in any case: in a record one value at a time, in a columnar
    batch a whole column in one call (a Python validator call per value cost more than the model there)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.by_folded_name = {name.casefold(): name for name in names}
        self.expected = " or ".join([", ".join(map(repr, names[:-1])), repr(names[-1])])  # pydantic's wording
        self.json_schema = {"type": "string", "enum": list(names)}

    def fold(self, value: Any) -> Any:
        """Before the Literal check: a known name in any case becomes the canonical one."""
        return self.by_folded_name.get(value.casefold(), value) if isinstance(value, str) else value

    def fold_column(self, values: list[str | None]) -> list[str | None]:
        folded = [None if value is None else self.by_folded_name.get(value.casefold(), _UNKNOWN) for value in values]
        unknown = [index for index, value in enumerate(folded) if value is _UNKNOWN]
        if unknown:
            raise ValidationError.from_exception_data(
                "column",
                [
                    {"type": "literal_error", "loc": (index,), "input": values[index], "ctx": {"expected": self.expected}}
                    for index in unknown
                ],
            )
        return folded

    def column(self, nullable: bool = False) -> Any:
        item = {"anyOf": [self.json_schema, {"type": "null"}]} if nullable else self.json_schema
        return Annotated[
            _column(str | None if nullable else str),
            AfterValidator(self.fold_column),
            Field(json_schema_extra={"items": item}),
        ]


_UNKNOWN = object()
_ISLAND = _CaseInsensitive(ISLANDS)
_SEX = _CaseInsensitive(SEXES)

# Field types of a record (Penguin); PenguinColumns has the same as columns.
Island = Annotated[Literal[ISLANDS], BeforeValidator(_ISLAND.fold)]
Sex = Annotated[Literal[SEXES], BeforeValidator(_SEX.fold)]
Year = Annotated[int, Field(ge=YEAR_BOUNDS[0], le=YEAR_BOUNDS[1], strict=True)]
ISLAND_DESCRIPTION = "In any case: `dream` is Dream."
SEX_DESCRIPTION = "In any case; null or absent when unknown."
YEAR_DESCRIPTION = f"{YEAR_BOUNDS[0]} to {YEAR_BOUNDS[1]}; accepted for compatibility with existing clients, not a model feature."
# Real penguins, the first of each species in the palmerpenguins table: the examples of the API's spec.
EXAMPLES = (
    {"bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181, "body_mass_g": 3750,
     "sex": "male", "island": "Torgersen", "year": 2007},
    {"bill_length_mm": 46.5, "bill_depth_mm": 17.9, "flipper_length_mm": 192, "body_mass_g": 3500,
     "sex": "female", "island": "Dream", "year": 2007},
    {"bill_length_mm": 50.0, "bill_depth_mm": 16.3, "flipper_length_mm": 230, "body_mass_g": 5700,
     "sex": "male", "island": "Biscoe", "year": 2007},
)  # fmt: skip
EXAMPLE = EXAMPLES[0]
EXAMPLE_COLUMNS = {name: [example[name] for example in EXAMPLES] for name in EXAMPLE}
# The same penguins as field researchers confirm them: the examples of POST /feedback.
OBSERVATIONS = tuple(
    {"id": f"ring-{index:04d}", **example, "species": species}
    for index, (example, species) in enumerate(zip(EXAMPLES, SPECIES), 1)
)


class Penguin(BaseModel):
    """One penguin's measurements: the body of POST /predict and each record of POST /predict_batch."""

    # OpenAPI 3.0's singular `example`: BentoML's spec generator rejects JSON Schema's `examples`.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": EXAMPLE})

    bill_length_mm: _measurement("bill_length_mm")
    bill_depth_mm: _measurement("bill_depth_mm")
    flipper_length_mm: _measurement("flipper_length_mm")
    body_mass_g: _measurement("body_mass_g")
    island: Island = Field(description=ISLAND_DESCRIPTION)
    sex: Sex | None = Field(default=None, description=SEX_DESCRIPTION)
    year: Year | None = Field(default=None, description=YEAR_DESCRIPTION)


# How tables (CSV, R, pandas' to_csv) write an unknown value.
MISSING_CELLS = ("", "NA")
_CELL_READERS: dict[str | None, Callable[[str], Any]] = {"number": float, "integer": int}


@cache
def json_types(record: type[BaseModel]) -> dict[str, str | None]:
    """Each field's JSON type ("number", "integer", "string", ...) in the record's own schema, null aside."""
    properties = record.model_json_schema()["properties"]
    return {
        name: next((kind.get("type") for kind in prop.get("anyOf", [prop]) if kind.get("type") != "null"), None)
        for name, prop in properties.items()
    }


@cache
def _cell_readers(record: type[BaseModel]) -> dict[str, Callable[[str], Any]]:
    """Each field's reader of a table's text cell, by its JSON type: a string field keeps its text (a ring id
    `123` stays "123")."""
    return {name: _CELL_READERS.get(kind, str) for name, kind in json_types(record).items()}


def table_columns(cells: dict[str, list[str]], record: type[BaseModel] | None = None) -> dict[str, list[Any]]:
    """A table's columns of text cells (those that are fields of `record`, default Penguin) as the JSON values a
    client would send: missing as null, numbers as numbers, anything else as it is, for the schema to reject
    by name. The scoring job and the training loader read tables through this."""
    readers = _cell_readers(record or Penguin)
    return {name: _read_column(read, cells[name]) for name, read in readers.items() if name in cells}


def _read_column(read: Callable[[str], Any], cells: list[str]) -> list[Any]:
    if read is str:
        return [None if cell in MISSING_CELLS else cell for cell in cells]
    try:
        return list(map(read, cells))  # the common case: every cell a number
    except ValueError:
        return [_read_cell(read, cell) for cell in cells]


def _read_cell(read: Callable[[str], Any], cell: str) -> Any:
    if cell in MISSING_CELLS:
        return None
    try:
        return read(cell)
    except ValueError:
        return cell


# The body of POST /predict_batch as records: answers come back in the same order.
PenguinBatch = _column(Penguin)


class _Columns(BaseModel):
    """POST /predict_batch as columns: one array per field, all of the same length, as pandas'
    `df.to_dict(orient="list")` writes them. Answers come back as columns too. The same batch as records
    costs several times more to validate and answer (docs/PERFORMANCE.md)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": EXAMPLE_COLUMNS})

    @model_validator(mode="after")
    def _same_length(self) -> _Columns:
        lengths = {name: len(values) for name, values in self if values is not None}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns must have the same length: {lengths}")
        return self

    def __len__(self) -> int:
        return len(next(values for _, values in self if values is not None))


# A category's column is checked in one call for the whole column (_CaseInsensitive.column).
_COLUMN_FORMS = {Island: _ISLAND.column(), Sex | None: _SEX.column(nullable=True)}


def _columns_of(record: type[BaseModel]) -> type[_Columns]:
    """The columnar form of a record model: each of its fields as a column of 1 to MAX_BATCH_RECORDS values
    with the same rules, optional where the field is. A new field of Penguin is a new column here."""
    hints = get_type_hints(record, include_extras=True)
    fields: dict[str, Any] = {}
    for name, info in record.model_fields.items():
        hint = hints[name]
        column = _COLUMN_FORMS.get(hint) or _column(hint)
        own = get_origin(hint) is Annotated and any(getattr(meta, "description", None) for meta in get_args(hint)[1:])
        description = None if own else info.description  # a measurement's items carry their own
        if info.is_required():
            fields[name] = (column, Field(description=description))
        else:
            fields[name] = (column | None, Field(default=None, description=description))
    return create_model(f"{record.__name__}Columns", __base__=_Columns, __module__=__name__, __doc__=_Columns.__doc__, **fields)


PenguinColumns = _columns_of(Penguin)


def batch_form(batch: Any) -> str:
    """The one rule that tells the two forms of a batch apart: a JSON object (or PenguinColumns) is columns,
    anything else is records. It discriminates BatchRequest, so HTTP bodies and in-process calls follow it."""
    return BATCH_FORMS[1] if isinstance(batch, (dict, PenguinColumns)) else BATCH_FORMS[0]


# The body of POST /predict_batch: records or columns. Validation errors name the form first in their
# location (("records", 3, "island") or ("columns", "island", 3)).
BATCH_FORMS = ("records", "columns")
BatchRequest = Annotated[
    Annotated[PenguinBatch, Tag(BATCH_FORMS[0])] | Annotated[PenguinColumns, Tag(BATCH_FORMS[1])],
    Discriminator(batch_form),
]


# A client's id of an observation: the name it is stored under (letters, digits, `.`, `_`, `-`; no path).
OBSERVATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class Observation(Penguin):
    """A penguin whose species was confirmed in the field: the body of POST /feedback, or each of its records."""

    model_config = ConfigDict(json_schema_extra={"example": OBSERVATIONS[0]})

    id: str = Field(
        pattern=OBSERVATION_ID_PATTERN,
        description="The client's id of this observation (1 to 128 letters, digits, `.`, `_`, `-`); the same id "
        "twice is stored once.",
    )
    species: Literal[SPECIES] = Field(description="The confirmed species.")


def feedback_form(body: Any) -> str:
    """One observation (a JSON object) or a batch of them (anything else)."""
    return FEEDBACK_FORMS[0] if isinstance(body, (dict, Observation)) else FEEDBACK_FORMS[1]


# The body of POST /feedback: one observation or a list of them. Validation errors of a batch name its index.
FEEDBACK_FORMS = ("observation", "observations")
FeedbackRequest = Annotated[
    Annotated[Observation, Tag(FEEDBACK_FORMS[0])] | Annotated[_column(Observation), Tag(FEEDBACK_FORMS[1])],
    Discriminator(feedback_form),
]
# The tags that start a validation error's location when a body has more than one form: not the client's field.
FORM_TAGS = frozenset((*BATCH_FORMS, *FEEDBACK_FORMS))


def encode_batch(batch: list[Penguin] | PenguinColumns) -> np.ndarray:
    """The model's input matrix for either form of a batch."""
    return encode_columns(batch) if isinstance(batch, PenguinColumns) else encode(batch)


def encode(penguins: Sequence[Penguin]) -> np.ndarray:
    """The model's input matrix (float32, one row per penguin, columns in FEATURE_NAMES order)."""
    return np.array([(*_MEASURED(p), *_CATEGORY_CODES[p.sex, p.island]) for p in penguins], dtype=np.float32).reshape(
        len(penguins), len(FEATURE_NAMES)
    )


def encode_columns(columns: PenguinColumns) -> np.ndarray:
    """encode() for a columnar batch."""
    sexes = columns.sex if columns.sex is not None else [None] * len(columns)
    return _matrix([getattr(columns, name) for name in MEASUREMENTS], sexes, columns.island)


def _matrix(measurements: list[list[float]], sexes: Sequence[str | None], islands: Sequence[str]) -> np.ndarray:
    features = np.empty((len(islands), len(FEATURE_NAMES)), dtype=np.float32)
    features[:, : len(MEASUREMENTS)] = np.array(measurements, dtype=np.float32).T
    features[:, len(MEASUREMENTS)] = [_SEX_CODE[sex] for sex in sexes]
    features[:, len(MEASUREMENTS) + 1 :] = np.array([_ISLAND_ONE_HOT[island] for island in islands]).reshape(-1, len(ISLANDS))
    return features


class Prediction(BaseModel):
    """The answer for one penguin. `prediction` is the field existing clients read: keep its name."""

    prediction: Literal[SPECIES] = Field(description="The species; existing clients read this field.")
    probabilities: dict[str, float] = Field(description="Probability of each species; they sum to 1.")
    confidence: float = Field(description="Probability of the predicted species.")
    prediction_set: list[Literal[SPECIES]] = Field(
        description=f"The species that cannot be ruled out at the model's coverage ({COVERAGE:.0%} unless trained "
        "otherwise): "
        "the true species is in this set at least that often. Always holds `prediction`; usually only it, more "
        "for a bird between species."
    )
    model_version: str = Field(description="The version of the model that answered.")
    out_of_distribution: list[str] = Field(
        default_factory=list,
        description="Measurements outside the range seen in training: the prediction is less reliable.",
    )
    warnings: list[str] = Field(default_factory=list, description="One readable line for each such measurement.")


class Receipt(BaseModel):
    """/feedback's answer for one observation: what the serving model predicts for it, and whether it was stored."""

    id: str = Field(description="The observation's id.")
    species: Literal[SPECIES] = Field(description="The confirmed species, as sent.")
    prediction: Literal[SPECIES] = Field(description="The species the serving model predicts for these measurements.")
    agrees: bool = Field(description="Whether the prediction is the confirmed species.")
    prediction_set: list[Literal[SPECIES]] = Field(description="The serving model's prediction set for these measurements.")
    model_version: str = Field(description="The version of the model that predicted.")
    duplicate: bool = Field(
        description="True when an observation with this id was already stored: this one was not stored again."
    )


class Explanation(Prediction):
    """/predict's answer and why: exact TreeSHAP contributions (XGBoost's own), per request field and species,
    in the model's margin space (log-odds). For each species, base_value plus the sum of the fields'
    contributions is its margin, and the softmax of the margins is `probabilities`."""

    base_value: dict[str, float] = Field(
        description="Per species: its margin (log-odds) before any field is known, the same for every penguin."
    )
    contributions: dict[str, dict[str, float]] = Field(
        description="Per request field (the measurements, sex and island; a null sex is explained as unknown), "
        "per species: how much this penguin's value moved the species' margin (log-odds). Positive: towards it."
    )


# Prediction's fields that are the same for every row of a batch: one value in the columnar form.
SHARED = ("model_version",)


def _answer_columns_of(answer: type[BaseModel]) -> type[BaseModel]:
    """The columnar form of an answer model: a shared field as it is, a mapping as one list per key, every
    other field as a list with a value per row. A new field of Prediction is a new column here."""
    fields: dict[str, Any] = {}
    for name, info in answer.model_fields.items():
        annotation = info.annotation
        if name in SHARED:
            column = annotation
        elif get_origin(annotation) is dict:
            key, value = get_args(annotation)
            column = dict[key, list[value]]
        else:
            column = list[annotation]
        description = f"Per row, in the order of the input rows: {info.description}" if info.description else None
        fields[name] = (column, Field(description=description))
    doc = "The answers to a columnar batch: one array per field of Prediction, in the order of the input rows."
    return create_model(f"{answer.__name__}Columns", __module__=__name__, __doc__=doc, **fields)


PredictionColumns = _answer_columns_of(Prediction)


def field_errors(pydantic_errors: list[dict]) -> list[dict]:
    """Pydantic errors as {"field", "message", "type"} entries; in a batch also the row's "index" (records
    are located as (index, field), columns as (field, index))."""
    entries = []
    for error in pydantic_errors:
        location = list(error["loc"])
        entry: dict[str, Any] = {}
        index = next((part for part in location if isinstance(part, int)), None)
        if index is not None:
            entry["index"] = index
            location.remove(index)
        entry["field"] = ".".join(str(part) for part in location) or "body"
        entry["message"] = error["msg"].removeprefix("Value error, ")
        entry["type"] = error["type"]
        entries.append(entry)
    return entries
