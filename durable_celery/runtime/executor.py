"""Running one step attempt: the in-step context, output capture, the timeout, and turning
whatever happened into an :class:`Attempt`."""

from __future__ import annotations

import signal
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from durable_celery.context import StepInfo, running
from durable_celery.errors import StepTimeout
from durable_celery.runtime.capture import capture_output
from durable_celery.runtime.suspend import LeaseLost, Suspend


@dataclass
class Attempt:
    """The outcome of one call of a step function."""

    ok: bool
    value: Any = None
    #: the step reached a wait that is not satisfied yet
    suspended: bool = False
    #: the worker lost the execution while the step ran
    lease_lost: bool = False
    error: dict[str, Any] | None = None
    retryable: bool = True
    logs: list[dict[str, Any]] = field(default_factory=list)
    duration_ms: int = 0


class _Alarm(BaseException):
    """Raised into the step by SIGALRM; a BaseException so `except Exception` cannot eat it."""


def error_dict(exc: BaseException, step: str | None) -> dict[str, Any]:
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "step": step,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-8000:],
    }


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


def run_attempt(fn: Any, args: tuple[Any, ...], info: StepInfo, timeout: float | None) -> Attempt:
    """Call ``fn(*args)`` as attempt ``info.attempt`` of ``info.step``."""
    started = time.perf_counter()
    with capture_output() as logs:
        try:
            with running(info), time_limit(timeout):
                value = fn(*args)
        except Suspend:
            return Attempt(False, suspended=True, logs=logs, duration_ms=_ms(started))
        except LeaseLost:
            return Attempt(False, lease_lost=True, logs=logs, duration_ms=_ms(started))
        except _Alarm:
            exc: BaseException = StepTimeout(info.step, timeout or 0)
            return Attempt(False, error=error_dict(exc, info.step), logs=logs, duration_ms=_ms(started))
        except Exception as exc:  # noqa: BLE001 - a failing step is data, not a crash
            return Attempt(False, error=error_dict(exc, info.step), logs=logs, duration_ms=_ms(started))
    elapsed = time.perf_counter() - started
    if timeout is not None and elapsed > timeout:  # threads pool: could not interrupt, so discard
        return Attempt(False, error=error_dict(StepTimeout(info.step, timeout), info.step), logs=logs,
                       duration_ms=_ms(started))
    return Attempt(True, value=value, logs=logs, duration_ms=_ms(started))


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
