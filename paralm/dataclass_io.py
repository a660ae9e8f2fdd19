"""Rebuild nested config dataclasses from plain dicts (as stored in checkpoints' hyper_parameters)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def _dataclass_in(tp: Any) -> type | None:
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def from_dict(cls: type[T], data: dict | T) -> T:
    """`cls(**data)` recursively for dataclass-typed fields; unknown keys are an error naming them."""
    if isinstance(data, cls):
        return data
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}; valid: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        sub = _dataclass_in(hints.get(key))
        kwargs[key] = from_dict(sub, value) if sub is not None and isinstance(value, dict) else value
        if isinstance(kwargs[key], list) and typing.get_origin(hints.get(key)) is tuple:
            kwargs[key] = tuple(kwargs[key])
    return cls(**kwargs)
