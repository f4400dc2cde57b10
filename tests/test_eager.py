"""Celery's eager mode: with ``task_always_eager=True``, ``start`` runs the workflow in this
process to its end or its first wait, through the same runner (claim, decide, checkpoint), so
the history is recorded as with workers; the test drives events and time. No worker, no beat."""

from __future__ import annotations

import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from sqlalchemy import text

from durable_celery import Durable, DurableError, Retry, Workflow, context, hours, minutes
from durable_celery.clock import FrozenClock
from durable_celery.wait import sleep, wait_for_event
from tests.conftest import POSTGRES

#: How many times each step body ran (eager mode runs them in this process).
RAN: Counter[str] = Counter()

# Reserve fails once (its 5-minute backoff is longer than a countdown message may be: the tick's
# in production), and so does its compensation; big orders wait for an approval event (an hour at
# most); shipping waits a day.
order = Workflow("eager_order")


@order.step(retry=Retry(max_attempts=3, backoff="constant", base=300), compensate="release")
def reserve(ctx: dict[str, Any]) -> dict[str, Any]:
    RAN["reserve"] += 1
    if context.attempt() == 1:
        raise RuntimeError("stock service unavailable")
    return {**ctx, "reserved": True}


@order.compensation(retry=Retry(max_attempts=2, backoff="constant", base=30))
def release(ctx: dict[str, Any]) -> dict[str, Any]:
    RAN["release"] += 1
    if context.attempt() == 1:
        raise RuntimeError("stock service unavailable")
    return {**ctx, "released": True}


with order.branch(on=lambda ctx: "big" if ctx["total"] >= 100 else "small") as size:
    with size.case("big"):
        @order.step
        def approve(ctx: dict[str, Any]) -> dict[str, Any]:
            RAN["approve"] += 1
            decision = wait_for_event("approved", timeout=hours(1), timeout_value={"by": None})
            return {**ctx, "approved_by": decision["by"]}

    with size.default():
        @order.step
        def auto_approve(ctx: dict[str, Any]) -> dict[str, Any]:
            RAN["auto_approve"] += 1
            return {**ctx, "approved_by": "policy"}

with order.parallel():
    @order.step
    def invoice(ctx: dict[str, Any]) -> dict[str, Any]:
        RAN["invoice"] += 1
        return {"number": f"invoice-{ctx['total']}"}

    @order.step
    def label(ctx: dict[str, Any]) -> dict[str, Any]:
        RAN["label"] += 1
        return {"label": "parcel-1"}


@order.step
def ship(ctx: dict[str, Any]) -> dict[str, Any]:
    RAN["ship"] += 1
    sleep(hours(24))
    return {"shipped": True, "approved_by": ctx["approved_by"], "invoice": ctx["__results__"]["invoice"][1]["number"]}


# A loop of many steps, each one message: run one after another, never one inside another.
counter = Workflow("eager_counter")

with counter.loop("count", condition=lambda ctx: ctx["n"] < ctx["to"], max_iterations=5000):
    @counter.step
    def increment(ctx: dict[str, Any]) -> dict[str, Any]:
        return {**ctx, "n": ctx["n"] + 1}


def eager_app() -> Celery:
    app = Celery(f"eager-{uuid.uuid4().hex[:8]}")
    app.conf.task_always_eager = True  # the usual Celery test setting
    return app


@pytest.fixture
def durable() -> Iterator[Durable]:
    """A Durable on PostgreSQL (its own schema), on an app with no broker, switched to eager
    mode after the Durable is built, as a test's conftest does to a project's app."""
    RAN.clear()
    with eager_durable([order, counter]) as engine:
        yield engine


@contextmanager
def eager_durable(workflows: list[Workflow]) -> Iterator[Durable]:
    """A Durable for ``workflows`` on PostgreSQL (its own schema, dropped afterwards), on an app
    with no broker switched to eager mode after the Durable is built."""
    prefix = f"t_{uuid.uuid4().hex[:10]}"
    engine = Durable(Celery(f"eager-{prefix}"), database_url=POSTGRES, workflows=workflows, prefix=prefix,
                     queue=f"dq-{prefix}")
    engine.app.conf.task_always_eager = True
    try:
        yield engine
    finally:
        with engine.db.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{prefix}" CASCADE'))
        engine.db.dispose()


def attempts(durable: Durable, execution_id: str) -> list[tuple[str, int, str]]:
    execution = durable.get_execution(execution_id, include_steps=True)
    return [(s.step_name, s.attempt, s.status) for s in execution.steps]


