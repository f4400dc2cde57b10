"""The tick under a saturated cluster: a step that holds a worker slot for a while, a sleeper
whose timer must fire meanwhile, a workflow whose deadline passes while it waits for a slot, and
a step that hangs only on the worker told to hang (so its re-run elsewhere finishes)."""

from __future__ import annotations

import os
import time

from durable_celery import Workflow, seconds, wait
from tests.proj.effects import record

hog = Workflow("tick_hog")


@hog.step
def hog_the_slot(ctx):
    record()
    time.sleep(ctx["seconds"])
    return ctx


sleeper = Workflow("tick_sleeper")


@sleeper.step
def doze(ctx):
    record()
    wait.sleep(ctx["seconds"])
    return {**ctx, "woke": True}


deadline = Workflow("tick_deadline", timeout=seconds(2))


@deadline.step
def too_late(ctx):
    record()
    return ctx


stuck = Workflow("tick_stuck")


@stuck.step
def hang_here(ctx):
    record()
    time.sleep(float(os.environ.get("DT_HANG_SECONDS", "0")))
    return {**ctx, "done": True}
