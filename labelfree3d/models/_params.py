"""Parameter checks shared by the model and training configs.

Each check raises `ParameterError` with a one-line message naming the parameter, so that a bad
config fails when it is read, not deep inside a forward pass.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from labelfree3d.errors import ParameterError

__all__ = [
    "check_positive",
    "check_int",
    "check_fraction",
    "check_choice",
    "check_int_list",
    "check_bool",
    "check_scalar_type",
    "dataclass_from_dict",
    "dataclass_to_dict",
]


def check_positive(value: Any, name: str, allow_zero: bool = False) -> float:
    """`value` as a finite float > 0 (>= 0 with `allow_zero`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ParameterError(f"{name} must be a finite number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ParameterError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return float(value)


def check_int(value: Any, name: str, minimum: int = 0) -> int:
    """`value` as an int >= `minimum` (integral floats such as 4.0 are accepted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be an integer, got {value!r}")
    if not isinstance(value, numbers.Integral) and (not math.isfinite(float(value)) or float(value) != int(value)):
        raise ParameterError(f"{name} must be an integer, got {value!r}")
    if int(value) < minimum:
        raise ParameterError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_fraction(value: Any, name: str, open_low: bool = False) -> float:
    """`value` as a float in [0, 1] ((0, 1] with `open_low`)."""
    number = check_positive(value, name, allow_zero=not open_low)
    if number > 1:
        raise ParameterError(f"{name} must be <= 1, got {value!r}")
    return number


def check_choice(value: Any, name: str, options: Sequence[str]) -> str:
    """`value` if it is one of `options`."""
    if value not in options:
        raise ParameterError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def check_int_list(value: Any, name: str, length: int | None = None, minimum: int = 1) -> tuple[int, ...]:
    """`value` as a tuple of ints >= `minimum`, of `length` items when given."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ParameterError(f"{name} must be a list of integers, got {value!r}")
    items = tuple(check_int(v, f"{name}[{i}]", minimum) for i, v in enumerate(value))
    if length is not None and len(items) != length:
        raise ParameterError(f"{name} must have {length} entries, got {len(items)}")
    return items


T = TypeVar("T")


def dataclass_from_dict(cls: type[T], values: Mapping[str, Any] | None, where: str) -> T:
    """Build dataclass `cls` from a mapping (YAML section), rejecting unknown keys by name.

    Nested dataclass fields are built recursively from nested mappings; lists become tuples for
    tuple-typed fields. `where` names the section in error messages (e.g. "model.decoder").
    """
    values = dict(values or {})
    if not isinstance(values, dict):
        raise ParameterError(f"{where} must be a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ParameterError(f"{where} has no setting(s) {unknown}; valid: {', '.join(sorted(fields))}")
    hints = typing.get_type_hints(cls)
    built: dict[str, Any] = {}
    for key, value in values.items():
        hint = hints[key]
        nested = _dataclass_type(hint)
        if nested is not None and (value is None or isinstance(value, Mapping)):
            built[key] = dataclass_from_dict(nested, value, f"{where}.{key}")
        elif isinstance(value, list):
            built[key] = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        else:
            built[key] = check_scalar_type(value, hint, f"{where}.{key}")
    return cls(**built)


def check_bool(value: Any, name: str) -> bool:
    """`value` as a bool: True/False (YAML's true/false/yes/no/on/off) or the integers 1/0.

    Anything else is refused: a string such as "maybe" or "fasle" is truthy in Python and would
    silently switch the setting on.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise ParameterError(f"{name} must be true or false (yes/no, 1/0), got {value!r}")


def check_scalar_type(value: Any, hint: Any, name: str) -> Any:
    """`value` checked against a field's scalar type hint (bool, int, float, str, or Optional of one).

    Booleans go through `check_bool`; numbers must not be strings or booleans; other hints
    (unions of several types, literals, containers) are left to the dataclass's own checks.
    """
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return value
        concrete = [a for a in args if a is not type(None)]
        if len(concrete) != 1:
            return value
        hint = concrete[0]
    if hint is bool:
        return check_bool(value, name)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ParameterError(f"{name} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ParameterError(f"{name} must be a number, got {value!r}")
        return value
    if hint is str and not isinstance(value, str):
        raise ParameterError(f"{name} must be a string, got {value!r}")
    return value


def _dataclass_type(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint):
        return hint
    for arg in typing.get_args(hint):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def dataclass_to_dict(instance: Any) -> dict[str, Any]:
    """Plain dict (tuples as lists) of a dataclass tree, ready for YAML or JSON."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(instance)
