"""Rendering shared by the commands: aligned plain-text tables for people, JSON for scripts.

Tables carry no colour and no box drawing, so they survive pipes, logs and ``grep``. JSON is
always valid: datetimes become ISO 8601 strings, Decimals and UUIDs strings.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

import click

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("table", "json")
EMPTY = "-"


def format_option(fn: F) -> F:
    """The ``--format table|json`` option every listing command takes (as ``fmt``)."""
    option = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                          help="table for people, json for scripts")
    return option(fn)


def emit_json(value: Any) -> None:
    """Print ``value`` as indented JSON; dataclasses (Execution, StepRecord) become objects."""
    click.echo(json.dumps(value, indent=2, default=_to_json))


def _to_json(value: Any) -> Any:
    # json calls this only for what it cannot encode itself; str enums never get here.
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (Decimal, UUID)):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)  # a listing must never fail on one odd value


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Columns padded to their widest cell, two spaces apart; ``None`` shows as ``-``."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = [list(headers), *cells]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines)


def details(pairs: Sequence[tuple[str, Any]]) -> str:
    """``key  value`` lines with the keys aligned."""
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(width)}  {cell(v)}".rstrip() for k, v in pairs)


def cell(value: Any) -> str:
    """One value as table text: times to the second, structures as compact JSON."""
    if value is None:
        return EMPTY
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=_to_json, separators=(",", ":"))
    return str(value)


def error_text(error: dict[str, Any] | None) -> str | None:
    """``Type: message (step s)`` for an execution's or attempt's error dict."""
    if not error:
        return None
    text = f"{error.get('type') or 'Error'}: {error.get('message') or ''}".rstrip()
    step = error.get("step")
    return f"{text} (step {step})" if step else text


def duration_text(ms: int | None) -> str | None:
    if ms is None:
        return None
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def version_text(version: str | None, label: Any) -> str | None:
    """A workflow version as people read it: its label, else ``#`` and the start of its hash."""
    if label is not None:
        return str(label)
    return f"#{version[:8]}" if version else None
