"""The one place that reads wall time, so tests and tools can substitute it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable


class Clock(Protocol):
    """Source of the current time (always timezone-aware UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock, which a test in Celery's eager mode can move forward
    (``Durable.advance``): then it runs that far ahead of the wall clock."""

    def __init__(self) -> None:
        self._ahead = timedelta(0)

    def now(self) -> datetime:
        now = datetime.now(timezone.utc)
        return now + self._ahead if self._ahead else now

    def advance(self, delta: timedelta) -> None:
        self._ahead += delta


class FrozenClock:
    """A clock that only moves when told to: for unit tests of time arithmetic, and for tests in
    Celery's eager mode that want every recorded time exact."""

    def __init__(self, at: datetime) -> None:
        self._at = at

    def now(self) -> datetime:
        return self._at

    def advance(self, delta: timedelta) -> None:
        self._at += delta


@runtime_checkable
class MovableClock(Clock, Protocol):
    """A clock a test can move forward (``SystemClock``, ``FrozenClock``)."""

    def advance(self, delta: timedelta) -> None: ...


def as_utc(value: datetime) -> datetime:
    """Interpret a naive datetime as UTC (SQLite returns them naive) and convert to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
