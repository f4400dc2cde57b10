"""The chaos run's Celery app and workflows (``bench/chaos.py``), built the same way by the driver
and by its workers (``celery -A bench.chaos_app worker`` / ``beat``) from ``CHAOS_*`` variables.

Seven workflows, one per feature the run exercises; the driver computes each one's final status,
context and committed steps from its input alone (:func:`expect`):

* ``chaos_retry``: its middle step fails its first ``fails`` attempts (``Retry``, constant 0.3 s);
* ``chaos_branch``: a ``goto`` past a ``branch`` (``route="skip"``) or one of its two cases;
* ``chaos_wait``: a step waiting for one or two events that the driver sends (``go``, ``go2``);
* ``chaos_parallel``: three branches, one of which fails its first attempt, then a join;
* ``chaos_foreach``: a foreach of ``items`` items, three at a time, then a sum;
* ``chaos_saga``: two steps with compensations, then a step that fails for good when
  ``fail`` is set (the execution must end ``compensated``, compensations newest first);
* ``chaos_parent``: ``call_workflow`` of ``chaos_child`` (two steps), returning its context.

Every step body and compensation, as its last act, appends one line to a file of its worker
process in ``CHAOS_EFFECTS`` (a directory): the execution running it (a branch or iteration has
its own), the step, the attempt and when the body started and ended. That is the step's side
effect, countable afterwards. It is a file, not a table, so that the faults the run injects into
PostgreSQL and the broker cannot make the side effect itself fail (an ``O_APPEND`` write of one
short line is atomic, and a SIGKILL after it returns cannot undo it).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

from durable_celery import Durable, Retry, Workflow, context, goto
from durable_celery.orchestration import call_workflow
from durable_celery.wait import wait_for_event

KINDS = ("retry", "branch", "wait", "parallel", "foreach", "saga", "parent")
#: Engine settings of the run: short timings, so that a killed worker's lease expires in seconds.
#: ``max_lost_leases`` is raised so that an attempt whose worker is killed three times by the
#: driver is re-run rather than failed with ``WorkerLost`` (a documented policy, not a fault).
SETTINGS: dict[str, Any] = {"stale_lock_timeout": 5, "heartbeat_interval": 1, "tick_interval": 0.5,
                            "redispatch_after": 3, "max_lost_leases": 10}


def _effect(started: float, note: str = "") -> None:
    """Record that this run of the current step reached its end (see the module docstring)."""
    key = context.idempotency_key()  # "<execution id>:<visit>", the id of the branch or iteration
    line = json.dumps({"e": key.rsplit(":", 1)[0], "s": context.current_step(), "a": context.attempt(),
                       "t0": started, "t1": time.time(), "pid": os.getpid(), "note": note}) + "\n"
    fd = os.open(os.path.join(os.environ["CHAOS_EFFECTS"], f"{os.getpid()}.jsonl"),
                 os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _done(started: float, out: dict[str, Any]) -> dict[str, Any]:
    _effect(started)
    return out


# ---- retries ----------------------------------------------------------------------------------
retry_wf = Workflow("chaos_retry")


@retry_wf.step
def r_prepare(ctx: dict[str, Any]) -> dict[str, Any]:
    return _done(time.time(), {**ctx, "trail": ["r_prepare"]})


@retry_wf.step(retry=Retry(max_attempts=4, backoff="constant", base=0.3))
def r_flaky(ctx: dict[str, Any]) -> dict[str, Any]:
    started = time.time()
    if context.attempt() <= ctx["fails"]:
        _effect(started, "fails")
        raise RuntimeError(f"attempt {context.attempt()} fails on purpose")
    return _done(started, {**ctx, "trail": [*ctx["trail"], "r_flaky"], "flaky_attempt": context.attempt()})


@retry_wf.step
def r_finish(ctx: dict[str, Any]) -> dict[str, Any]:
    return _done(time.time(), {**ctx, "trail": [*ctx["trail"], "r_finish"]})


# ---- branches and goto ------------------------------------------------------------------------
branch_wf = Workflow("chaos_branch")


@branch_wf.step
def b_start(ctx: dict[str, Any]) -> Any:
    started = time.time()
    out = {**ctx, "path": ["b_start"]}
    _effect(started)
    return goto("b_end", out) if ctx["route"] == "skip" else out


with branch_wf.branch(on=lambda ctx: ctx["route"]) as _routes:
    with _routes.case("a"):
        @branch_wf.step
        def b_path_a(ctx: dict[str, Any]) -> dict[str, Any]:
            return _done(time.time(), {**ctx, "path": [*ctx["path"], "b_path_a"]})

    with _routes.case("b"):
        @branch_wf.step
        def b_path_b1(ctx: dict[str, Any]) -> dict[str, Any]:
            return _done(time.time(), {**ctx, "path": [*ctx["path"], "b_path_b1"]})

        @branch_wf.step
        def b_path_b2(ctx: dict[str, Any]) -> dict[str, Any]:
            return _done(time.time(), {**ctx, "path": [*ctx["path"], "b_path_b2"]})


@branch_wf.step
def b_end(ctx: dict[str, Any]) -> dict[str, Any]:
    return _done(time.time(), {**ctx, "path": [*ctx["path"], "b_end"]})


# ---- waits answered by the driver's events ----------------------------------------------------
wait_wf = Workflow("chaos_wait")


@wait_wf.step
def w_before(ctx: dict[str, Any]) -> dict[str, Any]:
    return _done(time.time(), {**ctx, "got": []})


@wait_wf.step
def w_await(ctx: dict[str, Any]) -> dict[str, Any]:
    got = [wait_for_event("go")["v"]]
    if ctx["events"] == 2:
        got.append(wait_for_event("go2")["v"])
    return _done(time.time(), {**ctx, "got": got})  # only a run that passed every wait ends here


@wait_wf.step
def w_after(ctx: dict[str, Any]) -> dict[str, Any]:
    return _done(time.time(), {**ctx, "sum": sum(ctx["got"])})


def event_payloads(n: int, events: int) -> list[tuple[str, dict[str, int]]]:
    """What the driver sends to ``chaos_wait`` number ``n``, in order."""
    return [("go", {"v": 3 * n}), ("go2", {"v": 5 * n})][:events]


# ---- parallel ---------------------------------------------------------------------------------
parallel_wf = Workflow("chaos_parallel")

with parallel_wf.parallel(on_error="fail_fast", name="p_block"):
    @parallel_wf.step
    def p_left(ctx: dict[str, Any]) -> dict[str, Any]:
        return _done(time.time(), {"v": ctx["n"] + 1})

    @parallel_wf.step(retry=Retry(max_attempts=3, backoff="constant", base=0.3))
    def p_right(ctx: dict[str, Any]) -> dict[str, Any]:
        started = time.time()
        if context.attempt() == 1:
            _effect(started, "fails")
            raise RuntimeError("the first attempt fails on purpose")
        return _done(started, {"v": ctx["n"] * 2})

    @parallel_wf.step
    def p_mid(ctx: dict[str, Any]) -> dict[str, Any]:
        return _done(time.time(), {"v": 7})


@parallel_wf.step
def p_join(ctx: dict[str, Any]) -> dict[str, Any]:
    results = ctx["__results__"]
    values = {key: value["v"] for key, (status, value) in sorted(results.items()) if status == "ok"}
    return _done(time.time(), {"n": ctx["n"], "values": values})


# ---- foreach ----------------------------------------------------------------------------------
foreach_wf = Workflow("chaos_foreach")


@foreach_wf.step
def f_start(ctx: dict[str, Any]) -> dict[str, Any]:
    return _done(time.time(), ctx)


with foreach_wf.foreach("f_items", items=lambda ctx: list(range(ctx["items"])), concurrency=3):
    @foreach_wf.step
    def f_item(ctx: dict[str, Any], item: int) -> dict[str, Any]:
        return _done(time.time(), {"sq": item * item + ctx["n"]})


@foreach_wf.step
def f_sum(ctx: dict[str, Any]) -> dict[str, Any]:
    return _done(time.time(), {"n": ctx["n"], "squares": [value["sq"] for _, value in ctx["__results__"]]})


# ---- saga -------------------------------------------------------------------------------------
saga_wf = Workflow("chaos_saga")


@saga_wf.step(compensate="s_unbook")
def s_book(ctx: dict[str, Any]) -> dict[str, Any]:
    return _done(time.time(), {**ctx, "booked": ctx["n"]})


@saga_wf.step(compensate="s_refund")
def s_charge(ctx: dict[str, Any]) -> dict[str, Any]:
    return _done(time.time(), {**ctx, "charged": ctx["n"] * 10})


@saga_wf.step(retry=Retry(max_attempts=2, backoff="constant", base=0.3))
def s_ship(ctx: dict[str, Any]) -> dict[str, Any]:
    started = time.time()
    if ctx["fail"]:
        _effect(started, "fails")
        raise RuntimeError("shipping fails on purpose")
    return _done(started, {**ctx, "shipped": True})


@saga_wf.step
def s_confirm(ctx: dict[str, Any]) -> dict[str, Any]:
    return _done(time.time(), {**ctx, "confirmed": True})


@saga_wf.compensation
def s_refund(ctx: dict[str, Any]) -> dict[str, Any]:
    return _done(time.time(), {"refunded": ctx["charged"]})


@saga_wf.compensation
def s_unbook(ctx: dict[str, Any]) -> dict[str, Any]:
    return _done(time.time(), {"unbooked": ctx["booked"]})


# ---- child workflows --------------------------------------------------------------------------
child_wf = Workflow("chaos_child")


@child_wf.step
def k_one(ctx: dict[str, Any]) -> dict[str, Any]:
    return _done(time.time(), {"x": ctx["x"], "y": ctx["x"] + 1})


@child_wf.step
def k_two(ctx: dict[str, Any]) -> dict[str, Any]:
    return _done(time.time(), {**ctx, "z": ctx["y"] * 2})


parent_wf = Workflow("chaos_parent")


@parent_wf.step
def c_call(ctx: dict[str, Any]) -> dict[str, Any]:
    child = call_workflow(child_wf, {"x": ctx["n"]}, ref="kid")
    return _done(time.time(), {"n": ctx["n"], "child": child})  # the run after the child ended


WORKFLOWS = [retry_wf, branch_wf, wait_wf, parallel_wf, foreach_wf, saga_wf, child_wf, parent_wf]


# ---- what the driver expects ------------------------------------------------------------------
@dataclass(frozen=True)
class Expected:
    """How one top-level execution must end: its status, its context (None: not compared), the
    steps completed in its whole tree (branches, iterations and child workflows included), the
    compensations that must have run, in order, and the failed attempts its steps make on purpose."""

    status: str
    context: dict[str, Any] | None
    steps: Counter[str]
    compensations: tuple[tuple[str, str], ...] = ()
    failures: Counter[str] = field(default_factory=Counter)


def workflow_input(kind: str, n: int, pick: Any) -> dict[str, Any]:
    """The input of workflow number ``n`` of ``kind``; ``pick(seq)`` chooses one of ``seq``
    (the driver's seeded random choice)."""
    if kind == "retry":
        return {"n": n, "fails": pick([1, 2])}
    if kind == "branch":
        return {"n": n, "route": pick(["a", "b", "skip"])}
    if kind == "wait":
        return {"n": n, "events": pick([1, 2])}
    if kind == "foreach":
        return {"n": n, "items": pick([3, 4, 5, 6])}
    if kind == "saga":
        return {"n": n, "fail": pick([False, True])}
    return {"n": n}


def expect(kind: str, given: dict[str, Any]) -> Expected:
    """What workflow ``kind`` started with ``given`` must end with."""
    n = given["n"]
    if kind == "retry":
        fails = given["fails"]
        return Expected("completed", {**given, "trail": ["r_prepare", "r_flaky", "r_finish"],
                                      "flaky_attempt": fails + 1},
                        Counter(["r_prepare", "r_flaky", "r_finish"]), failures=Counter({"r_flaky": fails}))
    if kind == "branch":
        path = {"a": ["b_start", "b_path_a", "b_end"], "b": ["b_start", "b_path_b1", "b_path_b2", "b_end"],
                "skip": ["b_start", "b_end"]}[given["route"]]
        return Expected("completed", {**given, "path": path}, Counter(path))
    if kind == "wait":
        got = [payload["v"] for _, payload in event_payloads(n, given["events"])]
        return Expected("completed", {**given, "got": got, "sum": sum(got)}, Counter(["w_before", "w_await", "w_after"]))
    if kind == "parallel":
        return Expected("completed", {"n": n, "values": {"p_left": n + 1, "p_mid": 7, "p_right": 2 * n}},
                        Counter(["p_left", "p_mid", "p_right", "p_join"]), failures=Counter({"p_right": 1}))
    if kind == "foreach":
        items = given["items"]
        return Expected("completed", {"n": n, "squares": [i * i + n for i in range(items)]},
                        Counter({"f_start": 1, "f_item": items, "f_sum": 1}))
    if kind == "saga":
        if given["fail"]:
            return Expected("compensated", None, Counter(["s_book", "s_charge"]),
                            (("s_charge", "s_refund"), ("s_book", "s_unbook")), Counter({"s_ship": 2}))
        return Expected("completed", {**given, "booked": n, "charged": 10 * n, "shipped": True, "confirmed": True},
                        Counter(["s_book", "s_charge", "s_ship", "s_confirm"]))
    return Expected("completed", {"n": n, "child": {"x": n, "y": n + 1, "z": 2 * n + 2}},
                    Counter(["c_call", "k_one", "k_two"]))


# ---- the app ----------------------------------------------------------------------------------
def make(broker: str, database_url: str, prefix: str, queue: str) -> tuple[Celery, Durable]:
    """The run's app and engine: every step on ``queue``, the engine's tables in schema ``prefix``."""
    app = Celery(f"chaos-{prefix}", broker=broker)
    app.conf.update(broker_connection_retry_on_startup=True, task_default_queue=f"{queue}-default",
                    worker_hijack_root_logger=False, broker_transport_options={"visibility_timeout": 3600},
                    broker_connection_max_retries=None)
    durable = Durable(app, database_url=database_url, workflows=WORKFLOWS, queue=queue, prefix=prefix, **SETTINGS)
    return app, durable


def env_for(broker: str, database_url: str, prefix: str, queue: str, effects: str) -> dict[str, str]:
    """The environment that makes a worker (or beat) build :func:`make` with these settings."""
    return {"CHAOS_BROKER": broker, "CHAOS_DB": database_url, "CHAOS_PREFIX": prefix, "CHAOS_QUEUE": queue,
            "CHAOS_EFFECTS": effects}


if os.environ.get("CHAOS_BROKER"):  # a worker or beat: `celery -A bench.chaos_app worker`
    app, durable = make(os.environ["CHAOS_BROKER"], os.environ["CHAOS_DB"], os.environ["CHAOS_PREFIX"],
                        os.environ["CHAOS_QUEUE"])
