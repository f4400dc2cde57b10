"""A workflow for database outages: five steps, each appending one line to a file (not to the
database, which the test takes away) for every run of its body, then sleeping ``ctx["sleep"]``."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

from durable_celery import Workflow, context

outage = Workflow("outage")


def _run(ctx):
    # One write in append mode: lines from concurrent processes never interleave
    line = (f"{context.workflow_id()} {context.current_step()} {os.getpid()} "
            f"{datetime.now(timezone.utc).isoformat()}\n")
    with open(ctx["effects"], "a") as log:
        log.write(line)
    time.sleep(ctx.get("sleep", 0))
    return ctx


@outage.step
def o1(ctx):
    return _run(ctx)


@outage.step
def o2(ctx):
    return _run(ctx)


@outage.step
def o3(ctx):
    return _run(ctx)


@outage.step
def o4(ctx):
    return _run(ctx)


@outage.step
def o5(ctx):
    return _run(ctx)
