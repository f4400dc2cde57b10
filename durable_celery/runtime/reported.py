"""What the step task tells Celery about the step attempts it ran, so that Celery's logs, its
task events and Flower show the truth: a task whose step attempt failed is a retried task (a
retry is scheduled) or a failed one (the step failed for good), not a successful one.

The attempt is recorded first (the checkpoint commits, the retry is scheduled by the engine);
only then does the task raise, so nothing of Celery's own retry machinery runs: Celery's
``Retry`` raised without ``Task.retry`` publishes nothing, it only marks the task retried.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn, TypeVar

from celery.exceptions import Retry

from durable_celery.errors import StepAttemptFailed

T = TypeVar("T")


@dataclass(frozen=True)
class FailedAttempt:
    """A step attempt that failed in this task, as its checkpoint recorded it."""

    workflow: str
    step: str
    attempt: int
    error: Mapping[str, Any] | None
    #: when the next attempt runs; None: the step failed for good
    retry_at: datetime | None


# One list per run of the step task: a context variable, so each thread (threads pool) or
# greenlet keeps its own, as Celery's own ``current_task`` does.
_failed: ContextVar[list[FailedAttempt] | None] = ContextVar("durable_failed_attempts", default=None)


@contextlib.contextmanager
def collecting() -> Iterator[list[FailedAttempt]]:
    """Collect the failed attempts that :func:`note` records inside the block."""
    collected: list[FailedAttempt] = []
    reset = _failed.set(collected)
    try:
        yield collected
    finally:
        _failed.reset(reset)


def note(workflow: str, attempt: Mapping[str, Any], retry_at: datetime | None) -> None:
    """Record a committed failed attempt (its ``step_executions`` row) for the task to report;
    outside :func:`collecting` (the tick, a client call) there is no task to tell."""
    collected = _failed.get()
    if collected is not None:
        collected.append(FailedAttempt(workflow, attempt["step_name"], attempt["attempt"], attempt.get("error"),
                                       retry_at))


def raise_for(failed: FailedAttempt) -> NoReturn:
    """Raise what tells Celery the task's step attempt failed: ``Retry`` (shown as retried)
    when the engine scheduled another attempt, else :class:`StepAttemptFailed`."""
    exc = StepAttemptFailed(failed.workflow, failed.step, failed.attempt,
                            dict(failed.error) if failed.error is not None else None)
    if failed.retry_at is not None:
        raise Retry(str(exc), exc, failed.retry_at)
    raise exc


def telling_celery(run: Callable[[], T], *, eager: bool) -> T:
    """Run the step task's work; if a step attempt failed in it, raise for the last one (see
    :func:`raise_for`) once everything is recorded. Not in eager mode, where the exception would
    reach the caller of ``start`` (the execution's record tells instead)."""
    with collecting() as failed:
        result = run()
    if failed and not eager:
        raise_for(failed[-1])
    return result
