"""The published OpenAPI spec, made to tell the truth about the API routes.

BentoML's spec lists only 200/400/404/500 for every API and declares OpenAPI 3.0 while embedding pydantic's
JSON Schema 2020-12 (a numeric `exclusiveMinimum`, `{"type": "null"}`: invalid in 3.0). This middleware
rewrites GET /docs.json: the error responses the error contract actually gives (400, 413, 415, 422, 429,
503, 504), a required request body, and 3.0-style bounds and nullable fields. Schemathesis checks the result (tests/test_fuzz.py).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from .http import ASGIApp, Message, Receive, Scope, Send, send_json

SPEC_PATH = "/docs.json"
_ERROR = {"$ref": "#/components/schemas/Error"}
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
}
ERROR_RESPONSES = {
    "400": ("Empty body or malformed JSON", _ERROR),
    "413": ("Request body too large", _ERROR),
    "415": ("Content type is not application/json", _ERROR),
    "422": ("Invalid fields, each named with the reason", {"$ref": "#/components/schemas/ValidationError"}),
    "429": ("Too many requests in flight in this worker", _ERROR),
    "503": ("Model not loaded yet", _ERROR),
    "504": ("Request timed out", _ERROR),
}


def document(
    spec: dict[str, Any], api_paths: frozenset[str], alternatives: dict[str, tuple[type[BaseModel], type[BaseModel]]]
) -> dict[str, Any]:
    """alternatives: for a path, a second request type and its response type (BentoML documents only the
    first member of a union)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(SCHEMAS)
    for path, models in alternatives.items():
        operation = spec["paths"][path]["post"]
        for model, content in zip(models, (operation["requestBody"], operation["responses"]["200"])):
            schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
            media = content["content"]["application/json"]
            media["schema"] = {"oneOf": [media["schema"], {"$ref": f"#/components/schemas/{model.__name__}"}]}
    for path in api_paths:
        operation = spec.get("paths", {}).get(path, {}).get("post")
        if operation is None:
            continue
        operation.setdefault("requestBody", {})["required"] = True
        for status, (description, schema) in ERROR_RESPONSES.items():
            operation["responses"][status] = {
                "description": description,
                "content": {"application/json": {"schema": schema}},
            }
    return _as_openapi_30(spec)


def _as_openapi_30(node: Any) -> Any:
    """Pydantic's JSON Schema 2020-12 in OpenAPI 3.0 terms: `exclusiveMinimum: N` becomes `minimum: N,
    exclusiveMinimum: true`, and `anyOf: [X, {"type": "null"}]` (or a null default) becomes X with
    `nullable: true`."""
    if isinstance(node, dict):
        for bound, flag in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
            value = node.get(flag)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                node[bound], node[flag] = value, True
        options = node.get("anyOf")
        if isinstance(options, list) and {"type": "null"} in options and len(options) == 2:
            del node["anyOf"]
            node.update(next(option for option in options if option != {"type": "null"}), nullable=True)
        if "type" in node and "default" in node and node["default"] is None:
            node["nullable"] = True  # BentoML's inlined request schemas drop the null option of `X | None`
        if node.get("nullable") and isinstance(node.get("enum"), list) and None not in node["enum"]:
            node["enum"].append(None)  # in 3.0 an enum must list null itself
        for value in node.values():
            _as_openapi_30(value)
    elif isinstance(node, list):
        for value in node:
            _as_openapi_30(value)
    return node


class DocumentedSpec:
    def __init__(
        self,
        app: ASGIApp,
        api_paths: tuple[str, ...],
        alternatives: dict[str, tuple[type[BaseModel], type[BaseModel]]],
    ) -> None:
        self.app = app
        self.api_paths = frozenset(api_paths)
        self.alternatives = alternatives

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != SPEC_PATH or scope["method"] != "GET":
            return await self.app(scope, receive, send)
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        if start.get("status") != 200:
            await send(start)
            return await send({"type": "http.response.body", "body": b"".join(chunks)})
        spec = document(json.loads(b"".join(chunks)), self.api_paths, self.alternatives)
        await send_json(send, 200, spec, start.get("headers"))
