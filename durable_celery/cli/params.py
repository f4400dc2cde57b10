"""Option parsers shared by the commands: JSON and durations given on the command line."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import click

from durable_celery.durations import MAX_SECONDS


def _parse(value: str, ctx: click.Context | None, param: click.Parameter | None) -> Any:
    try:
        return json.loads(value)
    except RecursionError:
        raise click.BadParameter("not usable JSON: it nests too deeply", ctx, param) from None
    except ValueError as exc:
        hint = ""
        if value.strip() and value.strip()[0] not in '{["-0123456789' and value.isprintable() and len(value) <= 60:
            hint = f"; a string needs JSON quotes, e.g. '\"{value}\"'"
        raise click.BadParameter(f"not valid JSON ({exc}){hint}", ctx, param) from None


def json_object(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, Any] | None:
    """Parse an option given as a JSON object, e.g. ``--input '{"id": 1}'``."""
    if value is None:
        return None
    parsed = _parse(value, ctx, param)
    if not isinstance(parsed, dict):
        raise click.BadParameter(f"expected a JSON object ({{...}}), got {type(parsed).__name__}", ctx, param)
    return parsed


def json_value(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """Parse an option given as any JSON value: ``'"approved"'``, ``'{"id": 1}'``, ``true``, ``3``.
    Absent, it is ``None`` (JSON null)."""
    if value is None:
        return None
    return _parse(value, ctx, param)


#: seconds per unit of a duration written as ``30d``, ``12h``, ``90m``, ``45s`` or ``2w``
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def duration(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    """Parse a duration: a number and a unit, ``30d``, ``12h``, ``90m``, ``45s``, ``2w``."""
    if value is None:
        return None
    match = _DURATION.match(value.lower())
    if match is None:
        raise click.BadParameter(f"{value!r} is not a duration: write a number and a unit, e.g. 30d, 12h, 90m, "
                                 "45s or 2w", ctx, param)
    seconds = float(match.group(1)) * UNITS[match.group(2)]
    if seconds > MAX_SECONDS:
        raise click.BadParameter(f"{value!r} is too long a duration: at most 1000 years", ctx, param)
    return timedelta(seconds=seconds)
