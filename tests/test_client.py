"""The client API: starting (with idempotency keys, schedules, priorities and inside the
caller's transaction), reading, listing, cancelling and retrying. Bad input raises a clear
DurableError and writes nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from durable_celery import DurableError, ExecutionNotFound, InvalidInput, InvalidState, Workflow, WorkflowNotFound
from durable_celery.runtime.tick import tick
from tests.conftest import Project

Factory = Callable[..., Project]


def count(p: Project) -> int:
    return p.sql("SELECT count(*) FROM {schema}.workflow_executions")[0][0]


@pytest.mark.parametrize("call, error", [
    (lambda d: d.start("no_such_workflow", {}), WorkflowNotFound),
    (lambda d: d.start("pipeline", {"when": object()}), InvalidInput),
    (lambda d: d.start("pipeline", ["not", "a", "dict"]), InvalidInput),
    (lambda d: d.start("pipeline", {}, priority=11), InvalidInput),
    (lambda d: d.start("pipeline", {}, priority="high"), InvalidInput),
    (lambda d: d.start("pipeline", {}, queue=""), InvalidInput),
    (lambda d: d.start("pipeline", {}, scheduled_at=datetime(2030, 1, 1)), InvalidInput),
    (lambda d: d.start("pipeline", {}, idempotency_key=""), InvalidInput),
    (lambda d: d.start("pipeline", {}, connection="not a connection"), InvalidInput),
    (lambda d: d.start(42, {}), InvalidInput),
])
def test_bad_start_arguments_raise_a_durable_error_and_write_nothing(project_factory: Factory, call: Any,
                                                                      error: type) -> None:
    p = project_factory()
    with pytest.raises(error) as err:
        call(p.durable)
    assert isinstance(err.value, DurableError) and str(err.value)
    assert count(p) == 0


@pytest.mark.parametrize("bad_id, error", [("nope", InvalidInput), (123, InvalidInput),
                                            ("00000000-0000-0000-0000-000000000000", ExecutionNotFound)])
def test_bad_or_unknown_ids_raise_clear_errors(project_factory: Factory, bad_id: Any, error: type) -> None:
    p = project_factory()
    for call in (p.durable.get_execution, p.durable.cancel, p.durable.retry):
        with pytest.raises(error):
            call(bad_id)


def test_a_second_start_with_the_same_idempotency_key_returns_the_first_execution(project_factory: Factory) -> None:
    p = project_factory()
    first = p.durable.start("pipeline", {"n": 1}, idempotency_key="order-1")
    again = p.durable.start("pipeline", {"n": 2}, idempotency_key="order-1")
    other = p.durable.start("pipeline", {"n": 3}, idempotency_key="order-2")
    assert first == again != other
    assert count(p) == 2
    assert p.durable.get_execution(first).input == {"n": 1}


def test_input_values_of_rich_types_round_trip(project_factory: Factory) -> None:
    p = project_factory()
    when = datetime(2026, 11, 22, 8, 0, tzinfo=timezone.utc)
    execution_id = p.durable.start("pipeline", {"at": when, "amount": Decimal("9.99")})
    assert p.durable.get_execution(execution_id).input == {"at": when, "amount": Decimal("9.99")}


def test_a_start_inside_the_callers_transaction_exists_only_if_it_commits(project_factory: Factory) -> None:
    p = project_factory()
    p.worker()
    engine = create_engine(p.durable.db.url)  # a caller's own engine: a legacy (not future) one on SQLAlchemy 1.4
    try:
        # Given a caller's own transaction that rolls back
        with engine.connect() as conn:
            with conn.begin() as tx:
                rolled_back = p.durable.start("pipeline", {"n": "rb"}, connection=conn)
                tx.rollback()
        # Then the execution never existed
        with pytest.raises(ExecutionNotFound):
            p.durable.get_execution(rolled_back)
        # Given one that commits (Connection: published by the tick once it is visible)
        with engine.begin() as conn:
            committed = p.durable.start("pipeline", {"n": "ok"}, connection=conn)
            conn.execute(text("SELECT 1"))  # the caller's own work in the same transaction
        assert tick(p.durable).dispatched == 1
        assert p.wait(committed).status == "completed"
        # And a Session: published when the session commits
        with Session(engine) as session:
            in_session = p.durable.start("pipeline", {"n": "session"}, connection=session)
            session.commit()
        assert p.wait(in_session).status == "completed"
        # And a scoped_session (Flask-SQLAlchemy's `db.session`): its current session
        scoped = scoped_session(sessionmaker(engine))
        in_scoped = p.durable.start("pipeline", {"n": "scoped"}, connection=scoped)
        scoped.commit()
        scoped.remove()
        assert p.wait(in_scoped).status == "completed"
    finally:
        engine.dispose()


def test_a_scheduled_start_waits_until_its_time_then_the_tick_dispatches_it(project_factory: Factory) -> None:
    p = project_factory()
    p.worker()
    p.beat()
    at = datetime.now(timezone.utc) + timedelta(seconds=2)
    execution_id = p.durable.start("pipeline", {}, scheduled_at=at)
    assert p.durable.get_execution(execution_id).status == "pending"
    execution = p.wait(execution_id, timeout=20)
    assert execution.status == "completed"
    assert execution.started_at >= at
    assert execution.scheduled_at == at


def test_cancel_stops_an_execution_and_discards_the_result_of_the_step_in_flight(project_factory: Factory) -> None:
    p = project_factory()
    p.worker()
    execution_id = p.durable.start("pipeline", {"second_sleep": 2})
    p.wait(execution_id, statuses={"running"})
    deadline = datetime.now(timezone.utc) + timedelta(seconds=10)
    while p.effects(execution_id).get("second") is None and datetime.now(timezone.utc) < deadline:
        time.sleep(0.05)
    p.durable.cancel(execution_id, reason="customer changed their mind")
    execution = p.durable.get_execution(execution_id, include_steps=True)
    assert execution.status == "cancelled"
    assert execution.error["message"] == "customer changed their mind"
    time.sleep(3)  # the running step finishes meanwhile; its checkpoint must be refused
    execution = p.durable.get_execution(execution_id, include_steps=True)
    assert execution.status == "cancelled"
    assert [s.step_name for s in execution.steps] == ["first"]
    assert "third" not in p.effects(execution_id)
    with pytest.raises(InvalidState):
        p.durable.cancel(execution_id)


def test_retry_starts_a_new_execution_with_the_same_workflow_input_and_queue(project_factory: Factory) -> None:
    p = project_factory()
    p.worker()
    failed = p.wait(p.durable.start("flaky", {"succeed_on": 99}, priority=3))
    new_id = p.durable.retry(failed.id)
    assert new_id != failed.id
    new = p.durable.get_execution(new_id)
    assert (new.workflow, new.input, new.queue, new.priority) == ("flaky", {"succeed_on": 99}, failed.queue, 3)
    done = p.wait(p.durable.start("pipeline", {}))
    with pytest.raises(InvalidState):
        p.durable.retry(done.id)


def test_list_executions_filters_by_workflow_status_and_queue_newest_first(project_factory: Factory) -> None:
    p = project_factory()
    a = p.durable.start("pipeline", {})
    b = p.durable.start("flaky", {"succeed_on": 1})
    c = p.durable.start("pipeline", {}, queue="elsewhere")
    assert [e.id for e in p.durable.list_executions()] == [c, b, a]
    assert [e.id for e in p.durable.list_executions(workflow="pipeline")] == [c, a]
    assert [e.id for e in p.durable.list_executions(queue="elsewhere")] == [c]
    assert [e.id for e in p.durable.list_executions(status="pending", limit=1, offset=1)] == [b]
    assert p.durable.list_executions(status="completed") == []
    with pytest.raises(InvalidInput):
        p.durable.list_executions(status="finished")
    with pytest.raises(InvalidInput):
        p.durable.list_executions(limit=-1)


def test_start_accepts_a_workflow_object_as_well_as_its_name(project_factory: Factory) -> None:
    from tests.proj.workflows import pipeline

    p = project_factory()
    execution = p.durable.get_execution(p.durable.start(pipeline, {"x": 1}))
    assert execution.workflow == "pipeline" and execution.status == "pending"
    assert execution.current_step == "first"
    other = Workflow("pipeline")
    other.step(name="impostor")(lambda ctx: ctx)
    with pytest.raises(DurableError, match="two different workflows"):
        p.durable.start(other, {})
