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
    if ctx.get("linger"):  # stay active after the answer, until told to close
        wait.wait_for_event("close")
    return {**ctx, "answer": answer}


# ---- composition ------------------------------------------------------------------------------
def _slow(ctx, key="sleep"):
    time.sleep(ctx.get(key, 0))


fanout = Workflow("fanout")


@fanout.step
def prepare(ctx):
    return {**ctx, "prepared": True}


with fanout.parallel(on_error="complete_all"):
    @fanout.step(returns="user")
    def fetch_user(ctx):
        record()
        _slow(ctx)
        return {"user": ctx["id"]}

    @fanout.step(retry=Retry(max_attempts=2, backoff="constant", base=0.1))
    def fetch_orders(ctx):
        from durable_celery import context

        record()
        _slow(ctx, "orders_sleep")
        if ctx.get("orders_fail") == "always" or (ctx.get("orders_fail") == "once" and context.attempt() == 1):
            raise RuntimeError("orders service down")
        return {"orders": [1, 2]}


@fanout.step
def combine(ctx):
    return {"results": ctx["__results__"], "prepared": ctx["prepared"]}


fail_fast = Workflow("fail_fast")
with fail_fast.parallel(on_error="fail_fast"):
    @fail_fast.step
    def slow_branch(ctx):
        record("started")
        time.sleep(3)
        record("finished")
        return ctx

    @fail_fast.step
    def broken_branch(ctx):
        time.sleep(0.3)
        raise ValueError("broken for good")


@fail_fast.step
def never_reached(ctx):
    return ctx


into_goto = Workflow("into_goto")
with into_goto.parallel(into=lambda ctx, results: goto("rescue", {**ctx, "why": results["check_a"][1]["message"]})
                        if results["check_a"][0] == "error" else {**ctx, "checked": sorted(results)},
                        on_error="complete_all"):
    @into_goto.step
    def check_a(ctx):
        if ctx.get("fail_a"):
            raise RuntimeError("a is broken")
        return ctx

    @into_goto.step
    def check_b(ctx):
        return ctx


@into_goto.step
def normal(ctx):
    return goto("finish_line", {**ctx, "path": "normal"})


@into_goto.step
def rescue(ctx):
    return {**ctx, "path": "rescue"}


@into_goto.step
def finish_line(ctx):
    return ctx


adder = Workflow("adder")
with adder.foreach("add_up", items=lambda ctx: ctx["items"]):
    @adder.step
    def add(ctx, item):
        record(str(item))
        time.sleep(ctx.get("sleep", 0))
        return {**ctx, "total": ctx.get("total", 0) + item}


@adder.step
def report_total(ctx):
    return {"total": ctx.get("total", 0), "count": len(ctx["items"])}


squares = Workflow("squares")
with squares.foreach("square_all", items=lambda ctx: ctx["items"], concurrency=3):
    @squares.step
    def square(ctx, item):
        record(str(item))
        time.sleep(ctx.get("sleep", 0))
        if item == ctx.get("bad"):
            raise ValueError(f"cannot square {item}")
        return {"square": item * item}

    @squares.step
    def tag(ctx, item):
        return {**ctx, "item": item}


poller = Workflow("poller")


@poller.step
def init_poll(ctx):
    return {**ctx, "n": 0}


with poller.loop("poll", condition=lambda ctx: ctx["n"] < ctx["until"], max_iterations=5):
    @poller.step
    def poll_once(ctx):
        return {**ctx, "n": ctx["n"] + 1}


@poller.step
def after_poll(ctx):
    return {**ctx, "done": True}


nested = Workflow("nested")
with nested.foreach("each_region", items=lambda ctx: ctx["regions"], concurrency=2):
    with nested.parallel(on_error="complete_all"):
        @nested.step
        def count_a(ctx, item):
            return {"a": item.upper()}

        with nested.branch(on=lambda ctx: ctx.get("mode"), name="pick_mode") as mode:
            with mode.case("fast"):
                @nested.step
                def quick(ctx, item):
                    return {"quick": item}

            with mode.default():
                with nested.loop("spin", condition=lambda ctx: ctx.get("i", 0) < 2):
                    @nested.step
                    def spin_once(ctx, item):
                        return {**ctx, "i": ctx.get("i", 0) + 1, "spun": item}

    @nested.step
    def merge_region(ctx, item):
        results = ctx["__results__"]
        return {"region": item, "a": results["count_a"][1]["a"], "mode": results["pick_mode"][1]}


