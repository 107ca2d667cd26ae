"""Strict field types for the dataclass configurations: no silent coercion, no non-finite numbers.

``check_fields(obj)`` compares every field of a dataclass instance with its annotation and raises one
:class:`~asymlib.errors.ConfigError` naming the class, the field and the value: ``"3"`` or ``3.5`` for an
``int`` field, ``True`` for a number, ``nan``/``inf`` for a ``float``, a list where a tuple is expected
(tuples are what the configs hold; the override mechanism converts lists itself).
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

__all__ = ["check_fields"]


def _matches(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, t) for t in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if tp is str:
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args))
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return isinstance(value, Mapping)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True  # annotations this checker does not model


def check_fields(obj: Any) -> None:
    """Raise :class:`ConfigError` for the first field of dataclass ``obj`` whose value does not match its type."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        tp = hints.get(f.name, Any)
        if not _matches(value, tp):
            bad_number = isinstance(value, float) and not math.isfinite(value)
            what = "a finite number" if bad_number else f"of type {getattr(tp, '__name__', None) or tp}"
            raise ConfigError(f"{type(obj).__name__}.{f.name} must be {what}, got {value!r} "
                              f"({type(value).__name__})")
