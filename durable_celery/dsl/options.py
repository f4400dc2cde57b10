"""Value objects for step and workflow options, validated when they are built."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from durable_celery.durations import Duration, hours, to_seconds
from durable_celery.errors import InvalidInput
from durable_celery.scheduling.cron import parse

Backoff = Literal["exponential", "linear", "constant"]
_BACKOFFS = ("exponential", "linear", "constant")


@dataclass(frozen=True)
class Retry:
    """How a failing step (or compensation) is retried.

    The delay before attempt n+1 is ``base**n`` seconds (exponential: 2, 4, 8 s with base 2),
    ``n*base`` seconds (linear) or ``base`` seconds (constant), capped by ``max_backoff``;
    ``jitter=True`` spreads it by ±25%. A retry never sleeps inside a worker.
    """

    max_attempts: int = 1
    backoff: Backoff = "exponential"
    base: float = 2
    max_backoff: Duration = field(default_factory=lambda: hours(1))
    jitter: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise InvalidInput(f"Retry.max_attempts must be an int >= 1, got {self.max_attempts!r}")
        if self.backoff not in _BACKOFFS:
            raise InvalidInput(f"Retry.backoff must be one of {', '.join(_BACKOFFS)}, got {self.backoff!r}")
        if isinstance(self.base, bool) or not isinstance(self.base, (int, float)) or self.base < 0:
            raise InvalidInput(f"Retry.base must be a non-negative number, got {self.base!r}")
        to_seconds(self.max_backoff, "Retry.max_backoff")

    @property
    def max_backoff_seconds(self) -> float:
        return to_seconds(self.max_backoff, "Retry.max_backoff")

    def describe(self) -> dict[str, Any]:
        """A JSON-able summary, part of a step's shape."""
        return {
            "max_attempts": self.max_attempts,
            "backoff": self.backoff,
            "base": self.base,
            "max_backoff": self.max_backoff_seconds,
            "jitter": self.jitter,
        }


NO_RETRY = Retry()


@dataclass(frozen=True)
class Cron:
    """A cron schedule on a workflow definition (fired by celery beat): stored as the schedule
    ``name`` (default: the workflow's name) when a worker or beat boots. See docs/schedules.md.

    Raises:
        InvalidInput: a bad expression or timezone, an input that is not a dict, a bad name or queue.
    """

    expression: str
    timezone: str = "UTC"
    input: dict[str, Any] | None = None
    name: str | None = None
    queue: str | None = None

    def __post_init__(self) -> None:
        spec = parse(self.expression, self.timezone)
        object.__setattr__(self, "expression", spec.expression)
        if self.input is not None and not isinstance(self.input, dict):
            raise InvalidInput(f"a Cron's input must be a dict, got {type(self.input).__name__}")
        for what, value in (("name", self.name), ("queue", self.queue)):
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidInput(f"a Cron's {what} must be a non-empty string, got {value!r}")


def timeout_seconds(value: Duration | None, what: str) -> float | None:
    """Validate a timeout: ``None`` or a positive duration."""
    if value is None:
        return None
    total = to_seconds(value, what)
    if total <= 0:
        raise InvalidInput(f"{what} must be positive, got {value!r}")
    return total


def as_timedelta(value: Duration) -> timedelta:
    return value if isinstance(value, timedelta) else timedelta(seconds=value)
