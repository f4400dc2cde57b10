"""Cron maths as tables: fields, names, ranges, seconds, timezones, both DST changes in two
zones, and what the tick starts for a due schedule under each catch-up policy."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from durable_celery import InvalidInput
from durable_celery.scheduling.cron import next_fire, parse
from durable_celery.scheduling.plan import plan


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


def fires(expression: str, tz: str, after: datetime, count: int) -> list[datetime]:
    spec = parse(expression, tz)
    found = []
    for _ in range(count):
        after = next_fire(spec, after)
        found.append(after)
    return found


@pytest.mark.parametrize("expression, tz, after, expected", [
    # fields, names, ranges, steps, seconds
    ("*/15 * * * *", "UTC", utc(2024, 5, 1, 10, 7), [utc(2024, 5, 1, 10, 15), utc(2024, 5, 1, 10, 30)]),
    ("0 9 * * MON-FRI", "UTC", utc(2024, 5, 3, 10), [utc(2024, 5, 6, 9), utc(2024, 5, 7, 9)]),  # Fri -> Mon
    ("0 9 1 jan,jul *", "UTC", utc(2024, 5, 3), [utc(2024, 7, 1, 9), utc(2025, 1, 1, 9)]),
    ("* * * * * */20", "UTC", utc(2024, 5, 1, 12, 0, 5),
     [utc(2024, 5, 1, 12, 0, 20), utc(2024, 5, 1, 12, 0, 40), utc(2024, 5, 1, 12, 1)]),
    ("* * * * * *", "UTC", utc(2024, 5, 1, 12, 0, 59), [utc(2024, 5, 1, 12, 1), utc(2024, 5, 1, 12, 1, 1)]),
    ("@daily", "UTC", utc(2024, 5, 1, 12), [utc(2024, 5, 2)]),
    # a timezone: 09:00 in New York is 13:00 UTC in summer, 14:00 in winter
    ("0 9 * * *", "America/New_York", utc(2024, 7, 1), [utc(2024, 7, 1, 13), utc(2024, 7, 2, 13)]),
    ("0 9 * * MON-FRI", "America/New_York", utc(2024, 11, 1, 14),
     [utc(2024, 11, 4, 14), utc(2024, 11, 5, 14)]),  # Friday in EDT, then Monday in EST
    # New York, spring forward (2024-03-10 02:00 EST -> 03:00 EDT, at 07:00 UTC)
    ("0 9 * * *", "America/New_York", utc(2024, 3, 9, 12), [utc(2024, 3, 9, 14), utc(2024, 3, 10, 13)]),
    ("30 2 * * *", "America/New_York", utc(2024, 3, 9, 12),  # 02:30 does not exist: at 03:00 EDT
     [utc(2024, 3, 10, 7), utc(2024, 3, 11, 6, 30)]),
    ("0 * * * *", "America/New_York", utc(2024, 3, 10, 5, 30),  # 01:00 EST, 03:00 EDT, 04:00 EDT
     [utc(2024, 3, 10, 6), utc(2024, 3, 10, 7), utc(2024, 3, 10, 8)]),
    ("*/30 * * * *", "America/New_York", utc(2024, 3, 10, 6, 15),  # 01:30 EST, then 03:00 EDT once
     [utc(2024, 3, 10, 6, 30), utc(2024, 3, 10, 7), utc(2024, 3, 10, 7, 30)]),
    # New York, fall back (2024-11-03 02:00 EDT -> 01:00 EST, at 06:00 UTC)
    ("30 1 * * *", "America/New_York", utc(2024, 11, 2, 12),  # 01:30 happens twice: the first only
     [utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)]),
    ("*/30 * * * *", "America/New_York", utc(2024, 11, 3, 5),  # every half hour in real time
     [utc(2024, 11, 3, 5, 30), utc(2024, 11, 3, 6), utc(2024, 11, 3, 6, 30), utc(2024, 11, 3, 7)]),
    ("0 * * * *", "America/New_York", utc(2024, 11, 3, 5, 50),  # from 01:50 EDT: 01:00 EST is next
     [utc(2024, 11, 3, 6), utc(2024, 11, 3, 7)]),
    ("0 9 * * *", "America/New_York", utc(2024, 11, 2, 14), [utc(2024, 11, 3, 14), utc(2024, 11, 4, 14)]),
    # Berlin, spring forward (2024-03-31 02:00 CET -> 03:00 CEST, at 01:00 UTC)
    ("30 2 * * *", "Europe/Berlin", utc(2024, 3, 30, 12), [utc(2024, 3, 31, 1), utc(2024, 4, 1, 0, 30)]),
    ("0 * * * *", "Europe/Berlin", utc(2024, 3, 30, 23, 30),  # 01:00 CET, then 03:00 CEST
     [utc(2024, 3, 31, 0), utc(2024, 3, 31, 1), utc(2024, 3, 31, 2)]),
    ("0 12 * * *", "Europe/Berlin", utc(2024, 3, 30, 12), [utc(2024, 3, 31, 10), utc(2024, 4, 1, 10)]),
    # Berlin, fall back (2024-10-27 03:00 CEST -> 02:00 CET, at 01:00 UTC)
    ("30 2 * * *", "Europe/Berlin", utc(2024, 10, 26, 12), [utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)]),
    ("0 * * * *", "Europe/Berlin", utc(2024, 10, 26, 23, 30),  # 02:00 CEST, 02:00 CET, 03:00 CET
     [utc(2024, 10, 27, 0), utc(2024, 10, 27, 1), utc(2024, 10, 27, 2)]),
    ("0 12 * * *", "Europe/Berlin", utc(2024, 10, 26, 12), [utc(2024, 10, 27, 11), utc(2024, 10, 28, 11)]),
])
def test_next_fire(expression: str, tz: str, after: datetime, expected: list[datetime]) -> None:
    assert fires(expression, tz, after, len(expected)) == expected


def test_the_repeated_hour_fires_every_second_of_it_for_a_seconds_schedule() -> None:
    # 01:59:59 EDT, then 01:00:00 EST (the clock went back): one second apart in real time
    assert fires("* * * * * *", "America/New_York", utc(2024, 11, 3, 5, 59, 58), 2) == [
        utc(2024, 11, 3, 5, 59, 59), utc(2024, 11, 3, 6)]


@pytest.mark.parametrize("expression, tz, message", [
    ("0 9 * *", "UTC", "has 4 fields"),
    ("0 9 * * * * *", "UTC", "has 7 fields"),
    ("61 * * * *", "UTC", "not a valid cron expression"),
    ("0 9 * * FUNDAY", "UTC", "not a valid cron expression"),
    ("", "UTC", "non-empty string"),
    (None, "UTC", "non-empty string"),
    ("0 9 * * *", "Mars/Olympus", "unknown timezone"),
    ("0 9 * * *", "", "IANA timezone name"),
    ("0 9 * * *", "../etc/passwd", "unknown timezone"),
])
def test_invalid_expressions_and_timezones(expression: object, tz: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse(expression, tz)


HOURLY = parse("0 * * * *")
EVERY_SECOND = parse("* * * * * *")


@pytest.mark.parametrize("spec, due, now, policy, grace, slots, next_run_at", [
    # on time, or late by less than the grace: every slot runs (a one-second tick loses none)
    (EVERY_SECOND, utc(2024, 5, 1, 10), utc(2024, 5, 1, 10, 0, 1, 600000), "one", 60,
     [utc(2024, 5, 1, 10), utc(2024, 5, 1, 10, 0, 1)], utc(2024, 5, 1, 10, 0, 2)),
    (HOURLY, utc(2024, 5, 1, 9), utc(2024, 5, 1, 9, 0, 0, 300000), "none", 60, [utc(2024, 5, 1, 9)],
     utc(2024, 5, 1, 10)),
    # beat was down from before 09:00 to 12:30: three missed slots
    (HOURLY, utc(2024, 5, 1, 9), utc(2024, 5, 1, 12, 30), "one", 60, [utc(2024, 5, 1, 9)], utc(2024, 5, 1, 13)),
    (HOURLY, utc(2024, 5, 1, 9), utc(2024, 5, 1, 12, 30), "all", 60,
     [utc(2024, 5, 1, 9), utc(2024, 5, 1, 10), utc(2024, 5, 1, 11), utc(2024, 5, 1, 12)], utc(2024, 5, 1, 13)),
    (HOURLY, utc(2024, 5, 1, 9), utc(2024, 5, 1, 12, 30), "none", 60, [], utc(2024, 5, 1, 13)),
    # back at 12:00:30: the 12:00 slot is on time, the earlier ones missed
    (HOURLY, utc(2024, 5, 1, 9), utc(2024, 5, 1, 12, 0, 30), "one", 60, [utc(2024, 5, 1, 9), utc(2024, 5, 1, 12)],
     utc(2024, 5, 1, 13)),
    (HOURLY, utc(2024, 5, 1, 9), utc(2024, 5, 1, 12, 0, 30), "none", 60, [utc(2024, 5, 1, 12)], utc(2024, 5, 1, 13)),
    # "all" takes at most `limit` slots a tick; the rest stay due
    (HOURLY, utc(2024, 5, 1, 9), utc(2024, 5, 1, 12, 30), "all", 60,
     [utc(2024, 5, 1, 9), utc(2024, 5, 1, 10)], utc(2024, 5, 1, 11)),
])
def test_plan(spec: object, due: datetime, now: datetime, policy: str, grace: float, slots: list[datetime],
              next_run_at: datetime) -> None:
    limit = 2 if policy == "all" and len(slots) == 2 else 100
    made = plan(spec, due, now, catch_up=policy, grace=grace, limit=limit)  # type: ignore[arg-type]
    assert (made.slots, made.next_run_at) == (slots, next_run_at)
