"""Retry delays: exact formulas, caps and jitter bounds, as tables."""

from __future__ import annotations

import random

import pytest

from durable_celery import Retry, minutes
from durable_celery.engine.backoff import retry_delay, should_retry


@pytest.mark.parametrize("retry, failed_attempt, expected", [
    (Retry(max_attempts=5, backoff="exponential", base=2), 1, 2),
    (Retry(max_attempts=5, backoff="exponential", base=2), 2, 4),
    (Retry(max_attempts=5, backoff="exponential", base=2), 3, 8),
    (Retry(max_attempts=5, backoff="exponential", base=3), 2, 9),
    (Retry(max_attempts=5, backoff="linear", base=2), 1, 2),
    (Retry(max_attempts=5, backoff="linear", base=2), 3, 6),
    (Retry(max_attempts=5, backoff="constant", base=5), 4, 5),
    (Retry(max_attempts=50, backoff="exponential", base=2, max_backoff=minutes(1)), 10, 60),
    (Retry(max_attempts=5000, backoff="exponential", base=2), 4000, 3600),
])
def test_delay_before_the_next_attempt(retry: Retry, failed_attempt: int, expected: float) -> None:
    assert retry_delay(retry, failed_attempt) == expected


def test_jitter_spreads_by_a_quarter_and_respects_the_cap() -> None:
    rng = random.Random(7)
    retry = Retry(max_attempts=5, base=2, jitter=True)
    delays = [retry_delay(retry, 1, rng) for _ in range(500)]
    assert min(delays) >= 1.5 and max(delays) <= 2.5 and max(delays) - min(delays) > 0.5
    capped = Retry(max_attempts=5, base=2, jitter=True, max_backoff=3)
    assert all(retry_delay(capped, 5, rng) <= 3 for _ in range(100))


def test_attempts_are_retried_until_max_attempts() -> None:
    retry = Retry(max_attempts=3)
    assert [should_retry(retry, n) for n in (1, 2, 3)] == [True, True, False]
    assert should_retry(Retry(), 1) is False


def test_statuses_compare_equal_to_plain_strings_and_moves_come_from_one_table() -> None:
    from durable_celery.engine.statuses import TERMINAL, ExecutionStatus, can_move, sources_of

    assert ExecutionStatus.COMPLETED == "completed" and str(ExecutionStatus.WAITING) == "waiting"
    assert sources_of(ExecutionStatus.CANCELLED) == {"pending", "running", "waiting", "compensating"}
    assert not any(can_move(final, ExecutionStatus.RUNNING) for final in TERMINAL)
    assert can_move("running", "completed") and not can_move("pending", "waiting")
