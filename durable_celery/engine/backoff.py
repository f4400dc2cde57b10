"""Retry delays as pure functions of the attempt that just failed."""

from __future__ import annotations

import random

from durable_celery.dsl.options import Retry


def retry_delay(retry: Retry, failed_attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before attempt ``failed_attempt + 1``.

    exponential: ``base**n``; linear: ``n*base``; constant: ``base``; capped by ``max_backoff``;
    with jitter the result is spread uniformly by ±25% (and still capped).
    """
    n = failed_attempt
    if retry.backoff == "exponential":
        try:
            delay = float(retry.base) ** n
        except OverflowError:
            delay = float("inf")
    elif retry.backoff == "linear":
        delay = n * float(retry.base)
    else:
        delay = float(retry.base)
    delay = min(delay, retry.max_backoff_seconds)
    if retry.jitter:
        delay *= (rng or random).uniform(0.75, 1.25)
        delay = min(delay, retry.max_backoff_seconds)
    return delay


def should_retry(retry: Retry, failed_attempt: int) -> bool:
    return failed_attempt < retry.max_attempts
