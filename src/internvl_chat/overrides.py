"""One typed parser for `key=value` overrides and YAML values, shared by the trainer and the demo.

`coerce(value, annotation, strict=...)` turns a YAML-parsed value into a dataclass field's
declared type (bool, int, float, str, list, dict, and `X | None`), or raises `OverrideTypeError`;
each caller words the error for its own users (file, line, key).

- lenient (the trainer, `internvl-chat train CONFIG key=value`): spellings people type on a command
  line are accepted: "yes"/"off"/1/0 for a bool, "1e3" for an int, "null"/"none"/"~" for an optional.
- strict (the demo config): the YAML type must already be the field's type (an int is accepted
  for a float); nothing is re-read from a string.
"""

from __future__ import annotations

import types
import typing
from typing import Any

_TRUE = ("true", "yes", "1", "on")
_FALSE = ("false", "no", "0", "off")
_NULL = ("null", "none", "~")


class OverrideTypeError(ValueError):
    """`value` cannot be used as the field's type. `null` is True when the value was null for a required field."""

    def __init__(self, value: Any, annotation: Any, null: bool = False):
        self.value, self.annotation, self.null = value, annotation, null
        super().__init__(f"cannot use {value!r} as {type_name(annotation)}")


def type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation))


def optional_of(annotation: Any) -> Any | None:
    """`X` for `X | None` / `Optional[X]`, else None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0]
    return None


def coerce(value: Any, annotation: Any, *, strict: bool) -> Any:
    inner = optional_of(annotation)
    if inner is not None:
        if value is None or (not strict and isinstance(value, str) and value.lower() in _NULL):
            return None
        return coerce(value, inner, strict=strict)
    if value is None:
        raise OverrideTypeError(value, annotation, null=True)
    try:
        return _convert(value, annotation, strict)
    except (TypeError, ValueError):
        raise OverrideTypeError(value, annotation) from None


def _convert(value: Any, annotation: Any, strict: bool) -> Any:
    origin = typing.get_origin(annotation)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if not strict and isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        if not strict and isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError(value)
    if annotation is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(value)
        if strict and not isinstance(value, int):
            raise ValueError(value)
        return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
    if annotation is float:
        if isinstance(value, bool) or (strict and not isinstance(value, (int, float))):
            raise ValueError(value)
        return float(value)
    if annotation is str:
        if isinstance(value, (dict, list)) or (strict and not isinstance(value, str)):
            raise ValueError(value)
        return str(value)
    if annotation in (list, dict) or origin in (list, dict):
        if not isinstance(value, origin or annotation):
            raise ValueError(value)
        return value
    return value
