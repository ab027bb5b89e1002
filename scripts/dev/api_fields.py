"""docs/api.md's field tables, from the contract's own schema: each field's name, JSON type, whether it is
required, and its description. Between a table's markers the page is this script's output:

    .venv/bin/python -m scripts.dev.api_fields    # rewrites the tables in docs/api.md
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from penguin_serve.contract import Observation, Penguin, Prediction, Receipt

PAGE = Path(__file__).resolve().parents[2] / "docs" / "api.md"
MODELS: dict[str, type[BaseModel]] = {model.__name__: model for model in (Penguin, Prediction, Observation, Receipt)}
REQUESTS = (Penguin, Observation)
TABLE = re.compile(r"(<!-- fields of (\w+): python -m scripts\.dev\.api_fields -->\n)[^<]*?(\n<!-- end of fields -->)")


def json_type(schema: dict) -> str:
    """A property's JSON type in words: `number`, `string or null`, `array of strings`, `object of numbers`."""
    options = [option for option in schema.get("anyOf", [schema]) if option.get("type") != "null"]
    words = []
    for option in options:
        kind = option["type"]
        if kind == "array":
            kind = f"array of {option['items']['type']}s"
        elif kind == "object" and "additionalProperties" in option:
            kind = f"object of {option['additionalProperties']['type']}s"
        if "enum" in option:
            names = [f"`{name}`" for name in option["enum"]]
            kind += f" ({', '.join(names[:-1])} or {names[-1]})"
        words.append(kind)
    return " or ".join(words + ["null"] * (len(options) < len(schema.get("anyOf", [schema]))))


def table(model: type[BaseModel]) -> str:
    """A request's fields say whether they are required; every field of an answer is always there. A model that
    extends another one here lists the fields it adds."""
    schema = model.model_json_schema()
    inherited = {name for base in model.__mro__[1:] if base in MODELS.values() for name in base.model_fields}
    required = set(schema.get("required", []))
    presence = {
        name: "" if model not in REQUESTS else ", required" if name in required else ", optional" for name in schema["properties"]
    }
    rows = [
        f"| `{name}` | {json_type(prop)}{presence[name]} | {prop.get('description', '')} |"
        for name, prop in schema["properties"].items()
        if name not in inherited
    ]
    return "\n".join(["| Field | Type | Meaning |", "|---|---|---|", *rows])


def rewrite(page: str) -> str:
    return TABLE.sub(lambda match: match[1] + table(MODELS[match[2]]) + match[3], page)


if __name__ == "__main__":
    PAGE.write_text(rewrite(PAGE.read_text()))
