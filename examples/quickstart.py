"""Quick start: an order workflow with a retried step and a branch, run end to end on the
embedded default — state in a SQLite file, messages in files — so it needs no server.

    python -m examples.quickstart

It starts a real `celery worker` process, runs one execution, prints every step attempt, and
stops the worker. With Postgres and Redis you would pass ``database_url=`` and a broker instead.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from celery import Celery

from durable_celery import Durable, Goto, Retry, Workflow, context, goto

order = Workflow("quickstart_order")


@order.step
def validate(ctx: dict[str, Any]) -> dict[str, Any]:
    if not ctx.get("items"):
        raise ValueError("an order needs items")
    return {"order_id": ctx["order_id"], "total": sum(i["price"] for i in ctx["items"])}


@order.step(retry=Retry(max_attempts=3, backoff="constant", base=0.5))
def charge(ctx: dict[str, Any]) -> dict[str, Any]:
    # The payment gateway is flaky: the first attempt fails, the retry succeeds.
    if context.attempt() == 1:
        raise ConnectionError("payment gateway timed out")
    return {**ctx, "charge_id": f"ch_{ctx['order_id']}"}


@order.decision
def check_total(ctx: dict[str, Any]) -> Goto | dict[str, Any]:
    return goto("ship", ctx) if ctx["total"] < 100 else ctx


with order.branch(on=lambda ctx: ctx["total"] >= 1000) as size:
    with size.case(True):
        @order.step
        def manual_review(ctx: dict[str, Any]) -> dict[str, Any]:
            return {**ctx, "reviewed": True}

    with size.default():
        @order.step
        def auto_approve(ctx: dict[str, Any]) -> dict[str, Any]:
            return {**ctx, "reviewed": False}


@order.step
def ship(ctx: dict[str, Any]) -> dict[str, Any]:
    return {**ctx, "shipped": True}


# The embedded default keeps its files in $DURABLE_DATA_DIR (here: a fresh temporary folder).
os.environ.setdefault("DURABLE_DATA_DIR", tempfile.mkdtemp(prefix="durable-quickstart-"))
app = Celery("quickstart")
durable = Durable(app, workflows=[order])


def main() -> int:
    from durable_celery.testing.workers import worker

    print(f"state and broker files in {os.environ['DURABLE_DATA_DIR']}")
    with worker("examples.quickstart", [durable.settings.queue], concurrency=1, pool="solo",
                cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))):
        execution_id = durable.start(order, {"order_id": 42, "items": [{"price": 250}, {"price": 120}]})
        print(f"started execution {execution_id}")
        execution = durable.wait(execution_id, timeout=60)
    print(f"\nworkflow {execution.workflow}: {execution.status.value}")
    for step in execution.steps:
        outcome = f"error: {step.error['message']}" if step.error else f"output: {step.output}"
        print(f"  {step.step_name:<14} attempt {step.attempt}  {step.status:<9} {step.duration_ms:>4} ms  {outcome}")
    print(f"final context: {execution.context}")
    return 0 if execution.status == "completed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
