"""Celery's eager mode (``task_always_eager``), the test's side of it: what beat would do, done
in this process when the test says so.

With eager mode on, the dispatcher runs each step message in this process (see
``dispatch.EagerQueue``), so ``start`` returns once the execution has ended or reached its first
wait, and ``send_event`` once the execution it woke has. What is scheduled for later (sleeps,
wait timeouts, scheduled starts, workflow timeouts) waits in the database for the tick, which
no beat runs here: :func:`run_due` runs it, and :func:`advance` moves the engine's clock first.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from durable_celery.clock import MovableClock
from durable_celery.durations import Duration, to_seconds
from durable_celery.errors import DurableError
from durable_celery.runtime.services import Services
from durable_celery.runtime.tick import tick


def run_due(sv: Services) -> None:
    """Run the tick in this process until a pass finds nothing to do. In eager mode what a pass
    wakes or dispatches runs after the pass, before the next one (it may make more due)."""
    while True:
        with sv.dispatcher.held():
            report = tick(sv)
        if not any(dataclasses.astuple(report)):
            return


def advance(sv: Services, by: Duration) -> None:
    """Move the engine's clock forward by ``by``, then :func:`run_due`.

    Raises:
        DurableError: not in eager mode (workers in other processes keep their own clock), or
            the engine was built with a clock that cannot move.
        InvalidInput: ``by`` is not a duration, or is negative.
    """
    delta = timedelta(seconds=to_seconds(by, "by"))
    if not sv.dispatcher.eager:
        raise DurableError("advance moves the clock of this process only, and workers run in others: "
                           "it needs Celery's eager mode (task_always_eager=True)")
    clock = sv.clock
    if not isinstance(clock, MovableClock):
        raise DurableError(f"the engine's clock {clock!r} cannot be moved (it has no advance method)")
    clock.advance(delta)
    run_due(sv)
