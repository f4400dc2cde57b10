"""Controlled queues: a short step that records when its body starts and ends, so tests can
count how many ran at once (and when each started) from Postgres."""

from __future__ import annotations

import time

from durable_celery import Workflow
from tests.proj.effects import record

burst = Workflow("queue_burst")


@burst.step
def short_step(ctx):
    record("start")
    time.sleep(ctx.get("seconds", 0.2))
    record("end")
    return ctx
