"""The prediction API, each endpoint defined once: its path, request and response types, and how it answers.

The HTTP routes (routes.py) validate JSON bytes against `request` and send what `answer` returns; the typed
BentoML methods in service.py call the same `answer` for in-process callers; the OpenAPI spec (openapi.py)
is generated from the same table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from ..answers import records
from ..contract import (
    EXAMPLE_COLUMNS,
    EXAMPLES,
    FIELD_COLUMNS,
    SPECIES,
    BatchRequest,
    Explanation,
    Penguin,
    PenguinColumns,
    Prediction,
    PredictionColumns,
    encode,
    encode_batch,
)
from .predictor import Predictor


@dataclass(frozen=True)
class Endpoint:
    path: str
    request: Any  # the body's type
    response: Any  # the 200 answer's type
    summary: str
    description: str
    answer: Callable[[Predictor, Any], Awaitable[Any]]  # a validated request -> the answer as plain JSON data
    examples: dict[str, Any]  # named request bodies for the spec: real penguins
    _request: TypeAdapter = field(init=False, repr=False)
    _response: TypeAdapter = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_request", TypeAdapter(self.request))
        object.__setattr__(self, "_response", TypeAdapter(self.response))

    def parse(self, body: bytes) -> Any:
        """The request validated from JSON bytes (pydantic.ValidationError when invalid)."""
        return self._request.validate_json(body)

    def typed(self, answer: Any) -> Any:
        """An answer as the response type's objects, for in-process callers."""
        return self._response.validate_python(answer)


async def predict(predictor: Predictor, penguin: Penguin) -> dict[str, Any]:
    return records(await predictor.predict(encode([penguin])))[0]


async def predict_batch(predictor: Predictor, batch: list[Penguin] | PenguinColumns) -> Any:
    answers = await predictor.predict(encode_batch(batch))
    return answers if isinstance(batch, PenguinColumns) else records(answers)


async def explain(predictor: Predictor, penguin: Penguin) -> dict[str, Any]:
    features = encode([penguin])
    answers = await predictor.predict(features)
    base, fields = await predictor.contributions(features)
    return {
        **records(answers)[0],
        "base_value": dict(zip(SPECIES, base[0].tolist())),
        "contributions": {field: dict(zip(SPECIES, values)) for field, values in zip(FIELD_COLUMNS, fields[0].tolist())},
    }


PREDICT = Endpoint(
    "/predict",
    Penguin,
    Prediction,
    "Classify one penguin",
    "A flat JSON object with the penguin's measurements. Invalid input: 422 naming each field and reason.",
    predict,
    {species: example for species, example in zip(SPECIES, EXAMPLES)},
)
PREDICT_BATCH = Endpoint(
    "/predict_batch",
    BatchRequest,
    list[Prediction] | PredictionColumns,
    "Classify up to 10,000 penguins",
    "A JSON array of records, or an object of columns (one array per field, as pandas' "
    '`df.to_dict(orient="list")` writes them; several times cheaper to serve). Answers come in order, in the '
    "same form. One invalid value fails the whole request with 422 naming its index and field.",
    predict_batch,
    {"records": list(EXAMPLES), "columns": EXAMPLE_COLUMNS},
)
EXPLAIN = Endpoint(
    "/explain",
    Penguin,
    Explanation,
    "Classify one penguin and say why",
    "The same body as /predict; the answer adds each field's contribution to each species' margin (log-odds, "
    "exact TreeSHAP) and the base value. It costs about two predictions; there is no batch form (per row, a batch "
    "of explanations costs many times a batch of predictions: docs/PERFORMANCE.md gives both).",
    explain,
    {species: example for species, example in zip(SPECIES, EXAMPLES)},
)
ENDPOINTS = {endpoint.path: endpoint for endpoint in (PREDICT, PREDICT_BATCH, EXPLAIN)}
