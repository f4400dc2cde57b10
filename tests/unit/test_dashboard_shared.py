"""The dashboard's shared reads (durable_celery/dashboard/shared.py): a value is kept as long as
reading it cost, and pages served a kept value are told to refresh once it expires."""

from __future__ import annotations

import threading
import time

from durable_celery.dashboard.shared import SHARE, SharedReads


def slow(value: int, seconds: float):
    def read() -> int:
        time.sleep(seconds)
        return value
    return read


def test_a_value_is_kept_for_twenty_times_its_read_time_then_read_again() -> None:
    nudges = threading.Event()
    shared = SharedReads(nudges.set)
    assert shared.read("count", slow(1, 0.01)) == 1
    assert shared.read("count", slow(2, 0.0)) == 1  # kept: about 0.2 s
    time.sleep(0.01 * SHARE + 0.05)
    assert shared.read("count", slow(3, 0.0)) == 3


def test_a_cheap_read_is_not_kept_so_pages_stay_exact() -> None:
    shared = SharedReads(lambda: None)
    values = iter(range(100))
    seen = [shared.read("count", lambda: next(values)) for _ in range(3)]
    time.sleep(0.01)
    seen.append(shared.read("count", lambda: next(values)))
    assert seen[-1] > seen[0]


def test_serving_a_kept_value_nudges_the_pages_once_after_it_expires() -> None:
    nudged: list[float] = []
    shared = SharedReads(lambda: nudged.append(time.monotonic()))
    shared.read("count", slow(1, 0.01))
    served = time.monotonic()
    for _ in range(5):  # five pages served the kept value: one nudge
        assert shared.read("count", slow(2, 0.0)) == 1
    time.sleep(0.01 * SHARE + 0.3)
    assert len(nudged) == 1
    assert nudged[0] - served >= 0.01 * SHARE - 0.02


def test_a_value_read_with_a_floor_is_kept_that_long_without_nudging() -> None:
    nudged: list[float] = []
    shared = SharedReads(lambda: nudged.append(time.monotonic()))
    shared.read("names", lambda: ["a"], floor=0.3, nudge=False)
    assert shared.read("names", lambda: ["b"], floor=0.3, nudge=False) == ["a"]
    time.sleep(0.35)
    assert shared.read("names", lambda: ["c"], floor=0.3, nudge=False) == ["c"]
    assert nudged == []
