"""Cron maths, pure: no I/O and no clock (every time is an argument).

An expression has 5 fields (minute hour day-of-month month day-of-week, with names and ranges
such as ``0 9 * * MON-FRI`` and steps such as ``*/15 * * * *``), an optional 6th field of
seconds (``*/5 * * * * *`` is every 5 seconds), or is one of croniter's ``@hourly``-style
aliases. croniter expands the fields and walks the wall clock; what a wall-clock time means in a
timezone is decided here, so it is the same with every croniter version:

- A time that does not exist (spring forward: 02:30 on the night the clock jumps from 02:00 to
  03:00) fires once, at the first instant after the jump (03:00 local).
- A time that happens twice (fall back: 01:30 when the clock goes from 02:00 back to 01:00)
  fires once, at its first occurrence, unless the hour field is ``*``: a schedule that fires
  every hour (or more often) keeps firing through the repeated hour in real time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from durable_celery.errors import InvalidInput

UTC = timezone.utc
#: Wider than any UTC offset change (the largest in the tz database is 2 h).
_DST_SPAN = timedelta(hours=3)
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class CronSpec:
    """A validated expression in a timezone."""

    expression: str
    timezone: str

    @property
    def zone(self) -> ZoneInfo:
        return zone(self.timezone)


def parse(expression: object, timezone_name: object = "UTC") -> CronSpec:
    """Validate an expression and an IANA timezone name.

    Raises:
        InvalidInput: not 5 or 6 fields (or an alias), a field out of range, an unknown timezone.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidInput(f"a cron expression is a non-empty string, got {expression!r}")
    text = " ".join(expression.split())
    fields = text.split(" ")
    if not (text.startswith("@") and len(fields) == 1) and len(fields) not in (5, 6):
        raise InvalidInput(f"cron expression {expression!r} has {len(fields)} fields; it needs 5 (minute hour "
                           "day-of-month month day-of-week) or 6 (the same, then seconds)")
    try:
        valid = croniter.is_valid(text)
    except Exception:  # croniter raises for some malformed input instead of answering False
        valid = False
    if not valid:
        raise InvalidInput(f"{expression!r} is not a valid cron expression")
    return CronSpec(text, zone_name(timezone_name))


def zone_name(name: object) -> str:
    """``name`` if it is a known IANA timezone; ``InvalidInput`` otherwise."""
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"timezone must be an IANA timezone name such as 'Europe/Berlin', got {name!r}")
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(f"unknown timezone {name!r}: use an IANA name such as 'America/New_York'") from None
    return name


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def next_fire(spec: CronSpec, after: datetime) -> datetime:
    """The first time strictly after ``after`` (timezone-aware) that the schedule fires, in UTC."""
    tz = spec.zone
    after = after.astimezone(UTC)
    wall = after.astimezone(tz).replace(tzinfo=None)
    offset = _offset(tz, after)
    # A wall time earlier than ``after``'s can still be later in real time only when the clock
    # goes back (fall back) soon: then the walk starts that much earlier.
    lookback = max(timedelta(0), max(offset - _offset(tz, after + k * timedelta(hours=1)) for k in range(1, 4)))
    every_hour = _every_hour(spec.expression)
    walk = croniter(spec.expression, wall - lookback)
    best: datetime | None = None
    best_wall: datetime | None = None
    while True:
        candidate: datetime = walk.get_next(datetime)
        if best_wall is not None and candidate > best_wall + lookback:
            assert best is not None
            return best
        for instant in _instants(tz, candidate, every_hour):
            if instant > after and (best is None or instant < best):
                best, best_wall = instant, candidate
        if best is not None and lookback == timedelta(0):
            return best


def first_at_or_after(spec: CronSpec, moment: datetime) -> datetime:
    """The first time at or after ``moment`` that the schedule fires, in UTC."""
    return next_fire(spec, moment - _TICK)


def _instants(tz: ZoneInfo, wall: datetime, every_hour: bool) -> list[datetime]:
    """The UTC instants a wall-clock time stands for in ``tz`` (see the module docstring)."""
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [first.astimezone(UTC)]
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall:
        return [_gap_end(tz, second.astimezone(UTC), first.astimezone(UTC))]
    instants = [first.astimezone(UTC)]
    if every_hour:
        instants.append(second.astimezone(UTC))
    return instants


def _gap_end(tz: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The instant the clock jumps forward, between ``low`` (before it) and ``high`` (after),
    to the second (every transition in the tz database falls on a whole second)."""
    after_jump = _offset(tz, high)
    lo, hi = math.floor(low.timestamp()), math.ceil(high.timestamp())
    while hi - lo > 1:
        middle = (lo + hi) // 2
        if _offset(tz, datetime.fromtimestamp(middle, UTC)) == after_jump:
            hi = middle
        else:
            lo = middle
    return datetime.fromtimestamp(hi, UTC)


def _offset(tz: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None
    return offset


@lru_cache(maxsize=256)
def _every_hour(expression: str) -> bool:
    hours = croniter(expression).expanded[1]
    return hours == ["*"] or len(hours) == 24
