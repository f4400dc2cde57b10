"""JSON codec for workflow contexts.

Context is JSON in storage. datetime, date, Decimal and UUID values round-trip unchanged by being
stored as one-key tagged objects (``{"$datetime": "2026-11-22T10:00:00+00:00"}``); anything else that
JSON cannot hold is rejected with the path of the offending key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

_ENCODERS: list[tuple[type, str, Callable[[Any], str]]] = [
    # datetime before date: a datetime is a date.
    (datetime, "$datetime", lambda v: v.isoformat()),
    (date, "$date", lambda v: v.isoformat()),
    (Decimal, "$decimal", str),
    (UUID, "$uuid", str),
]
_DECODERS: dict[str, Callable[[str], Any]] = {
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$decimal": Decimal,
    "$uuid": UUID,
}


class Unencodable(Exception):
    """A value cannot be encoded; ``path`` is the dotted key path to it."""

    def __init__(self, path: str, type_name: str) -> None:
        self.path = path
        self.type_name = type_name
        super().__init__(f"{path or '<root>'}: {type_name}")


def encode(value: Any, path: str = "") -> Any:
    """Turn a context value into plain JSON types, tagging the rich scalar types."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise Unencodable(path, "non-finite float")
        return value
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise Unencodable(f"{path}.{key!r}" if path else repr(key), f"{type(key).__name__} key")
            out[key] = encode(item, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, (list, tuple)):
        return [encode(item, f"{path}[{i}]") for i, item in enumerate(value)]
    for cls, tag, to_text in _ENCODERS:
        if isinstance(value, cls):
            return {tag: to_text(value)}
    raise Unencodable(path, type(value).__name__)


def decode(value: Any) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(value, dict):
        if len(value) == 1:
            (tag, text), = value.items()
            decoder = _DECODERS.get(tag)
            if decoder is not None and isinstance(text, str):
                return decoder(text)
        return {key: decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode(item) for item in value]
    return value
