"""Workflows for the review's tests: waits whose time has already come."""

from __future__ import annotations

from datetime import datetime

from durable_celery import Workflow, wait
from tests.proj.effects import record

# A step whose waits are all due when they are reached: schedule_at a time in the past (given
# as an ISO string in ctx["at"]), then sleep(0). Neither suspends, so the body runs once: the
# record() before them would run again if the step had to resume.
past_due = Workflow("past_due")


@past_due.step
def already_due(ctx):
    record()
    wait.schedule_at(datetime.fromisoformat(ctx["at"]))
    wait.sleep(0)
    return {**ctx, "went_on": True}
