"""Workflows for orchestration: child workflows (called, started, nested, inside parallel and
foreach, cancelled with their parent), events emitted by name, checkpoints inside a step, and
legacy Celery tasks awaited durably."""

from __future__ import annotations

import os
import time

from celery import signature

from durable_celery import ChildWorkflowError, Retry, Workflow, context
from durable_celery.orchestration import await_task, call_workflow, emit_event, start_workflow
from durable_celery.wait import wait_for_event
from tests.proj.effects import record


def _legacy(task: str, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
    return signature(task, args=args, kwargs=kwargs, queue=f"{os.environ['DT_QUEUE']}-legacy")


# -- children ---------------------------------------------------------------------------------------

payment = Workflow("payment")


@payment.step
def charge(ctx):
    record()
    if ctx.get("hold"):
        wait_for_event("release")
    if ctx.get("fail"):
        raise RuntimeError(f"card declined for {ctx['amount']}")
    return {**ctx, "charged": ctx["amount"]}


checkout = Workflow("checkout")


@checkout.step(retry=Retry(max_attempts=2, backoff="constant", base=0.2))
def pay(ctx):
    record()
    child_input = {key: ctx[key] for key in ("amount", "hold", "fail") if key in ctx}
    try:
        result = call_workflow(payment, child_input, ref="pay", timeout=ctx.get("timeout"))
    except ChildWorkflowError as exc:
        if not ctx.get("catch"):
            raise
        return {**ctx, "child_failed": {"status": exc.status, "child_id": exc.child_id,
                                        "message": exc.error["message"] if exc.error else None}}
    if ctx.get("linger"):
        time.sleep(ctx["linger"])  # a window to kill this worker in, after the child was started
    return {**ctx, "payment": result}


# A -> B -> C
level_c = Workflow("level_c")


@level_c.step
def deepest(ctx):
    return {"path": [*ctx["path"], "c"]}


level_b = Workflow("level_b")


@level_b.step
def middle(ctx):
    inner = call_workflow(level_c, {"path": [*ctx["path"], "b"]})
    return {"path": inner["path"]}


level_a = Workflow("level_a")


@level_a.step
def outer(ctx):
    inner = call_workflow("level_b", {"path": ["a"]})
    return {"path": inner["path"]}


fan_calls = Workflow("fan_calls")

with fan_calls.parallel():
    @fan_calls.step(returns="left")
    def call_left(ctx):
        return call_workflow(payment, {"amount": 1}, ref="left")

    @fan_calls.step(returns="right")
    def call_right(ctx):
        return call_workflow(payment, {"amount": 2}, ref="right")

with fan_calls.foreach("each", items=lambda ctx: [10, 20, 30], concurrency=2):
    @fan_calls.step
    def call_each(ctx, item):
        return {**ctx, "charged": call_workflow(payment, {"amount": item})["charged"]}


@fan_calls.step
def total(ctx):
    return {"results": ctx["__results__"]}


launcher = Workflow("launcher")


@launcher.step(retry=Retry(max_attempts=2, backoff="constant", base=0.2))
def launch(ctx):
    first = start_workflow(payment, {"amount": 5}, ref="bg")
    again = start_workflow(payment, {"amount": 5}, ref="bg")  # same ref in the same visit: same child
    other = start_workflow(payment, {"amount": 6}, ref="other")
    if context.attempt() == 1:
        raise RuntimeError("the retry must not start them again")
    return {"first": first, "again": again, "other": other}


# a child that compensates what it did when cancelled
reservation = Workflow("reservation")


@reservation.step(compensate="release_room")
def reserve(ctx):
    record()
    return {**ctx, "reserved": True}


@reservation.step
def hold_room(ctx):
    wait_for_event("confirm")
    return ctx


@reservation.compensation
def release_room(ctx):
    record()
    return ctx


vacation = Workflow("vacation")


@vacation.step
def book(ctx):
    start_workflow(reservation, {"room": 1}, ref="room")
    return {**ctx, "hotel": call_workflow(payment, {"amount": 3, "hold": True}, ref="hold")}


# -- events emitted by name ---------------------------------------------------------------------------

listener = Workflow("listener")


@listener.step
def listen(ctx):
    first = wait_for_event(ctx["name"], timeout=ctx.get("timeout"), timeout_value="timeout")
    second = wait_for_event(ctx["name"], timeout=ctx.get("second_timeout", 0.001), timeout_value="no second") \
        if ctx.get("twice") else None
    return {"first": first, "second": second}


packer = Workflow("packer")


@packer.step
def pack(ctx):
    record()
    emit_event(f"packed:{ctx['order']}", {"order": ctx["order"]})
    wait_for_event("continue")  # the step re-runs from its top: the emit must not happen again
    return ctx


# -- checkpoints inside a step ------------------------------------------------------------------------

def _charge_card(amount: int) -> dict[str, object]:
    record()
    return {"charge_id": f"ch_{context.idempotency_key()}", "amount": amount}


charger = Workflow("charger")


@charger.step(retry=Retry(max_attempts=2, backoff="constant", base=0.2))
def charge_then_confirm(ctx):
    charged = context.checkpoint("charge", _charge_card, ctx["amount"])
    if ctx.get("linger"):
        time.sleep(ctx["linger"])  # a window to kill this worker in, after the checkpoint
    if ctx.get("fail_once") and context.attempt() == 1:
        raise RuntimeError("a failure after the charge: the retry must not charge again")
    if ctx.get("confirm"):
        wait_for_event("settled")
    return {**ctx, "charge": charged}


# -- legacy Celery tasks awaited durably ----------------------------------------------------------------

awaiter = Workflow("awaiter")


@awaiter.step
def multiply_remotely(ctx):
    record()
    product = await_task(_legacy("legacy.multiply", ctx["x"], ctx["y"], ctx.get("seconds", 0)),
                         timeout=ctx.get("timeout"), timeout_value="too slow")
    return {**ctx, "product": product}


exploder = Workflow("exploder")


@exploder.step
def await_explosion(ctx):
    await_task(_legacy("legacy.explode", "boom"))
    return ctx
