"""Workflows for the dashboard's inbox, schedules and queues pages: one that asks a person for
whatever input its context declares, and a one-step run to schedule."""

from __future__ import annotations

from durable_celery import Workflow, wait
from tests.proj.effects import record

asks = Workflow("dash_inbox_asks")


@asks.step
def ask(ctx):
    """Wait for the input ``ctx["input"]`` declares (``wait_for_input``'s keywords), then go on."""
    declared = ctx["input"]
    answer = wait.wait_for_input(declared["name"], type=declared["type"], prompt=declared.get("prompt"),
                                 metadata=declared.get("metadata"), fields=declared.get("fields"),
                                 choices=declared.get("choices"), timeout=declared.get("timeout"),
                                 timeout_value="timed out")
    return {**ctx, "answer": answer}


@asks.step
def after_answer(ctx):
    record()
    return {**ctx, "went_on": True}


tick = Workflow("dash_inbox_tick")


@tick.step
def once(ctx):
    record()
    return {**ctx, "ran": True}
