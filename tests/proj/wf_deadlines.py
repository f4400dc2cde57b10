"""Start deadlines: a reminder pointless if it cannot start within a second of being due, a
workflow with no start deadline of its own, and one whose first step outlives its start
deadline (and fails once, so its retry runs past it)."""

from __future__ import annotations

import time

from durable_celery import Retry, Workflow, context, seconds
from tests.proj.effects import record

reminder = Workflow("sd_reminder", start_deadline=seconds(1))


@reminder.step
def remind(ctx):
    record()
    return {**ctx, "reminded": True}


plain = Workflow("sd_plain")


@plain.step
def greet(ctx):
    record()
    return {**ctx, "greeted": True}


slow_start = Workflow("sd_slow_start")


@slow_start.step(retry=Retry(max_attempts=2, backoff="constant", base=1))
def begin_slowly(ctx):
    record()
    time.sleep(ctx["seconds"])
    if context.attempt() == 1:
        raise RuntimeError("the first attempt fails, after its start deadline")
    return ctx


@slow_start.step
def carry_on(ctx):
    record()
    return {**ctx, "done": True}