def test_start_runs_to_the_first_wait_and_the_event_and_time_drive_the_rest(durable: Durable) -> None:
    # When a big order starts
    execution_id = durable.start(order, {"total": 250})
    # Then start returned once it waited for the approval: reserve failed once and was retried
    # at once (no backoff in eager mode), the branch chose `approve`
    assert durable.get_execution(execution_id).status == "waiting"
    assert attempts(durable, execution_id) == [("reserve", 1, "failed"), ("reserve", 2, "completed"),
                                               ("approve", 1, "waiting")]
    assert RAN == {"reserve": 2, "approve": 1}

    # When the event comes, the execution runs on in this process, to the day-long sleep in `ship`
    durable.send_event(execution_id, "approved", {"by": "ada"})
    assert durable.get_execution(execution_id).status == "waiting"
    assert RAN == {"reserve": 2, "approve": 2, "invoice": 1, "label": 1, "ship": 1}

    # A little less than the day does not wake it; the rest of it does
    durable.advance_time(hours(23))
    assert durable.get_execution(execution_id).status == "waiting"
    durable.advance_time(hours(1))

    execution = durable.get_execution(execution_id, include_steps=True)
    assert execution.status == "completed"
    assert execution.context == {"shipped": True, "approved_by": "ada", "invoice": "invoice-250"}
    assert [(s.step_name, s.attempt, s.status) for s in execution.steps] == [
        ("reserve", 1, "failed"), ("reserve", 2, "completed"), ("approve", 1, "completed"),
        ("invoice", 1, "completed"), ("label", 1, "completed"), ("ship", 1, "completed")]
    assert execution.steps[0].error is not None
    assert execution.steps[0].error["message"] == "stock service unavailable"
    assert RAN == {"reserve": 2, "approve": 2, "invoice": 1, "label": 1, "ship": 2}


def test_the_other_branch_and_a_wait_timeout(durable: Durable) -> None:
    # A small order takes the default branch and runs straight to the sleep
    small = durable.start(order, {"total": 20})
    assert durable.get_execution(small).current_step == "ship"
    # A big one whose approval never comes: its wait times out after an hour, with the timeout value
    big = durable.start(order, {"total": 500})
    durable.advance_time(hours(1))
    assert durable.get_execution(big).current_step == "ship"

    durable.advance_time(hours(24))
    assert durable.get_execution(small).context["approved_by"] == "policy"
    assert durable.get_execution(big).context["approved_by"] is None
    assert {durable.get_execution(i).status for i in (small, big)} == {"completed"}


def test_cancel_runs_the_compensations_with_their_retries(durable: Durable) -> None:
    execution_id = durable.start(order, {"total": 250})
    durable.cancel(execution_id, compensate=True)
    execution = durable.get_execution(execution_id, include_steps=True)
    assert execution.status == "compensated"
    assert [(s.step_name, s.attempt, s.status) for s in execution.steps if s.is_compensation] == [
        ("release", 1, "failed"), ("release", 2, "completed")]


def test_run_due_runs_what_is_due_now(durable: Durable) -> None:
    # A start in the caller's own transaction is left to the tick once committed, as with workers
    with durable.db.begin() as conn:
        execution_id = durable.start(order, {"total": 20}, connection=conn)
    assert durable.get_execution(execution_id).status == "pending"
    # run_due runs the tick here, and what it dispatches runs at once
    durable.run_due()
    assert durable.get_execution(execution_id).current_step == "ship"


def test_a_frozen_clock_records_exact_times(tmp_path: Path) -> None:
    # The embedded default (SQLite, no broker, no database_url) in eager mode, on a frozen clock
    RAN.clear()
    t0 = datetime(2030, 1, 1, 9, 0, tzinfo=timezone.utc)
    clock = FrozenClock(t0)
    durable = Durable(eager_app(), workflows=[order], data_dir=tmp_path, clock=clock)
    try:
        execution_id = durable.start(order, {"total": 250})
        clock.advance(minutes(5))  # moving the clock alone runs nothing: no beat runs here
        durable.send_event(execution_id, "approved", {"by": "grace"})
        durable.advance_time(hours(24))
        execution = durable.get_execution(execution_id, include_steps=True)
    finally:
        durable.db.dispose()
    assert execution.status == "completed"
    assert [(s.step_name, s.attempt, s.started_at) for s in execution.steps] == [
        ("reserve", 1, t0), ("reserve", 2, t0), ("approve", 1, t0 + minutes(5)),
        ("invoice", 1, t0 + minutes(5)), ("label", 1, t0 + minutes(5)),
        # the run that completed `ship` began when its sleep ended
        ("ship", 1, t0 + minutes(5) + hours(24))]
    assert execution.completed_at == t0 + minutes(5) + hours(24)
    assert RAN["reserve"] == 2


def test_steps_run_one_after_another_so_the_stack_does_not_grow_with_the_workflow(durable: Durable) -> None:
    limit = sys.getrecursionlimit()
    execution_id = durable.start(counter, {"n": 0, "to": limit})  # a message per step: more than the limit
    execution = durable.get_execution(execution_id)
    assert execution.status == "completed" and execution.context == {"n": limit, "to": limit}


def test_advance_time_needs_eager_mode(durable: Durable) -> None:
    durable.app.conf.task_always_eager = False
    with pytest.raises(DurableError, match="eager mode"):
        durable.advance_time(60)
