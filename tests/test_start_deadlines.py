"""Start deadlines (``Workflow(start_deadline=...)``, ``start(..., start_deadline=...)``): an
execution whose first step has not begun by its start deadline is cancelled, by the tick or by
the task its message finally reaches, and never runs; one that has begun is never cancelled by
it. Real workers, beat and brokers; the test workflows are in tests/proj/wf_deadlines.py."""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from durable_celery import Durable, InvalidInput, Workflow, minutes
from durable_celery.clock import FrozenClock
from durable_celery.runtime.tick import tick
from tests.conftest import Project
from tests.test_faults import wait_for_effect

Factory = Callable[..., Project]


def start_deadline_of(p: Project, execution_id: str) -> tuple[Any, Any]:
    """The row's (start_deadline_at, created_at)."""
    return tuple(p.sql("SELECT start_deadline_at, created_at FROM {schema}.workflow_executions WHERE id = :id",
                       id=execution_id)[0])


def assert_cancelled_unstarted(p: Project, execution_id: str) -> None:
    """Cancelled by its start deadline, and nothing of it ever ran."""
    execution = p.durable.get_execution(execution_id, include_steps=True)
    assert execution.status == "cancelled"
    assert execution.error is not None and execution.error["type"] == "StartDeadlinePassed"
    assert "start deadline" in execution.error["message"]
    assert execution.started_at is None and execution.steps == []
    assert p.effects(execution_id) == {}
    assert start_deadline_of(p, execution_id)[0] is None  # out of the tick's index


