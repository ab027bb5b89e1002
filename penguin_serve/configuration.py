"""Settings read from environment variables, each declared once as a dataclass field: its variable, default,
type and meaning. `from_env` reads them; scripts/dev/configuration.py writes docs/configuration.md from the same
fields, so the reference cannot drift from the code."""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable, Mapping
from typing import Any, Union, get_args, get_origin, get_type_hints

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def flag(value: str) -> bool:
    if value.lower() in TRUE | FALSE:
        return value.lower() in TRUE
    raise ValueError(f"not a yes/no value: {value!r} (true/false, yes/no, on/off, 1/0)")


PARSERS: dict[Any, Callable[[str], Any]] = {
    str: str,
    int: int,
    float: float,
    bool: flag,
    tuple[str, ...]: lambda value: tuple(item.strip() for item in value.split(",") if item.strip()),
}


def parser(hint: Any) -> Callable[[str], Any]:
    """The parser of a field's type; an optional one (`X | None`, `Optional[X]`) is parsed as X when set."""
    if get_origin(hint) in (Union, types.UnionType):
        [hint] = [arg for arg in get_args(hint) if arg is not type(None)]
    return PARSERS[hint]


def setting(
    variable: str,
    meaning: str,
    default: Any = None,
    *,
    factory: Callable[[], Any] | None = None,
    from_env: Callable[[Mapping[str, str]], Any] | None = None,
    parse: Callable[[str], Any] | None = None,
    shown: str | None = None,
) -> Any:
    """A field read from `variable`. Where it is unset or empty: `default`, or `factory()`, or
    `from_env(env)` (a default that depends on other variables). `shown` is the default as the reference
    gives it, where the value itself depends on the machine or on other variables."""
    metadata = {"variable": variable, "meaning": meaning, "parse": parse, "from_env": from_env, "shown": shown}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def from_env(cls: type, env: Mapping[str, str]) -> Any:
    """An instance of the settings dataclass `cls` from these variables."""
    values = {}
    hints = get_type_hints(cls)
    for field in dataclasses.fields(cls):
        raw = env.get(field.metadata["variable"], "")
        if raw:
            values[field.name] = (field.metadata["parse"] or parser(hints[field.name]))(raw)
        elif field.metadata["from_env"]:
            values[field.name] = field.metadata["from_env"](env)
    return cls(**values)


def reference(cls: type) -> list[tuple[str, str, str, str]]:
    """(variable, default, type, meaning) for each field of the settings dataclass `cls`."""
    rows = []
    for field in dataclasses.fields(cls):
        if field.metadata["shown"] is not None:
            default = field.metadata["shown"]
        elif field.default is None or field.default == "" or field.default == ():
            default = "unset"
        elif isinstance(field.default, bool):
            default = "on" if field.default else "off"
        else:
            default = str(field.default)
        rows.append((field.metadata["variable"], default, field.type, field.metadata["meaning"]))
    return rows
