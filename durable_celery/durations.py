"""Duration helpers: every duration argument is a ``timedelta`` or a number of seconds."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Union

from durable_celery.errors import InvalidInput

# Union, not ``|``: a type alias is evaluated at runtime (Python 3.9)
Duration = Union[timedelta, int, float]
#: the longest duration accepted (1000 years): past it, dates computed from it overflow
MAX_SECONDS = 1000 * 365.25 * 86400


def seconds(n: float) -> timedelta:
    """Return a ``timedelta`` of ``n`` seconds."""
    return timedelta(seconds=n)


def minutes(n: float) -> timedelta:
    """Return a ``timedelta`` of ``n`` minutes."""
    return timedelta(minutes=n)


def hours(n: float) -> timedelta:
    """Return a ``timedelta`` of ``n`` hours."""
    return timedelta(hours=n)


def days(n: float) -> timedelta:
    """Return a ``timedelta`` of ``n`` days."""
    return timedelta(days=n)


def to_seconds(value: Duration, what: str) -> float:
    """Normalise a duration argument to seconds; ``what`` names it in the error."""
    if isinstance(value, bool) or not isinstance(value, (timedelta, int, float)):
        raise InvalidInput(f"{what} must be a timedelta or a number of seconds, got {value!r}")
    try:
        total = value.total_seconds() if isinstance(value, timedelta) else float(value)
    except OverflowError:  # an int too large for a float
        total = math.inf
    if math.isnan(total):
        raise InvalidInput(f"{what} must be a number of seconds, got NaN")
    if total < 0:
        raise InvalidInput(f"{what} must not be negative, got {value!r}")
    if total > MAX_SECONDS:
        raise InvalidInput(f"{what} must be at most 1000 years, got {value!r}")
    return total


def optional_seconds(value: Duration | None, what: str) -> float | None:
    """Like :func:`to_seconds`, passing ``None`` through."""
    return None if value is None else to_seconds(value, what)
