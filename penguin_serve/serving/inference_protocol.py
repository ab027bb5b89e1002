"""The Open Inference Protocol v2 (KServe, Triton, MLServer; open_inference_rest.yaml of
kserve/open-inference-protocol) over the flat API's model and answers.

Each penguin field is an input tensor of shape [N], its datatype read from the field's JSON type (number FP32,
integer INT32, string BYTES); the answer is `probabilities` (FP32, [N, 3], in SPECIES order), `label`
(BYTES, [N]) and `prediction_set` (BOOL, [N, 3]: true where that species is in the row's prediction set). The tensors are validated as PenguinColumns, so every rule of the flat API holds; a bad tensor
is the protocol's 400 naming it and the reason. The POST routes are service.py's `infer` methods (the HTTP
lane passes the URL's model name and version in as validation context); the GET routes are `GetRoutes`,
mounted by get_app.py. JSON tensors only: the binary tensor data extension is not supported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bentoml.exceptions import InvalidArgument, NotFound
from pydantic import BaseModel, PrivateAttr, TypeAdapter, ValidationError, ValidationInfo, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..contract import MODEL_NAME, SPECIES, Penguin, PenguinColumns, encode_columns, field_errors, json_types
from .metrics import record_validation_failures
from .predictor import NOT_READY_MESSAGE, Predictor

PLATFORM = "xgboost"
DATATYPES = {"number": "FP32", "integer": "INT32", "string": "BYTES"}  # by the field's JSON type
# What each declared datatype accepts: numpy's float64 and int64 (clients' defaults) too, and whole floats for
# an integer field.
ACCEPTED = {
    "FP32": {"FP32", "FP64"},
    "INT32": {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP32", "FP64"},
    "BYTES": {"BYTES"},
}
INPUTS = {name: DATATYPES[kind] for name, kind in json_types(Penguin).items()}
REQUIRED = tuple(name for name, info in Penguin.model_fields.items() if info.is_required())
OUTPUTS = {
    "probabilities": ("FP32", [-1, len(SPECIES)]),
    "label": ("BYTES", [-1]),
    "prediction_set": ("BOOL", [-1, len(SPECIES)]),
}
MORE_REASONS = 5  # a 400 names this many invalid values, then counts the rest
_COLUMNS = TypeAdapter(PenguinColumns)


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any]


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """An inference request: one input tensor of shape [N] per penguin field (GET /v2/models/penguin_classifier
    lists them), and optionally the outputs wanted and an id the answer repeats."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None
    _url: dict[str, str] = PrivateAttr(default_factory=dict)  # the URL's {model} and {version}, where routed by URL

    @model_validator(mode="after")
    def _from_url(self, info: ValidationInfo) -> InferenceRequest:
        self._url = dict(info.context or {})
        return self

    @property
    def url_model(self) -> str:
        return self._url.get("model", MODEL_NAME)

    @property
    def url_version(self) -> str | None:
        return self._url.get("version")


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[ResponseOutput]


def served_version(predictor: Predictor, model: str, version: str | None) -> str:
    """The version this instance serves, if the URL names this model and (where it names one) that version:
    else 404."""
    served = predictor.checked_model().version
    if model != MODEL_NAME:
        raise NotFound(f"no model '{model}': this server serves '{MODEL_NAME}'")
    if version is not None and version != served:
        raise NotFound(f"model '{MODEL_NAME}' has no version '{version}' here: this instance serves '{served}'")
    return served


async def infer(predictor: Predictor, request: InferenceRequest) -> dict[str, Any]:
    await predictor.loaded_model()
    served_version(predictor, request.url_model, request.url_version)
    wanted = _wanted_outputs(request.outputs)
    columns = _columns(request.inputs)
    answers = await predictor.predict(encode_columns(columns))
    rows = len(columns)
    data = {
        "probabilities": [p for row in zip(*(answers["probabilities"][s] for s in SPECIES)) for p in row],  # row-major
        "label": answers["prediction"],
        "prediction_set": [species in row for row in answers["prediction_set"] for species in SPECIES],  # row-major
    }
    shapes = {"probabilities": [rows, len(SPECIES)], "label": [rows], "prediction_set": [rows, len(SPECIES)]}
    response: dict[str, Any] = {"model_name": MODEL_NAME, "model_version": answers["model_version"]}
    if request.id is not None:
        response["id"] = request.id
    response["outputs"] = [
        {"name": name, "datatype": OUTPUTS[name][0], "shape": shapes[name], "data": data[name]} for name in wanted
    ]
    return response


def _wanted_outputs(outputs: list[RequestOutput] | None) -> list[str]:
    """The outputs asked for, in the order asked; all of them when none is named."""
    names = [output.name for output in outputs or []] or list(OUTPUTS)
    unknown = next((name for name in names if name not in OUTPUTS), None)
    if unknown is not None:
        raise InvalidArgument(f"output tensor '{unknown}' is unknown: this model's outputs are {', '.join(OUTPUTS)}")
    return names


