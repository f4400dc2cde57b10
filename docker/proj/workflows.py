"""One workflow: an order with a retried step, a step timeout and a branch."""

from __future__ import annotations

import logging

from durable_celery import Retry, Workflow, context, minutes, seconds

log = logging.getLogger(__name__)

order = Workflow("process_order", timeout=minutes(10))


@order.step
def validate(ctx):
    if not ctx.get("items"):
        raise ValueError("an order needs items")
    total = sum(item["price"] for item in ctx["items"])
    return {"order_id": ctx["order_id"], "items": ctx["items"], "total": total}


@order.step(retry=Retry(max_attempts=4, backoff="exponential", base=2), timeout=seconds(30))
def charge(ctx):
    log.info("charging order %s, attempt %d", ctx["order_id"], context.attempt())
    if context.attempt() == 1:  # a flaky payment gateway: the first attempt fails, the retry works
        raise ConnectionError("payment gateway timed out")
    return {**ctx, "charge_id": f"ch_{ctx['order_id']}"}


with order.branch(on=lambda ctx: ctx["total"] >= 1000, name="review") as review:
    with review.case(True):
        @order.step
        def manual_review(ctx):
            return {**ctx, "reviewed": "manual"}

    with review.default():
        @order.step
        def auto_approve(ctx):
            return {**ctx, "reviewed": "auto"}


@order.step
def ship(ctx):
    print(f"shipping order {ctx['order_id']}")
    return {**ctx, "shipped": True}
