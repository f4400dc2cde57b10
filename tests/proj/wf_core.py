"""Workflows for the decision core's correctness gaps: queues at entry points, workers lost
for good, stops while a step is in flight, idempotency keys."""

from __future__ import annotations

import os
import time

from durable_celery import Retry, Workflow, context
from durable_celery.wait import sleep
from tests.proj.effects import record
from tests.proj.workflows import SPECIAL_QUEUE


def _queue() -> str:
    from celery import current_task

    return str(current_task.request.delivery_info["routing_key"])


# A branch at the entry point of the workflow, of a parallel branch and of a foreach body, each
# leading to a step with its own queue; the step fails its first attempt and sleeps in between.
entry_routing = Workflow("entry_routing")

with entry_routing.branch(on=lambda ctx: ctx.get("kind", "special")) as top:
    with top.case("special"):
        @entry_routing.step(queue=SPECIAL_QUEUE, retry=Retry(max_attempts=2, backoff="constant", base=1.5))
        def flaky_special(ctx):
            record(f"flaky_special@{_queue()}")
            if context.attempt() == 1:
                raise RuntimeError("first attempt fails")
            sleep(0.2)
            return ctx

with entry_routing.foreach("each", items=lambda ctx: [1, 2], concurrency=2):
    with entry_routing.loop("again", condition=lambda ctx: not ctx.get("looped")):
        @entry_routing.step(queue=SPECIAL_QUEUE)
        def looped_special(ctx, item):
            record(f"looped_special@{_queue()}")
            return {**ctx, "looped": True}


# A step that kills its worker process every time it runs (out of memory, a segfault).
crasher = Workflow("crasher")


@crasher.step
def crash(ctx):
    record()
    os._exit(1)


def _slow_saga(name: str, timeout: float) -> Workflow:
    """A saga whose middle step is slow (``charge_seconds``, 3 by default), with compensations."""
    wf = Workflow(name, timeout=timeout)

    @wf.step(compensate="unbook")
    def book(ctx):
        record("book")
        return {**ctx, "booked": True}

    @wf.step(compensate="refund")
    def charge_slowly(ctx):
        record("charge-start")
        time.sleep(ctx.get("charge_seconds", 3))
        record("charge-done")
        return {**ctx, "charged": True}

    @wf.step
    def ship(ctx):
        record("ship")
        return ctx

    @wf.compensation
    def unbook(ctx):
        record("unbook")
        return ctx

    @wf.compensation
    def refund(ctx):
        record(f"refund:{'charged' if ctx.get('charged') else 'unknown'}")
        return ctx

    return wf


# To be stopped (cancelled) while its slow step runs.
slow_saga = _slow_saga("slow_saga", timeout=60)
# Its workflow timeout falls while the slow step runs.
deadline_saga = _slow_saga("deadline_saga", timeout=1.5)


# Parallel branches: one slow with a compensation, one failing fast.
fast_failure = Workflow("fast_failure")

with fast_failure.parallel(on_error="fail_fast"):
    @fast_failure.step(compensate="undo_slow")
    def slow_side(ctx):
        record("slow-start")
        time.sleep(2)
        record("slow-done")
        return {**ctx, "slow": True}

    @fast_failure.step
    def failing_side(ctx):
        time.sleep(0.5)
        raise RuntimeError("this branch fails")


@fast_failure.compensation
def undo_slow(ctx):
    record("undo-slow")
    return ctx


# Idempotency keys: a retried step, a loop revisiting a step, foreach iterations.
keyed = Workflow("keyed")


@keyed.step(retry=Retry(max_attempts=2, backoff="constant", base=0.1))
def keyed_retry(ctx):
    record(f"retry:{context.idempotency_key()}")
    if context.attempt() == 1:
        raise RuntimeError("once more")
    return {**ctx, "n": 0}


with keyed.loop("three_times", condition=lambda ctx: ctx["n"] < 3):
    @keyed.step
    def keyed_loop(ctx):
        record(f"loop:{context.idempotency_key()}")
        return {**ctx, "n": ctx["n"] + 1}

with keyed.foreach("items", items=lambda ctx: ["a", "b"], concurrency=2):
    @keyed.step
    def keyed_item(ctx, item):
        record(f"item:{context.idempotency_key()}")
        sleep(0.1)  # resumed: same visit, same key
        record(f"item:{context.idempotency_key()}")
        return ctx