def _columns(inputs: list[RequestInput]) -> PenguinColumns:
    columns: dict[str, list[Any]] = {}
    for tensor in inputs:
        where = f"input tensor '{tensor.name}'"
        expected = INPUTS.get(tensor.name)
        if expected is None:
            raise InvalidArgument(f"{where} is unknown: this model's inputs are {', '.join(INPUTS)}")
        if tensor.name in columns:
            raise InvalidArgument(f"{where} is given twice")
        if tensor.datatype not in ACCEPTED[expected]:
            raise InvalidArgument(f"{where} has datatype {tensor.datatype}: expected {expected}")
        if len(tensor.shape) != 1 or tensor.shape[0] != len(tensor.data):
            raise InvalidArgument(
                f"{where} has shape {tensor.shape} and {len(tensor.data)} values: expected shape [N], one value per penguin"
            )
        columns[tensor.name] = _values(tensor.name, expected, tensor.data)
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise InvalidArgument(f"input tensor '{missing[0]}' is missing: this model needs {', '.join(REQUIRED)}")
    if len({len(values) for values in columns.values()}) > 1:
        shapes = ", ".join(f"{name} [{len(values)}]" for name, values in columns.items())
        raise InvalidArgument(f"input tensors differ in shape ({shapes}): each needs one value per penguin")
    try:
        return _COLUMNS.validate_python(columns)
    except ValidationError as error:
        raise InvalidArgument(_reasons(error)) from None


def _values(name: str, datatype: str, data: list[Any]) -> list[Any]:
    """A tensor's values as the field takes them: a whole float of an integer field as an int, and in an optional
    BYTES tensor (which has no null) an empty string as unknown."""
    if datatype == "INT32":
        return [int(value) if isinstance(value, float) and value.is_integer() else value for value in data]
    if datatype == "BYTES" and name not in REQUIRED:
        return [None if value == "" else value for value in data]
    return data


def _reasons(error: ValidationError) -> str:
    detail = field_errors(error.errors(include_url=False, include_context=False, include_input=False))
    record_validation_failures(entry["field"] for entry in detail)
    reasons = [
        f"input tensor '{entry['field']}'" + (f"[{entry['index']}]" if "index" in entry else "") + f": {entry['message']}"
        for entry in detail
    ]
    more = len(reasons) - MORE_REASONS
    return "; ".join(reasons[:MORE_REASONS]) + (f"; and {more} more" if more > 0 else "")


def invalid_request(error: ValidationError) -> tuple[int, dict]:
    """The protocol's 400 for a body that is not an inference request, naming the first reason."""
    errors = error.errors(include_url=False, include_context=False, include_input=False)
    first = next((e for e in errors if e["type"] == "json_invalid"), errors[0])
    if first["type"] == "json_invalid":
        return 400, {"error": f"malformed JSON: {first['msg']} (tensors are read as JSON: binary tensor data is not supported)"}
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]).lstrip(".") or "body"
    return 400, {"error": f"invalid inference request: {where}: {first['msg']}"}


def model_metadata(version: str) -> dict[str, Any]:
    return {
        "name": MODEL_NAME,
        "versions": [version],
        "platform": PLATFORM,
        "inputs": [{"name": name, "datatype": datatype, "shape": [-1]} for name, datatype in INPUTS.items()],
        "outputs": [{"name": name, "datatype": datatype, "shape": shape} for name, (datatype, shape) in OUTPUTS.items()],
    }


class GetRoutes:
    """The protocol's GET routes over one predictor: server metadata, health, model metadata and readiness.
    Ready means every worker of the instance, as /readyz."""

    def __init__(self, predictor: Predictor, server_name: str, server_version: Callable[[], str]) -> None:
        self.predictor = predictor
        self.server_name = server_name
        self.server_version = server_version  # asked per request: the bento is known once the server runs

    async def server_metadata(self, _: Request) -> JSONResponse:
        return JSONResponse({"name": self.server_name, "version": self.server_version(), "extensions": []})

    async def live(self, _: Request) -> JSONResponse:
        return JSONResponse({"live": True})

    async def ready(self, _: Request) -> JSONResponse:
        ready = self.predictor.instance_ready
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def model(self, request: Request) -> JSONResponse:
        return self._about_model(request, lambda version: (200, model_metadata(version)))

    async def model_ready(self, request: Request) -> JSONResponse:
        ready = self.predictor.instance_ready
        return self._about_model(request, lambda _: (200 if ready else 503, {"name": MODEL_NAME, "ready": ready}))

    def _about_model(self, request: Request, answer: Callable[[str], tuple[int, Any]]) -> JSONResponse:
        if self.predictor.model is None:
            return JSONResponse({"error": NOT_READY_MESSAGE}, status_code=503, headers={"Retry-After": "1"})
        try:
            version = served_version(self.predictor, request.path_params["model"], request.path_params.get("version"))
        except NotFound as error:
            return JSONResponse({"error": error.message}, status_code=404)
        status, body = answer(version)
        return JSONResponse(body, status_code=status)

    def routes(self) -> list[Route]:
        model = "/v2/models/{model}"
        return [
            Route("/v2", self.server_metadata),
            Route("/v2/", self.server_metadata),
            Route("/v2/health/live", self.live),
            Route("/v2/health/ready", self.ready),
            *(Route(path, self.model) for path in (model, f"{model}/versions/{{version}}")),
            *(Route(f"{path}/ready", self.model_ready) for path in (model, f"{model}/versions/{{version}}")),
        ]
