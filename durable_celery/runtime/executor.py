"""Running one step attempt: the in-step context, output capture, the timeout, and turning
whatever happened into a :class:`StepResult`."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from durable_celery.context import StepInfo, running
from durable_celery.engine.decide import error_dict
from durable_celery.engine.values import StepOutcome, StepResult
from durable_celery.errors import StepTimeout
from durable_celery.runtime.capture import capture_output
from durable_celery.runtime.suspend import LeaseLost, Suspend


class _Alarm(BaseException):
    """Raised into the step by SIGALRM; a BaseException so `except Exception` cannot eat it."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Interrupt the block after ``seconds`` with SIGALRM (main thread only: Celery's prefork and
    solo pools run tasks there). In other threads the limit is checked when the step returns."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(_signum: int, _frame: Any) -> None:
        raise _Alarm()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_attempt(fn: Any, args: tuple[Any, ...], info: StepInfo, timeout: float | None) -> StepResult:
    """Call ``fn(*args)`` as attempt ``info.attempt`` of ``info.step``."""
    started = time.perf_counter()
    with capture_output() as logs:
        try:
            with running(info), time_limit(timeout):
                value = fn(*args)
        except Suspend:
            return StepResult(StepOutcome.SUSPENDED, logs=tuple(logs), duration_ms=_ms(started))
        except LeaseLost:
            return StepResult(StepOutcome.LEASE_LOST, logs=tuple(logs), duration_ms=_ms(started))
        except _Alarm:
            return _failed(StepTimeout(info.step, timeout or 0), info, logs, started)
        except Exception as exc:  # noqa: BLE001 - a failing step is data, not a crash
            return _failed(exc, info, logs, started)
    elapsed = time.perf_counter() - started
    if timeout is not None and elapsed > timeout:  # threads pool: could not interrupt, so discard
        return _failed(StepTimeout(info.step, timeout), info, logs, started)
    return StepResult(StepOutcome.SUCCEEDED, value=value, logs=tuple(logs), duration_ms=_ms(started))


def _failed(exc: BaseException, info: StepInfo, logs: list[dict[str, Any]], started: float) -> StepResult:
    return StepResult(StepOutcome.FAILED, error=error_dict(exc, info.step), logs=tuple(logs),
                      duration_ms=_ms(started))


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
