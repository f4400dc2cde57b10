"""Cron schedules: a workflow schedules start (``sched_tick``), and one whose schedule is
declared in code (``sched_declared``: yearly, so it never fires during a test)."""

from __future__ import annotations

from durable_celery import Cron, Workflow

ticked = Workflow("sched_tick")


@ticked.step
def tock(ctx):
    return {**ctx, "tocked": True}


declared = Workflow("sched_declared", schedule=Cron("0 0 1 1 *", timezone="Europe/Berlin", input={"from": "code"}))


@declared.step
def yearly(ctx):
    return ctx
