"""Workflows the tests run on real workers."""

from __future__ import annotations

import os
import time

from durable_celery import Retry, Workflow, goto, seconds
from tests.proj.effects import record

# A linear pipeline: each step records that it ran and adds to the context.
pipeline = Workflow("pipeline")


@pipeline.step
def first(ctx):
    record()
    return {**ctx, "trail": ["first"]}


@pipeline.step
def second(ctx):
    record()
    time.sleep(ctx.get("second_sleep", 0))
    return {**ctx, "trail": ctx["trail"] + ["second"]}


@pipeline.step
def third(ctx):
    record()
    return {**ctx, "trail": ctx["trail"] + ["third"]}


# Retries: fails until its attempt number reaches ctx["succeed_on"].
flaky = Workflow("flaky")


@flaky.step(retry=Retry(max_attempts=3, backoff="constant", base=0.2))
def sometimes(ctx):
    from durable_celery import context

    record()
    if context.attempt() < ctx["succeed_on"]:
        raise RuntimeError(f"attempt {context.attempt()} fails")
    return {**ctx, "succeeded_on": context.attempt()}


# A step timeout, retried once.
slow = Workflow("slow")


@slow.step(timeout=seconds(0.5), retry=Retry(max_attempts=2, backoff="constant", base=0.1))
def dawdle(ctx):
    record()
    time.sleep(5)
    return ctx


# Branches and decisions.
routing = Workflow("routing")


@routing.decision
def triage(ctx):
    return goto("finish", {**ctx, "skipped": True}) if ctx.get("skip") else ctx


with routing.branch(on=lambda ctx: ctx["kind"]) as b:
    with b.case("invoice", "bill"):
        @routing.step
        def handle_invoice(ctx):
            return {**ctx, "handled": "invoice"}

    with b.case("receipt"):
        @routing.step
        def handle_receipt(ctx):
            return {**ctx, "handled": "receipt"}


@routing.step
def finish(ctx):
    return {**ctx, "done": True}


# A workflow timeout.
overdue = Workflow("overdue", timeout=seconds(1))


@overdue.step
def linger(ctx):
    time.sleep(3)
    return ctx


@overdue.step
def after_linger(ctx):
    return ctx


# N no-op steps, for throughput tests.
noop = Workflow("noop")
for _i in range(10):
    noop.step(name=f"noop_{_i}")(lambda ctx: ctx)


# A step whose output cannot be stored.
unstorable = Workflow("unstorable")


@unstorable.step
def make_set(ctx):
    return {"bad_value": {1, 2}}


# A step that logs and prints, and reads its own context.
chatty = Workflow("chatty")


@chatty.step
def speak(ctx):
    import logging

    from durable_celery import context

    print("hello from chatty")
    logging.getLogger("proj.chatty").warning("careful now")
    return {"seen": {"workflow_id": context.workflow_id(), "step": context.current_step(),
                     "attempt": context.attempt(), "input": context.workflow_input()}}


# A definition that changes between deploys: DT_VARIANT selects it (1 when unset).
evolving = Workflow("evolving")
_variant = os.environ.get("DT_VARIANT", "1")


@evolving.step(retry=Retry(max_attempts=5 if _variant == "2" else 1))
def begin(ctx):
    return {**ctx, "begun_by": _variant}


@evolving.step(timeout=seconds(60 if _variant == "3" else 30))
def end(ctx):
    return {**ctx, "ended_by": _variant}


# Steps on their own Celery queues.
SPECIAL_QUEUE = "durable-test-special"
routed = Workflow("routed")


@routed.step
def on_default(ctx):
    import socket

    from celery import current_task

    return {**ctx, "first_queue": current_task.request.delivery_info["routing_key"], "host": socket.gethostname()}


@routed.step(queue=SPECIAL_QUEUE)
def on_special(ctx):
    from celery import current_task

    return {**ctx, "second_queue": current_task.request.delivery_info["routing_key"]}


@routed.step
def back_on_default(ctx):
    from celery import current_task

    return {**ctx, "third_queue": current_task.request.delivery_info["routing_key"]}


# ---- waits ------------------------------------------------------------------------------------
from durable_celery import wait  # noqa: E402

napper = Workflow("napper")


@napper.step
def nap(ctx):
    record()
    wait.sleep(ctx["seconds"])
    return {**ctx, "woke": True}


eventful = Workflow("eventful")


@eventful.step
def warm_up(ctx):
    time.sleep(ctx.get("warm_up", 0))
    return ctx


@eventful.step
def await_payment(ctx):
    record()
    payment = wait.wait_for_event("paid", timeout=ctx.get("timeout"), timeout_value="timeout",
                                  filter=(lambda p: p["amount"] >= ctx["min"]) if "min" in ctx else None)
    return {**ctx, "payment": payment}


racing = Workflow("racing")


@racing.step
def first_answer(ctx):
    name, payload = wait.wait_for_any(["success", "failure"], timeout=ctx.get("timeout"),
                                      timeout_value=("timeout", None))
    return {**ctx, "answer": [name, payload]}


gathering = Workflow("gathering")


@gathering.step
def sign_offs(ctx):
    got = wait.wait_for_all(["legal", "finance"], timeout=ctx.get("timeout"), timeout_value=["timeout", "partial"])
    return {**ctx, "sign_offs": got}


twice = Workflow("twice")


@twice.step
def two_waits(ctx):
    record("before")
    a = wait.wait_for_event("a")
    record("between")
    b = wait.wait_for_event("b")
    return {**ctx, "a": a, "b": b}


asking = Workflow("asking")


@asking.step
def ask(ctx):
    kind = ctx["kind"]
    if kind == "approval":
        answer = wait.wait_for_approval("manager", prompt="Approve?", metadata={"amount": 10},
                                        timeout=ctx.get("timeout"), timeout_value="auto_rejected")
    elif kind == "choice":
        answer = wait.wait_for_choice("color", ["red", {"value": "blue", "label": "Blue"}])
    elif kind == "form":
        answer = wait.wait_for_form("details", [{"name": "name", "type": "string"},
                                                {"name": "age", "type": "integer", "required": False}])
    else:
        answer = wait.wait_for_text("comment")
    return {**ctx, "answer": answer}
