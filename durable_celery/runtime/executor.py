"""Running one step attempt: the in-step context, output capture, the timeout, and turning
whatever happened into a :class:`StepResult`.

The timeout, per pool:

* **prefork and solo** run tasks in the process's main thread: SIGALRM interrupts the step
  (a Python loop at once, a blocking call such as ``time.sleep`` or socket I/O when it is
  woken by the signal).
* **threads** (and any task that runs outside the main thread): no signal reaches the step's
  thread. The step runs in a thread of its own, and the task waits for it at most ``timeout``
  seconds. Past that the attempt is recorded as timed out at once, and the step's thread is
  abandoned: an exception is raised into it (a Python loop ends at its next bytecode, a
  blocking call when it returns), and whatever it does afterwards is fenced off by the lease.
  A call that never returns keeps that one thread until the process ends, never the task's
  pool slot. (Under gevent and eventlet the watched "thread" is a greenlet: the attempt is
  recorded as timed out if the step yields to the hub meanwhile; nothing is raised into it.)
"""

from __future__ import annotations

import contextvars
import ctypes
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from durable_celery.context import StepInfo, running
from durable_celery.engine.decide import error_dict
from durable_celery.engine.values import StepOutcome, StepResult
from durable_celery.errors import StepTimeout
from durable_celery.runtime.capture import capture_output
from durable_celery.runtime.suspend import LeaseLost, Suspend

log = logging.getLogger(__name__)


class _Alarm(BaseException):
    """Raised into the step when its timeout passes; a BaseException so `except Exception`
    cannot eat it."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Interrupt the block after ``seconds`` with SIGALRM (main thread only: Celery's prefork and
    solo pools run tasks there). Elsewhere :func:`run_attempt` runs the step in a thread of its own."""
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
    if timeout is not None and threading.current_thread() is not threading.main_thread():
        return _run_watched(fn, args, info, timeout)
    return _run(fn, args, info, timeout)


def _run(fn: Any, args: tuple[Any, ...], info: StepInfo, timeout: float | None,
         logs_out: list[list[dict[str, Any]]] | None = None) -> StepResult:
    started = time.perf_counter()
    with capture_output() as logs:
        if logs_out is not None:
            logs_out.append(logs)
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
    return StepResult(StepOutcome.SUCCEEDED, value=value, logs=tuple(logs), duration_ms=_ms(started))


def _run_watched(fn: Any, args: tuple[Any, ...], info: StepInfo, timeout: float) -> StepResult:
    """The step in a thread of its own, waited for at most ``timeout`` seconds (see the module
    docstring). The thread gets this task's context (the step's context vars, capture limits)."""
    started = time.perf_counter()
    results: list[StepResult] = []
    logs: list[list[dict[str, Any]]] = []
    body: Callable[[], None] = lambda: results.append(_run(fn, args, info, None, logs))  # noqa: E731
    thread = threading.Thread(target=contextvars.copy_context().run, args=(body,),
                              name=f"durable-step-{info.step}", daemon=True)
    thread.start()
    thread.join(timeout)
    if results:
        return results[0]
    _interrupt(thread)
    log.error("durable: step %s of execution %s ran past its timeout of %gs in a thread that cannot be "
              "interrupted; recording the attempt as timed out and abandoning the thread",
              info.step, info.execution_id, timeout)
    entries = list(logs[0]) if logs else []
    return _failed(StepTimeout(info.step, timeout), info, entries, started)


def _interrupt(thread: threading.Thread) -> None:
    """Raise ``_Alarm`` in ``thread`` at its next bytecode (CPython's async exception); only in
    an OS thread (under gevent or eventlet a "thread" is a greenlet, whose ident is none of them)."""
    if thread.is_alive() and thread.ident is not None and thread.ident in sys._current_frames():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(_Alarm))


def _failed(exc: BaseException, info: StepInfo, logs: list[dict[str, Any]], started: float) -> StepResult:
    return StepResult(StepOutcome.FAILED, error=error_dict(exc, info.step), logs=tuple(logs),
                      duration_ms=_ms(started))


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
