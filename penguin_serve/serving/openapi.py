"""The published OpenAPI 3.0 spec (GET /docs.json), generated from the typed methods' routes and the contract.

BentoML's own spec documents only 200/400/404/500, lists its internal schemas, carries no examples, and
declares OpenAPI 3.0 while embedding JSON Schema 2020-12. This one lists every public endpoint with the
answers it really gives, real penguins as examples, and 3.0-style bounds and nullable fields. Schemathesis
checks it against the running service (tests/test_fuzz.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from .endpoints import ApiRoute

REF = "#/components/schemas/{model}"
_ERROR = {"$ref": REF.format(model="Error")}
SCHEMAS = {
    "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
    "ValidationError": {
        "type": "object",
        "properties": {
            "error": {"type": "string"},
            "detail": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer", "description": "position of the record in a batch"},
                        "field": {"type": "string"},
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                    },
                    "required": ["field", "message", "type"],
                },
            },
        },
        "required": ["error", "detail"],
    },
    "Health": {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["ok", "loading"]},
            "model_version": {"type": "string", "nullable": True},
        },
        "required": ["status", "model_version"],
    },
    "ModelInfo": {
        "type": "object",
        "description": "Name, version, source (bento, gcs or fallback) and location, classes, features and "
        "encoding, metrics, global importance, training ranges and deciles, dataset sha256, library versions, "
        "and a link to the model card.",
        "additionalProperties": True,
    },
}


def _json_answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# The prediction endpoints' error answers (fast_lane.py, and BentoML's 504 past the request timeout).
ERROR_RESPONSES = {
    "400": _json_answer("Empty body or malformed JSON", _ERROR),
    "413": _json_answer("Request body too large", _ERROR),
    "415": _json_answer("Content type is not application/json", _ERROR),
    "422": _json_answer("Invalid fields, each named with the reason", {"$ref": "#/components/schemas/ValidationError"}),
    "429": _json_answer("Too many requests in flight in this worker", _ERROR),
    "503": _json_answer("Model not loaded yet (/feedback: or its store unreachable); retry after Retry-After", _ERROR),
    "504": _json_answer("Request timed out", _ERROR),
}
NOT_READY = _json_answer("Model not loaded yet", _ERROR)
PROBE = {"200": {"description": "Yes"}, "503": {"description": "No"}}
# GET endpoints besides the prediction API: (path, tag, summary, description, responses)
INFRASTRUCTURE = (
    ("/model", "Model", "The model this instance serves",
     "Its version and where it came from, what it was trained on, its metrics and feature encoding.",
     {"200": _json_answer("Model information", {"$ref": "#/components/schemas/ModelInfo"}), "503": NOT_READY}),
    ("/model/card", "Model", "The model card of the model this instance serves",
     "Markdown rendered from the model's metadata: data, intended use, features, metrics with spread, "
     "confusion matrix, calibration, what the model looks at, training ranges, known limits.",
     {"200": {"description": "The model card", "content": {"text/markdown": {"schema": {"type": "string"}}}},
      "503": NOT_READY}),
    ("/health", "Probes", "Health for existing clients, monitors and uptime checks",
     "200 with the model version once the model is ready, 503 before that.",
     {"200": _json_answer("Ready", {"$ref": "#/components/schemas/Health"}),
      "503": _json_answer("Not ready yet", {"$ref": "#/components/schemas/Health"})}),
    ("/livez", "Probes", "Liveness: the process answers", "For liveness probes.", {"200": {"description": "Alive"}}),
    ("/readyz", "Probes", "Readiness: the model loaded and passed its self-check",
     "For start-up and readiness probes.", PROBE),
    ("/metrics", "Probes", "Prometheus metrics of all workers", "Prometheus' text exposition format.",
     {"200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}),
)  # fmt: skip


def build_spec(routes: dict[str, ApiRoute], title: str, version: str, description: str) -> dict[str, Any]:
    components: dict[str, Any] = {}

    def schema_of(python_type: Any) -> dict[str, Any]:
        """The type's schema; models go to components/schemas and are referenced from there."""
        schema = TypeAdapter(python_type).json_schema(ref_template=REF)
        components.update(schema.pop("$defs", {}))
        if isinstance(python_type, type) and issubclass(python_type, BaseModel):
            components[python_type.__name__] = schema
            return {"$ref": REF.format(model=python_type.__name__)}
        return schema

    paths: dict[str, Any] = {}
    for route in routes.values():
        if route.examples is None:  # a protocol's route: its own document covers it
            continue
        paths[route.path] = {
            "post": {
                "tags": ["Prediction"],
                "summary": route.summary,
                "description": route.description,
                "operationId": route.path.strip("/"),
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": schema_of(route.request),
                            "examples": {name: {"value": value} for name, value in route.examples.items()},
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The answer",
                        "content": {"application/json": {"schema": schema_of(route.response)}},
                    },
                    **ERROR_RESPONSES,
                },
            }
        }
    for path, tag, summary, text, responses in INFRASTRUCTURE:
        paths[path] = {"get": {"tags": [tag], "summary": summary, "description": text, "responses": responses}}
    return _as_openapi_30(
        {
            "openapi": "3.0.2",
            "info": {"title": title, "version": version, "description": description},
            "tags": [{"name": "Prediction"}, {"name": "Model"}, {"name": "Probes"}],
            "paths": paths,
            "components": {"schemas": {**components, **SCHEMAS}},
        }
    )


def _as_openapi_30(node: Any) -> Any:
    """Pydantic's JSON Schema 2020-12 in OpenAPI 3.0 terms: `exclusiveMinimum: N` becomes `minimum: N,
    exclusiveMinimum: true`, `anyOf: [X, {"type": "null"}]` becomes X with `nullable: true`, and
    `examples` inside a schema becomes the singular `example`."""
    if isinstance(node, dict):
        for bound, flag in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
            value = node.get(flag)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                node[bound], node[flag] = value, True
        options = node.get("anyOf")
        if isinstance(options, list) and {"type": "null"} in options and len(options) == 2:
            del node["anyOf"]
            node.update(next(option for option in options if option != {"type": "null"}), nullable=True)
        if node.get("nullable") and isinstance(node.get("enum"), list) and None not in node["enum"]:
            node["enum"].append(None)  # in 3.0 an enum must list null itself
        for value in node.values():
            _as_openapi_30(value)
    elif isinstance(node, list):
        for value in node:
            _as_openapi_30(value)
    return node
