"""Workflows the execution detail page of the dashboard is tested on (tests/test_dashboard_detail.py)."""

from __future__ import annotations

import logging

from durable_celery import Retry, Workflow, context
from durable_celery.orchestration import call_workflow
from durable_celery.wait import wait_for_event

log = logging.getLogger("tests.proj.wf_dashboard")

# Three steps, each logging once; the input's "note" is carried into the context.
dash_linear = Workflow("dash_linear")


@dash_linear.step
def dash_fetch(ctx):
    log.info("fetching %s", ctx.get("note", ""))
    return {**ctx, "fetched": True}


@dash_linear.step
def dash_transform(ctx):
    print("transforming")
    return {**ctx, "transformed": True}


@dash_linear.step
def dash_store(ctx):
    log.warning("stored")
    return {**ctx, "stored": True}


# A step whose first attempt fails and whose second succeeds.
dash_flaky = Workflow("dash_flaky")


@dash_flaky.step(retry=Retry(max_attempts=2, backoff="constant", base=0.2))
def dash_wobble(ctx):
    if context.attempt() == 1:
        raise RuntimeError("the first attempt fails")
    return {**ctx, "attempts": context.attempt()}


# A step that always fails, without retries.
dash_broken = Workflow("dash_broken")


@dash_broken.step
def dash_explode(ctx):
    raise ValueError(f"cannot handle {ctx.get('what', 'this')}")


# A saga that waits for an event "go" after a compensable step.
dash_waiter = Workflow("dash_waiter")


@dash_waiter.step(compensate="dash_release")
def dash_reserve(ctx):
    return {**ctx, "reserved": True}


@dash_waiter.step
def dash_await_go(ctx):
    payload = wait_for_event("go")
    return {**ctx, "go": payload}


@dash_waiter.compensation
def dash_release(ctx):
    return {**ctx, "released": True}


# A parent that calls dash_linear as a child workflow.
dash_parent = Workflow("dash_parent")


@dash_parent.step
def dash_delegate(ctx):
    child = call_workflow("dash_linear", {"note": "from the parent"})
    return {**ctx, "child": child}
