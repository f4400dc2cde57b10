"""What a caller may send: names and payloads, checked at the call before anything is written.

Names (of events, inputs, queues, schedules, workflows in a filter) are strings of 1 to 255
characters with no control characters: Postgres text cannot hold a NUL, and a newline or an
escape sequence in a name would forge lines in logs and in the CLI's output. Values always
reach SQL as bound parameters (SQLAlchemy Core), never in the text of a statement, so quotes
and semicolons in a name are just characters.

Payloads (a start's input, an event's payload, a human input's data, a schedule's input) go
through the codec (JSON types plus datetime, date, Decimal and UUID; no NaN or infinities, no
non-string keys, no NUL, at most ``codec.MAX_DEPTH`` levels) and must fit in
``max_payload_bytes`` as compact UTF-8 JSON. See docs/security.md.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from durable_celery import codec
from durable_celery.errors import InvalidInput, PayloadTooLarge

MAX_NAME_CHARS = 255
#: the default of the ``max_payload_bytes`` setting: 1 MiB
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024
#: what a schema prefix may be: a lower-case SQL identifier that needs no quoting, not in the
#: ``pg_`` namespace Postgres reserves, of at most 48 characters: names derived from it must
#: fit Postgres's 63-byte identifiers too (the NOTIFY channel ``durable_live_<prefix>``)
PREFIX_PATTERN = re.compile(r"[a-z_][a-z0-9_]{0,47}")


def check_name(value: Any, what: str) -> str:
    """``value`` if it is a usable name, else ``InvalidInput`` naming ``what`` (e.g. "event name")."""
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_CHARS:
        raise InvalidInput(f"{what} must be a string of 1 to {MAX_NAME_CHARS} characters, got {_shown(value)}")
    check_text(value, what)
    if any(unicodedata.category(c) == "Cc" for c in value):
        raise InvalidInput(f"{what} must not hold control characters, got {_shown(value)}")
    return value


#: the largest count (a limit, an offset) a call takes: what a Postgres integer holds
MAX_COUNT = 2**31 - 1


def check_count(value: Any, what: str, minimum: int = 0) -> int:
    """``value`` if it is an int from ``minimum`` to ``MAX_COUNT``, else ``InvalidInput``."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_COUNT:
        raise InvalidInput(f"{what} must be an int from {minimum} to {MAX_COUNT}, got {_shown(value)}")
    return value


def check_text(value: str, what: str) -> str:
    """``value`` if Postgres can store it as text: no NUL character, no lone surrogate."""
    if "\x00" in value:
        raise InvalidInput(f"{what} must not hold a NUL character, got {_shown(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} must be valid Unicode (it holds a lone surrogate), got {_shown(value)}") from None
    return value


def encode_payload(value: Any, what: str, max_bytes: int | None) -> Any:
    """The stored (codec) form of a payload, or ``InvalidInput`` (``PayloadTooLarge`` when it
    is over ``max_bytes`` as compact UTF-8 JSON; ``None``: no limit)."""
    try:
        encoded = codec.encode(value)
    except codec.Unencodable as exc:
        raise InvalidInput(f"{what} at {exc.path or 'its root'} holds a {exc.type_name}, "
                           "which cannot be stored as JSON") from None
    except RecursionError:  # a self-referencing dict or list
        raise InvalidInput(f"{what} refers to itself, which cannot be stored as JSON") from None
    size = payload_size(encoded, what)
    if max_bytes is not None and size > max_bytes:
        raise PayloadTooLarge(what, size, max_bytes)
    return encoded


def payload_size(encoded: Any, what: str) -> int:
    """Bytes of ``encoded`` as compact UTF-8 JSON (refusing what JSON text cannot carry)."""
    try:
        return len(json.dumps(encoded, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} holds a string that is not valid Unicode (a lone surrogate)") from None
    except ValueError as exc:  # e.g. an int of more digits than Python converts to text
        raise InvalidInput(f"{what} cannot be written as JSON: {exc}") from None


def check_prefix(prefix: object) -> str:
    """``prefix`` if it can name the engine's Postgres schema, else ``InvalidInput``: it is put in
    DDL (``CREATE SCHEMA``), in the grants an operator types and in task names, so it is held to a
    pattern that needs no quoting anywhere (it is quoted all the same)."""
    if not isinstance(prefix, str) or not PREFIX_PATTERN.fullmatch(prefix) or prefix.startswith("pg_"):
        raise InvalidInput(f"prefix must be a lower-case identifier of 1 to 48 characters (a-z, 0-9, _; not "
                           f"starting with a digit or pg_), got {prefix!r}")
    return prefix


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."
