"""The prediction API's answers, and its HTTP routes read from the typed BentoML methods that declare them.

An endpoint is one `@bentoml.api` method of service.PenguinClassifier: its route, its positional-only request
type, its return type and its docstring (the summary, a blank line, the description), and its answer below.
`routes_of(PenguinClassifier.apis)` reads each method once: the HTTP lane (fast_lane.py) validates JSON bytes
against the request type and calls the method, the published spec (openapi.py) documents it. The answers are
their return type's JSON data (lists and dicts): the lane writes them in one call, and building a pydantic
object per answer cost more than the model on a batch (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, get_type_hints

from pydantic import TypeAdapter, ValidationError
from starlette.routing import compile_path

from ..answers import records
from ..contract import (
    EXAMPLE_COLUMNS,
    EXAMPLES,
    FIELD_COLUMNS,
    OBSERVATIONS,
    SPECIES,
    BatchRequest,
    FeedbackRequest,
    Observation,
    Penguin,
    PenguinColumns,
    encode,
    encode_batch,
)
from ..labels import LabelStore
from .inference_protocol import InferenceRequest, invalid_request
from .metrics import record_labelled
from .predictor import Predictor


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


async def feedback(predictor: Predictor, store: LabelStore, body: Observation | list[Observation]) -> Any:
    """Each observation stored once with what the serving model predicts for it; one receipt each, in order.
    Observations are stored at once; if any cannot be, the request fails (503) and a retry stores the rest."""
    observations = [body] if isinstance(body, Observation) else body
    predictions = records(await predictor.predict(encode(observations)))
    received_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    stored = await asyncio.gather(
        *(
            asyncio.to_thread(store.create, seen.id, {**seen.model_dump(), **predicted, "received_at": received_at})
            for seen, predicted in zip(observations, predictions)
        ),
        return_exceptions=True,  # every upload ended before the answer: none still in flight behind a 503
    )
    if failed := next((outcome for outcome in stored if isinstance(outcome, BaseException)), None):
        raise failed
    for seen, predicted, created in zip(observations, predictions, stored):
        if created:  # a duplicate was counted when it was stored
            record_labelled(seen.species, predicted)
    receipts = [
        {
            "id": seen.id,
            "species": seen.species,
            "prediction": predicted["prediction"],
            "agrees": predicted["prediction"] == seen.species,
            "prediction_set": predicted["prediction_set"],
            "model_version": predicted["model_version"],
            "duplicate": not created,
        }
        for seen, predicted, created in zip(observations, predictions, stored)
    ]
    return receipts[0] if isinstance(body, Observation) else receipts


# Named request bodies for the spec, by request type: real penguins.
REQUEST_EXAMPLES: dict[Any, dict[str, Any]] = {
    Penguin: dict(zip(SPECIES, EXAMPLES)),
    BatchRequest: {"records": list(EXAMPLES), "columns": EXAMPLE_COLUMNS},
    FeedbackRequest: {"observation": OBSERVATIONS[0], "observations": list(OBSERVATIONS)},
}
# Request types of a protocol with its own document and error answers (the Open Inference Protocol's 400 with
# one error line, not the flat API's 422 per field), by the answer to a body that fails validation. /docs.json
# documents the flat API only.
PROTOCOL_REQUESTS: dict[Any, Callable[[ValidationError], tuple[int, dict]]] = {InferenceRequest: invalid_request}


@dataclass(frozen=True)
class ApiRoute:
    """One typed method as an HTTP route."""

    path: str  # with {name} parameters where the URL carries values (the request's validation context)
    request: Any  # the body's type
    response: Any  # the 200 answer's type
    summary: str
    description: str
    call: Callable[[Any, Any], Awaitable[Any]]  # (the service instance, a validated request) -> the answer
    _request: TypeAdapter = field(init=False, repr=False, compare=False)
    pattern: re.Pattern | None = field(init=False, compare=False)  # a path with parameters matches this

    def __post_init__(self) -> None:
        object.__setattr__(self, "_request", TypeAdapter(self.request))
        object.__setattr__(self, "pattern", compile_path(self.path)[0] if "{" in self.path else None)

    def parse(self, body: bytes, path_parameters: dict[str, str] | None = None) -> Any:
        """The request validated from JSON bytes (pydantic.ValidationError when invalid)."""
        return self._request.validate_json(body, context=path_parameters)

    @property
    def examples(self) -> dict[str, Any] | None:
        """Named bodies for /docs.json; None for a protocol's route (PROTOCOL_REQUESTS), which it leaves out."""
        return REQUEST_EXAMPLES.get(self.request)

    @property
    def rejection(self) -> Callable[[ValidationError], tuple[int, dict]] | None:
        """A protocol's own answer to a body that fails validation; None: the flat API's."""
        return PROTOCOL_REQUESTS.get(self.request)

    @property
    def traced_as(self) -> str:
        """The path as OpenTelemetry's excluded_urls matches URLs (a regular expression searched for)."""
        return re.sub(r"\{\w+\}", "[^/]+", self.path)


class UnservableMethod(TypeError):
    """A typed method the HTTP lane cannot answer: the service refuses to start, naming it."""


def route_of(api: Any) -> ApiRoute:
    """The route of one of Service.apis' methods (BentoML's APIMethod: route, func, doc)."""
    parameters = list(inspect.signature(api.func).parameters.values())[1:]  # after self
    if len(parameters) != 1 or parameters[0].kind is not inspect.Parameter.POSITIONAL_ONLY:
        raise UnservableMethod(
            f"@bentoml.api method {api.name} must take its request body as one positional-only parameter "
            f"(def {api.name}(self, body: Type, /) -> Answer), not ({', '.join(parameter.name for parameter in parameters)})"
        )
    hints = get_type_hints(api.func, include_extras=True)
    if parameters[0].name not in hints or "return" not in hints:
        raise UnservableMethod(f"@bentoml.api method {api.name} must annotate its request and its return type")
    if hints[parameters[0].name] not in REQUEST_EXAMPLES and hints[parameters[0].name] not in PROTOCOL_REQUESTS:
        raise UnservableMethod(
            f"@bentoml.api method {api.name}'s request type has no examples for the spec: add them to REQUEST_EXAMPLES"
        )
    summary, _, description = inspect.cleandoc(api.doc or "").partition("\n\n")
    if not summary or not description:
        raise UnservableMethod(f"@bentoml.api method {api.name} needs a docstring: a summary, a blank line, a description")
    return ApiRoute(
        path=api.route,
        request=hints[parameters[0].name],
        response=hints["return"],
        summary=" ".join(summary.split()),
        description=" ".join(description.split()),
        call=api.func,
    )


def routes_of(apis: Mapping[str, Any]) -> dict[str, ApiRoute]:
    """The HTTP routes of a service's typed methods (Service.apis, by name), by path, in the order the service
    defines them (the spec's order)."""
    in_order = sorted(apis.values(), key=lambda api: api.func.__code__.co_firstlineno)
    return {route.path: route for route in map(route_of, in_order)}
