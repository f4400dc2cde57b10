"""Calendar helpers for ``schedule_at``: pure, timezone-aware functions of a datetime."""

from __future__ import annotations

from datetime import datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

WEEKDAYS = {"monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5, "sunday": 6}


def _zone(tz: str | tzinfo | None, at: datetime) -> tzinfo:
    if tz is None:
        return at.tzinfo or ZoneInfo("UTC")
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _local(at: datetime | None, tz: str | tzinfo | None) -> datetime:
    at = at or datetime.now(ZoneInfo("UTC"))
    if at.tzinfo is None:
        raise ValueError("calendar helpers need a timezone-aware datetime")
    return at.astimezone(_zone(tz, at))


def _at(day: datetime, hour: int, minute: int) -> datetime:
    zone = day.tzinfo
    return datetime.combine(day.date(), time(hour, minute), tzinfo=zone)


def next_business_day(at: datetime | None = None, *, hour: int = 9, minute: int = 0,
                      tz: str | tzinfo | None = None) -> datetime:
    """The next Monday-to-Friday after ``at``'s date, at ``hour:minute`` local time."""
    day = _local(at, tz) + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return _at(day, hour, minute)


def next_weekday(weekday: str | int, at: datetime | None = None, *, hour: int = 9, minute: int = 0,
                 tz: str | tzinfo | None = None) -> datetime:
    """The next given weekday strictly after ``at``'s date (``"monday"`` or 0 … ``"sunday"`` or 6)."""
    target = WEEKDAYS.get(weekday.lower(), -1) if isinstance(weekday, str) else weekday
    if target not in range(7):
        raise ValueError(f"weekday must be a day name or 0-6, got {weekday!r}")
    day = _local(at, tz)
    ahead = (target - day.weekday() - 1) % 7 + 1
    return _at(day + timedelta(days=ahead), hour, minute)


def end_of_day(at: datetime | None = None, *, tz: str | tzinfo | None = None) -> datetime:
    """23:59:59 local time on ``at``'s date."""
    day = _local(at, tz)
    return datetime.combine(day.date(), time(23, 59, 59), tzinfo=day.tzinfo)