# ---- saga -------------------------------------------------------------------------------------
trip = Workflow("trip", timeout=seconds(30))


@trip.step(compensate="cancel_flight")
def book_flight(ctx):
    record()
    return {**ctx, "flight": "F-1"}


@trip.step(compensate="cancel_hotel")
def book_hotel(ctx):
    record()
    return {**ctx, "hotel": "H-2"}


@trip.step
def book_car(ctx):
    if ctx.get("car") == "fails":
        raise RuntimeError("no cars left")
    if ctx.get("car") == "waits":
        wait.wait_for_event("car_confirmed", timeout=ctx.get("car_timeout"))
    return {**ctx, "car": "C-3"}


@trip.compensation
def cancel_flight(ctx):
    record(ctx["flight"])
    if ctx.get("flight_cancel") == "fails":
        raise RuntimeError("airline unreachable")
    return {"cancelled": ctx["flight"]}


@trip.compensation(retry=Retry(max_attempts=2, backoff="constant", base=0.1))
def cancel_hotel(ctx):
    from durable_celery import context

    record(ctx["hotel"])
    if ctx.get("hotel_cancel") == "flaky" and context.attempt() == 1:
        raise RuntimeError("hotel busy")
    return {"cancelled": ctx["hotel"]}


trip_deadline = Workflow("trip_deadline", timeout=seconds(1))


@trip_deadline.step(compensate="release_seat")
def hold_seat(ctx):
    return {**ctx, "seat": "12A"}


@trip_deadline.step
def await_payment_forever(ctx):
    wait.wait_for_event("paid")
    return ctx


@trip_deadline.compensation
def release_seat(ctx):
    record(ctx["seat"])
    return ctx


many = Workflow("many")
with many.foreach("each", items=lambda ctx: list(range(ctx["n"])), concurrency=50):
    @many.step
    def touch(ctx, item):
        return {"i": item}


@many.step
def count_them(ctx):
    results = ctx["__results__"]
    return {"count": len(results), "in_order": [r[1]["i"] for r in results] == list(range(ctx["n"]))}


# A foreach whose items record a side effect each (note: the item), for the crash test.
tally = Workflow("tally")
with tally.foreach("each", items=lambda ctx: list(range(ctx["n"])), concurrency=20):
    @tally.step
    def tally_item(ctx, item):
        record(str(item))
        time.sleep(0.005)
        return {"i": item}


@tally.step
def tally_up(ctx):
    return {"statuses": sorted({r[0] for r in ctx["__results__"]}), "items": [r[1]["i"] for r in ctx["__results__"]]}



branch_waits = Workflow("branch_waits")


@branch_waits.step
def before_block(ctx):
    return {**ctx, "before": True}


with branch_waits.parallel():
    @branch_waits.step
    def wait_go(ctx):
        from durable_celery import context

        return {"go": wait.wait_for_event("go"), "input": context.workflow_input()}

    @branch_waits.step
    def ask_boss(ctx):
        return {"boss": wait.wait_for_approval("boss", prompt="ok?")}


if os.environ.get("DT_BROKEN"):
    # A deploy with a broken definition: two-argument step outside a foreach.
    broken = Workflow("broken")
    broken.step(name="wrong_arity")(lambda ctx, extra: ctx)


# Tracing: a step that fails once, a wait for an event, a step that logs.
traced = Workflow("traced")


@traced.step(retry=Retry(max_attempts=2, backoff="constant", base=0.1))
def charge(ctx):
    from durable_celery import context

    if context.attempt() == 1:
        raise RuntimeError("card network timeout")
    return {**ctx, "charged": True}


@traced.step
def approve(ctx):
    return {**ctx, "approval": wait.wait_for_event("approved")}


@traced.step
def ship(ctx):
    import logging

    logging.getLogger("traced").warning("shipping %s", ctx["order"])
    return {**ctx, "shipped": True}
