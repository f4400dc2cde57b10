"""JSON codec for workflow contexts.

Context is JSON in storage. datetime, date, Decimal and UUID values round-trip unchanged by being
stored as one-key tagged objects (``{"$datetime": "2026-11-22T10:00:00+00:00"}``); anything else that
JSON cannot hold is rejected with the path of the offending key.

Every one-key object whose key starts with ``$`` belongs to the codec. So that user data of that
shape (MongoDB extended JSON such as ``{"$date": "2026-01-01"}``, or ``{"$object": ...}`` itself)
still round-trips unchanged, :func:`encode` wraps it in an escape: ``{"$x": v}`` is stored as
``{"$object": {"$x": v}}``, and :func:`decode` unwraps it without reading the inner key as a tag.
Objects of any other shape are stored as they are, so stored data reads like the context.

:func:`decode` is lenient with data stored before the escape existed: a tag it does not know
(``{"$oid": ...}``), a tag whose text does not parse (``{"$uuid": "not-a-uuid"}``, ``{"$uuid": 5}``)
and an ``$object`` that does not wrap a one-key ``$`` object are kept as plain objects rather
than raise.
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
_ESCAPE = "$object"
#: how deeply objects and lists may nest: deeper data is refused (it would exhaust the stack of
#: this walk, of ``json`` and of Postgres's JSON parser) rather than crash the caller
MAX_DEPTH = 100
# What the decoders raise on text they cannot parse (decimal.InvalidOperation is an ArithmeticError).
_BAD_TEXT = (ValueError, ArithmeticError)


class Unencodable(Exception):
    """A value cannot be encoded; ``path`` is the dotted key path to it."""

    def __init__(self, path: str, type_name: str) -> None:
        self.path = path
        self.type_name = type_name
        super().__init__(f"{path or '<root>'}: {type_name}")


def encode(value: Any, path: str = "", depth: int = 0) -> Any:
    """Turn a context value into plain JSON types, tagging the rich scalar types.

    Refused (``Unencodable``): types JSON cannot hold, non-string keys, NaN and infinities, text
    holding a NUL character (Postgres text and jsonb cannot store it) and nesting deeper than
    ``MAX_DEPTH``."""
    if isinstance(value, str):
        if "\x00" in value:
            raise Unencodable(path, "string with a NUL character")
        return value
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise Unencodable(path, "non-finite float")
        return value
    if isinstance(value, (dict, list, tuple)):
        if depth >= MAX_DEPTH:
            raise Unencodable(path, f"value nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            return _encode_object(value, path, depth)
        return [encode(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    for cls, tag, to_text in _ENCODERS:
        if isinstance(value, cls):
            return {tag: to_text(value)}
    raise Unencodable(path, type(value).__name__)


def _encode_object(value: dict[Any, Any], path: str, depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise Unencodable(f"{path}.{key!r}" if path else repr(key), f"{type(key).__name__} key")
        if "\x00" in key:
            raise Unencodable(f"{path}.{key!r}" if path else repr(key), "key with a NUL character")
        out[key] = encode(item, f"{path}.{key}" if path else key, depth + 1)
    if len(out) == 1 and _is_tag_shaped(out):
        return {_ESCAPE: out}
    return out


def decode(value: Any) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(value, dict):
        if len(value) == 1:
            (tag, inner), = value.items()
            decoder = _DECODERS.get(tag)
            if decoder is not None:
                if isinstance(inner, str):
                    try:
                        return decoder(inner)
                    except _BAD_TEXT:
                        pass
            elif tag == _ESCAPE and isinstance(inner, dict) and len(inner) == 1 and _is_tag_shaped(inner):
                (key, item), = inner.items()
                return {key: decode(item)}
        return {key: decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode(item) for item in value]
    return value


def _is_tag_shaped(one_key: dict[Any, Any]) -> bool:
    key = next(iter(one_key))
    return isinstance(key, str) and key.startswith("$")
