"""Calendar helpers for schedule_at: pure functions, tested with tables."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from durable_celery.wait import end_of_day, next_business_day, next_weekday

UTC = ZoneInfo("UTC")
NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize("at, expected", [
    (datetime(2026, 11, 20, 15, 0, tzinfo=UTC), datetime(2026, 11, 23, 9, 0, tzinfo=UTC)),   # Friday -> Monday
    (datetime(2026, 11, 21, 8, 0, tzinfo=UTC), datetime(2026, 11, 23, 9, 0, tzinfo=UTC)),    # Saturday -> Monday
    (datetime(2026, 11, 23, 8, 0, tzinfo=UTC), datetime(2026, 11, 24, 9, 0, tzinfo=UTC)),    # Monday -> Tuesday
])
def test_next_business_day_skips_weekends(at: datetime, expected: datetime) -> None:
    assert next_business_day(at) == expected


def test_next_business_day_in_a_timezone_uses_local_dates_and_hours() -> None:
    # 02:00 UTC on Saturday is still Friday evening in New York
    at = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    assert next_business_day(at, tz="America/New_York", hour=10) == datetime(2026, 11, 23, 10, 0, tzinfo=NY)


@pytest.mark.parametrize("weekday, at, expected", [
    ("monday", datetime(2026, 11, 22, 12, tzinfo=UTC), datetime(2026, 11, 23, 9, tzinfo=UTC)),  # Sun -> Mon
    ("sunday", datetime(2026, 11, 22, 12, tzinfo=UTC), datetime(2026, 11, 29, 9, tzinfo=UTC)),  # strictly after
    (4, datetime(2026, 11, 23, 12, tzinfo=UTC), datetime(2026, 11, 27, 9, tzinfo=UTC)),        # Mon -> Fri
])
def test_next_weekday_is_strictly_after_the_given_date(weekday: str | int, at: datetime, expected: datetime) -> None:
    assert next_weekday(weekday, at) == expected


def test_end_of_day_is_the_last_second_of_the_local_date() -> None:
    assert end_of_day(datetime(2026, 11, 22, 1, tzinfo=UTC), tz="America/New_York") == \
        datetime(2026, 11, 21, 23, 59, 59, tzinfo=NY)


def test_naive_datetimes_and_bad_weekdays_are_refused() -> None:
    with pytest.raises(ValueError):
        next_business_day(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="weekday"):
        next_weekday("someday", datetime(2026, 1, 1, tzinfo=UTC))
