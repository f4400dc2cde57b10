"""A user's workflow module written for ``mypy --strict``: every decorator keeps the type of the
function it registers, and the client API returns what it says. ``tests/test_typing.py`` checks
this file (and ``examples/``) with ``mypy --strict``; it is never imported by the tests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery, Task
from typing_extensions import assert_type

from durable_celery import Durable, Execution, Goto, Retry, Workflow, context, goto, minutes
from durable_celery.orchestration import call_workflow, emit_event
from durable_celery.wait import sleep, wait_for_approval, wait_for_event

Ctx = dict[str, Any]
app = Celery("typed")
order = Workflow("typed_order", timeout=timedelta(hours=1))


@app.task
def reserve(sku: str, quantity: int = 1) -> bool:
    return bool(sku) and quantity > 0


@order.step
def validate(ctx: Ctx) -> Ctx:
    return {**ctx, "valid": True}


@order.step(retry=Retry(max_attempts=3), timeout=minutes(1), compensate="refund")
def charge(ctx: Ctx) -> Ctx:
    assert_type(context.attempt(), int)
    assert_type(context.workflow_id(), str)
    return {**ctx, "charged": context.checkpoint("charge", lambda amount: amount * 2, ctx["amount"])}


@order.compensation
def refund(ctx: Ctx) -> Ctx:
    return {**ctx, "refunded": True}


@order.decision
def route(ctx: Ctx) -> Goto | Ctx:
    return goto("ship", ctx) if ctx["charged"] else ctx


reserving = order.task_step(reserve, kwargs=lambda ctx: {"sku": ctx["sku"]})

with order.branch(on=lambda ctx: ctx["amount"] > 100) as size:
    with size.case(True):
        @order.step(name="review")
        def review(ctx: Ctx) -> Ctx:
            approved = wait_for_approval("manager", timeout=timedelta(days=3), timeout_value=False)
            return {**ctx, "approved": approved}
    with size.default():
        @order.step
        def auto(ctx: Ctx) -> Ctx:
            sleep(minutes(5))
            return {**ctx, "paid": wait_for_event("paid")}

with order.foreach("pack", items=lambda ctx: ctx["lines"], concurrency=4):
    @order.step
    def pack(ctx: Ctx, line: dict[str, int]) -> Ctx:
        return {**ctx, "packed": line["qty"]}


@order.step
def ship(ctx: Ctx) -> Ctx:
    emit_event("shipped", {"id": context.workflow_id()})
    return {**ctx, "label": call_workflow("label", {"order": ctx["id"]})}


# The decorators return the functions they were given, with their own types (an Any here would
# fail these: assert_type is exact)
def _decorated_functions_keep_their_types(ctx: Ctx) -> None:
    assert_type(validate(ctx), Ctx)
    assert_type(pack(ctx, {"qty": 1}), Ctx)
    assert_type(route(ctx), Goto | Ctx)
    assert_type(refund(ctx), Ctx)
    assert_type(reserving, Task[Any, Any])  # task_step returns the Celery task it was given


durable = Durable(app, workflows=[order], database_url="postgresql+psycopg://postgres@127.0.0.1/test")


def run(amount: int) -> str:
    execution_id = durable.start(order, {"amount": amount}, priority=5)
    assert_type(execution_id, str)
    assert_type(durable.wait(execution_id, timeout=30), Execution)
    return durable.get_execution(execution_id).status.value
