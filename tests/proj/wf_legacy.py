"""Workflows made from the plain tasks of ``legacy_tasks``: steps that are tasks, and canvases
compiled into workflows."""

from __future__ import annotations

from celery import chain, chord, group

from durable_celery import Retry, Workflow
from tests.proj import legacy_tasks as t

# Steps from tasks: arguments filled by name from the context, results stored under the step name.
legacy_order = Workflow("legacy_order")
legacy_order.task_step(t.price_order)
legacy_order.task_step(t.flaky_lookup, kwargs=lambda ctx: {"sku": f"sku-{ctx['order_id']}",
                                                          "fail_times": ctx.get("lookup_failures", 0)},
                       into="inventory", retry=Retry(max_attempts=3, backoff="constant", base=0.2))


@legacy_order.step
def summarize(ctx):
    return {"order_id": ctx["order_id"], "total": ctx["price_order"], "stock": ctx["inventory"]["stock"],
            "lookup_calls": ctx["inventory"]["calls"], "called_directly": ctx["inventory"]["called_directly"]}


# Canvases, compiled. Each is kept as a module constant so tests run the plain canvas too.
CANVASES = {
    "canvas_chain": chain(t.add.s(1), t.mul.s(3), t.add.si(2, 2), t.mul.s(y=5)),
    "canvas_group": group(t.add.s(1), t.mul.s(10), chain(t.add.s(5), t.mul.s(2)), t.add.si(100, 1)),
    "canvas_chord": chain(t.add.s(1), chord([t.mul.s(2), t.mul.s(3), group(t.add.s(1), t.add.s(2))],
                                             t.tsum.s(start=1000)), t.add.s(1)),
    "canvas_pipeline": chain(t.add.s(1), group(t.mul.s(2), t.mul.s(3), chain(t.add.s(10), t.mul.s(2))),
                             t.tsum.s(), t.add.s(5)),
}
canvas_chain = Workflow.from_canvas("canvas_chain", CANVASES["canvas_chain"])
canvas_group = Workflow.from_canvas("canvas_group", CANVASES["canvas_group"])
canvas_chord = Workflow.from_canvas("canvas_chord", CANVASES["canvas_chord"])
canvas_pipeline = Workflow.from_canvas("canvas_pipeline", CANVASES["canvas_pipeline"])

# A saga: ship fails (when the order says so) after charge, beside it in the group, completed.
canvas_saga = Workflow.from_canvas(
    "canvas_saga",
    chain(t.reserve.s(), group(t.charge.s(), t.ship.s()), t.confirm.s()),
    compensations={"charge": t.refund, "reserve": t.release},
    step_options={"ship": {"retry": Retry(max_attempts=2, backoff="constant", base=0.1)}},
)
