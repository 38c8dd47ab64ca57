"""One typed parser for `key=value` overrides and YAML values, shared by the trainer and the demo.

`coerce(value, annotation, strict=...)` turns a YAML-parsed value into a dataclass field's type
(bool, int, float, str, list, dict, `X | None`) or raises `OverrideTypeError`; each caller words the
error for its users. Lenient (trainer command line): "yes"/"off"/1/0 for a bool, "1e3" for an int,
"null"/"none"/"~" for an optional. Strict (demo YAML): the YAML type must already be the field's
type (an int is accepted for a float).
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

import yaml

_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading `1e-5` as a float. YAML 1.1 wants a dot in a float (`1.0e-5`), so
    PyYAML reads `lr: 1e-5` as a string; JSON, YAML 1.2 and every config writer mean a number. In a typed
    field the string used to be converted later, but inside a free-form mapping (`model.preset_args`) it
    reached transformers as a string."""


_Loader.add_implicit_resolver(  # copies the resolver table for this subclass; SafeLoader is untouched
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789"))


def load_yaml(text: str) -> Any:
    """A YAML document (a config file or one override's value), with `1e-5` read as a number."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


class OverrideTypeError(ValueError):
    """`value` cannot be used as `annotation`; `null` is True when it was null for a required field."""

    def __init__(self, value: Any, annotation: Any, null: bool = False):
        self.value, self.annotation, self.null = value, annotation, null
        super().__init__(f"cannot use {value!r} as {type_name(annotation)}")


def type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", str(annotation))


def coerce(value: Any, annotation: Any, *, strict: bool) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # X | None
        if value is None or (not strict and isinstance(value, str) and value.lower() in ("null", "none", "~")):
            return None
        return coerce(value, next(a for a in typing.get_args(annotation) if a is not type(None)), strict=strict)
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
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()) or (
                strict and not isinstance(value, int)):
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
    if (annotation in (list, dict) or origin in (list, dict)) and not isinstance(value, origin or annotation):
        raise ValueError(value)
    return value