def test_executions_not_started_by_their_start_deadline_are_cancelled_by_the_tick_and_never_run(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    # Given beat running but no worker at all (the queue is down)
    p.beat()
    # When executions with a 1 s start deadline are started: one by start (its message holds a
    # lease, taken back when it expires) and two by start_many (one statement)
    single = p.durable.start("sd_reminder", {"to": "ann"})
    many = p.durable.start_many("sd_plain", [{"n": 1}, {"n": 2}], start_deadline=1)
    # Then the tick cancels each of them once its deadline (and any lease) has passed
    for execution_id in (single, *many):
        assert p.wait(execution_id, timeout=20).status == "cancelled"
        assert_cancelled_unstarted(p, execution_id)

    # And when a worker comes up and takes their messages, none of them runs
    p.worker()
    later = p.durable.start("sd_plain", {"n": 3})
    assert p.wait(later, timeout=30).status == "completed"
    time.sleep(1)  # the old messages went first: give the worker time to have dropped them
    for execution_id in (single, *many):
        assert_cancelled_unstarted(p, execution_id)


@pytest.mark.parametrize("path", ["handed", "claimed"])
def test_a_message_that_arrives_after_the_start_deadline_does_not_run_the_step(
        project_factory: Factory, path: str) -> None:
    # Given no beat (no tick to cancel anything) and one worker slot, held by a long step:
    # "handed": the start's message comes while the lease it carries is still trusted (a
    # handoff ttl of 10 s, trusted for 5), so its task runs without a claim; "claimed": it
    # comes later (a 3 s ttl, trusted for 1.5 s), so its task claims the row first
    p = project_factory("redis", stale_lock_timeout=30) if path == "handed" else project_factory("redis")
    p.worker(concurrency=1)
    hog = p.durable.start("tick_hog", {"seconds": 3 if path == "handed" else 4})
    wait_for_effect(p, hog, "hog_the_slot")
    # When an execution with a 1 s start deadline waits behind it
    late = p.durable.start("sd_reminder", {"to": "bob"})
    # Then, its message reaching the worker only after the deadline, it is cancelled there
    assert p.wait(late, timeout=30).status == "cancelled"
    assert_cancelled_unstarted(p, late)
    assert p.wait(hog, timeout=30).status == "completed"


def test_an_execution_that_has_started_is_never_cancelled_by_its_start_deadline(project_factory: Factory) -> None:
    p = project_factory("redis")
    p.worker()
    p.beat()
    # Given an execution with a 1 s start deadline whose first step begins at once, runs for
    # 2 s, fails, and is retried a second after that, well past the deadline
    execution_id = p.durable.start("sd_slow_start", {"seconds": 2}, start_deadline=1)
    wait_for_effect(p, execution_id, "begin_slowly")
    # Then it is not cancelled, neither while that step runs nor when its retry is claimed
    execution = p.wait(execution_id, timeout=30)
    assert execution.status == "completed" and execution.context["done"] is True
    assert p.effects(execution_id) == {"begin_slowly": 2, "carry_on": 1}
    # And its start deadline was cleared once it began
    assert start_deadline_of(p, execution_id)[0] is None


def test_the_start_option_overrides_the_workflow_option(project_factory: Factory) -> None:
    p = project_factory("redis")
    p.beat()
    # Given sd_reminder, whose workflow start deadline is 1 s, and sd_plain, which has none
    # When one is started with the workflow's deadline, one with its own hour, one with none,
    # and one scheduled for an hour from now with a minute
    by_workflow = p.durable.start("sd_reminder")
    by_start = p.durable.start("sd_reminder", start_deadline=timedelta(hours=1))
    without = p.durable.start("sd_plain")
    at = datetime.now(timezone.utc) + timedelta(hours=1)
    scheduled = p.durable.start("sd_plain", scheduled_at=at, start_deadline=60)
    # Then each row's start deadline counts from when it is due: its start, or its scheduled time
    deadline, created = start_deadline_of(p, by_workflow)
    assert deadline - created == timedelta(seconds=1)
    deadline, created = start_deadline_of(p, by_start)
    assert deadline - created == timedelta(hours=1)
    assert start_deadline_of(p, without)[0] is None
    assert start_deadline_of(p, scheduled)[0] == at + timedelta(seconds=60)
    # And with no worker, only the one on the workflow's 1 s deadline is cancelled
    assert p.wait(by_workflow, timeout=20).status == "cancelled"
    assert p.durable.get_execution(by_start).status == "pending"
    # And once a worker comes, the one the start option kept alive runs
    p.worker()
    assert p.wait(by_start, timeout=30).status == "completed"
    assert p.wait(without, timeout=30).status == "completed"
    assert_cancelled_unstarted(p, by_workflow)


@pytest.mark.parametrize("bad", [-1, 0, timedelta(seconds=-5), math.nan, "10", True, [1]])
def test_a_bad_start_deadline_raises_invalid_input_and_writes_nothing(project_factory: Factory, bad: Any) -> None:
    p = project_factory("redis")
    # When start and start_many are given a start deadline that is not a positive duration
    with pytest.raises(InvalidInput, match="start_deadline"):
        p.durable.start("sd_plain", {}, start_deadline=bad)
    with pytest.raises(InvalidInput, match="start_deadline"):
        p.durable.start_many("sd_plain", [{}, {}], start_deadline=bad)
    # Then nothing was written
    assert p.sql("SELECT count(*) FROM {schema}.workflow_executions")[0][0] == 0


def test_a_message_published_by_the_tick_after_the_deadline_does_not_run_it_either(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    # Given an execution started inside the caller's transaction (its message is the tick's to
    # publish) with a 2 s start deadline, and one tick that publishes it at once (no beat after)
    with p.durable.db.begin() as conn:
        execution_id = p.durable.start("sd_plain", {}, start_deadline=2, connection=conn)
    assert tick(p.durable.services).dispatched == 1
    # When a worker takes the message only after the deadline
    time.sleep(2.5)
    p.worker()
    # Then its task claims the row, sees the deadline passed, and cancels instead of running it
    assert p.wait(execution_id, timeout=30).status == "cancelled"
    assert_cancelled_unstarted(p, execution_id)


#: How many times the embedded workflow's step ran (eager mode runs it in this process).
RAN: Counter[str] = Counter()
embedded = Workflow("sd_embedded", start_deadline=minutes(10))


@embedded.step
def nudge(ctx: dict[str, Any]) -> dict[str, Any]:
    RAN[ctx["name"]] += 1
    return ctx


def test_the_embedded_default_cancels_a_scheduled_start_not_begun_by_its_deadline(tmp_path: Path) -> None:
    # Given the embedded default (SQLite, no broker) in Celery's eager mode, on a frozen clock
    RAN.clear()
    t0 = datetime(2030, 1, 1, 9, 0, tzinfo=timezone.utc)
    clock = FrozenClock(t0)
    app = Celery(f"eager-{uuid.uuid4().hex[:8]}")
    app.conf.task_always_eager = True
    durable = Durable(app, workflows=[embedded], data_dir=tmp_path, clock=clock)
    try:
        # And runs scheduled for 9:30 with the workflow's 10 minute start deadline
        in_time = durable.start(embedded, {"name": "in_time"}, scheduled_at=t0 + minutes(30))
        # When the first is run at 9:35, within its deadline
        durable.advance_time(minutes(35))
        # And the second (scheduled for 9:40, due by 9:50) only at 10:05, past it
        too_late = durable.start(embedded, {"name": "too_late"}, scheduled_at=t0 + minutes(40))
        durable.advance_time(minutes(30))
        # Then the first completed and the second was cancelled without running
        assert durable.get_execution(in_time).status == "completed"
        late = durable.get_execution(too_late, include_steps=True)
        assert late.status == "cancelled" and late.error is not None
        assert late.error["type"] == "StartDeadlinePassed" and late.steps == [] and late.started_at is None
        assert RAN == {"in_time": 1}
    finally:
        durable.db.dispose()


def test_a_workflow_signature_carries_its_start_deadline_in_seconds(project_factory: Factory) -> None:
    p = project_factory("redis")
    # Given a signature of sd_plain with a 5 minute start deadline
    sig = p.durable.signature("sd_plain", {"n": 1}, start_deadline=timedelta(minutes=5))
    assert sig.kwargs["options"]["start_deadline"] == 300  # JSON in the message
    # When it runs (here, in this process)
    execution_id = sig.apply().get()
    # Then the execution's start deadline counts from when it ran
    deadline, created = start_deadline_of(p, execution_id)
    assert deadline - created == timedelta(minutes=5)
    # And a bad one is refused before anything is sent
    with pytest.raises(InvalidInput, match="start_deadline"):
        p.durable.signature("sd_plain", {}, start_deadline=-5)
