"""Hostile steps (a step that kills its process, hangs past its timeout, returns a huge or a
too deeply nested context) and the workflows the beat-outage and clock-skew tests time."""

from __future__ import annotations

import os
import time

from durable_celery import Retry, Workflow, context, seconds, wait
from tests.proj.effects import record

suicide = Workflow("hostile_exit")


@suicide.step(retry=Retry(max_attempts=2, backoff="constant", base=0.1))
def exit_process(ctx):
    record()
    os._exit(1)


hang = Workflow("hostile_hang")


@hang.step(timeout=seconds(1), retry=Retry(max_attempts=2, backoff="constant", base=0.1))
def hang_forever(ctx):
    record()
    print(f"hanging by {ctx['how']}")
    if ctx["how"] == "spin":  # a pure Python loop: interruptible at any bytecode
        while True:
            pass
    time.sleep(3600)  # a blocking call
    return ctx


@hang.step
def after_hang(ctx):
    record()
    return {**ctx, "after": True}


big = Workflow("hostile_big")


@big.step
def grow(ctx):
    record()
    return {**ctx, "blob": "x" * ctx["size"]}


@big.step
def after_grow(ctx):
    record()
    return {"size": len(ctx["blob"])}


deep = Workflow("hostile_deep")


@deep.step
def nest(ctx):
    record()
    value: dict = {}
    for _ in range(ctx["levels"]):
        value = {"a": value}
    return {**ctx, "deep": value}


# Timers of every kind, each due while beat is down: a sleep, a wait's timeout, and a retry
# whose backoff is longer than max_countdown (the tick's, not a countdown message).
nap = Workflow("beat_nap")


@nap.step
def nap_step(ctx):
    record()
    wait.sleep(ctx["seconds"])
    return {**ctx, "woke": True}


@nap.step
def nap_done(ctx):
    record()
    return ctx


patience = Workflow("beat_patience")


@patience.step
def wait_in_vain(ctx):
    record()
    got = wait.wait_for_event("never", timeout=ctx["seconds"], timeout_value="timed out")
    return {**ctx, "got": got}


backoff = Workflow("beat_backoff")


@backoff.step(retry=Retry(max_attempts=2, backoff="constant", base=4))
def fail_once(ctx):
    record()
    if context.attempt() == 1:
        raise RuntimeError("first attempt fails")
    return {**ctx, "attempt": context.attempt()}


# A step longer than stale_lock_timeout: only its heartbeat keeps its lease.
marathon = Workflow("skew_marathon")


@marathon.step
def run_long(ctx):
    record()
    time.sleep(ctx["seconds"])
    return ctx


@marathon.step
def run_short(ctx):
    record()
    return {**ctx, "done": True}
