"""Where messages go and when: a step's own queue holds wherever the step is reached; nothing
waits in the broker longer than ``max_countdown``; lost messages are re-published with a back-off."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
import redis
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from durable_celery.state.executions import (
    claim_txn,
    release_leases_txn,
    take_dispatchable_txn,
    take_expired_leases_txn,
)
from tests.conftest import BROKERS, Project
from tests.proj.workflows import SPECIAL_QUEUE

Factory = Callable[..., Project]


def queued(queue: str) -> int:
    """Messages waiting in a Redis queue (kombu keeps one list per priority level)."""
    r = redis.Redis.from_url(BROKERS["redis"])
    return sum(int(r.llen(key)) for key in r.keys(f"{queue}*") if r.type(key) == b"list")


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_a_steps_own_queue_holds_at_entry_points_on_retries_and_on_resumes(project_factory: Factory,
                                                                           broker: str) -> None:
    # Given a step with its own queue reached through a branch at the workflow's entry point, and
    # one reached through a loop at the entry of a foreach body; a retry too long for a countdown
    # message (so the tick dispatches it) and a sleep (so the tick wakes it)
    p = project_factory(broker, max_countdown=1)
    p.worker()
    p.worker(queues=[SPECIAL_QUEUE])
    p.beat()
    execution = p.wait(p.durable.start("entry_routing", {}), timeout=60)
    # Then every run of those steps happened on their own queue
    assert execution.status == "completed", execution.error
    assert p.notes(execution.id) == {f"flaky_special@{SPECIAL_QUEUE}": 3, f"looped_special@{SPECIAL_QUEUE}": 2}


def test_a_scheduled_start_in_the_callers_transaction_waits_in_the_database_not_in_the_broker(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    engine = create_engine(p.durable.db.url)  # a caller's own engine: a legacy (not future) one on SQLAlchemy 1.4
    later, soon = datetime.now(timezone.utc) + timedelta(hours=1), datetime.now(timezone.utc) + timedelta(seconds=2)
    try:
        with Session(engine) as session:
            far = p.durable.start("pipeline", {}, connection=session, scheduled_at=later)
            near = p.durable.start("pipeline", {}, connection=session, scheduled_at=soon)
            session.commit()
    finally:
        engine.dispose()
    # Nothing was published at commit: the rows wait for their time in the database
    assert queued(p.queue) == 0
    # A message that arrives early is not turned into an hour-long ETA message
    assert p.durable.runner.run(far, 0, p.queue) == "early"
    assert queued(p.queue) == 0
    # And the near one runs once it is due, dispatched by the tick
    p.worker()
    p.beat()
    execution = p.wait(near, timeout=30)
    assert execution.status == "completed" and execution.started_at is not None and execution.started_at >= soon
    assert p.durable.get_execution(far).status == "pending"


def test_an_unclaimed_message_is_re_published_with_a_doubling_back_off_until_it_is_claimed(
        project_factory: Factory) -> None:
    # Given an execution whose message nobody consumes (no worker: a backlog, or a lost publish),
    # whose lease, handed over to that message at the start, the tick took back when it expired
    p = project_factory("redis")
    execution_id = p.durable.start("pipeline", {})
    (expires_at,) = p.sql("SELECT lease_expires_at FROM {schema}.workflow_executions WHERE id = :id",
                          id=execution_id)[0]
    with p.durable.db.begin() as conn:
        expired = take_expired_leases_txn(conn, expires_at + timedelta(seconds=1), 500, "tick")
        assert [r["id"] for r in expired] == [execution_id]
        release_leases_txn(conn, expired, expires_at + timedelta(seconds=1))
    (dispatched_at, lost) = p.sql("SELECT dispatched_at, lost_leases FROM {schema}.workflow_executions "
                                  "WHERE id = :id", id=execution_id)[0]
    assert lost == 0  # its message was never taken: no worker was lost
    after = timedelta(seconds=2)

    def sweep(seconds: float) -> bool:
        with p.durable.db.begin() as conn:
            rows = take_dispatchable_txn(conn, dispatched_at + timedelta(seconds=seconds), after, 500)
        return any(r["id"] == execution_id for r in rows)

    # When the tick sweeps every second for two minutes
    republished = [t for t in range(1, 121) if sweep(t)]
    # Then it re-publishes it after 2, 4, 8, 16, 32, 64 s (cumulative), not every 2 s
    assert republished == [2, 6, 14, 30, 62, 126][:len(republished)] and len(republished) == 5
    # And once a worker claims it, the back-off starts over
    with p.durable.db.single() as conn:
        claimed = claim_txn(conn, execution_id, 0, "w", datetime.now(timezone.utc) + timedelta(days=1),
                            datetime.now(timezone.utc) + timedelta(days=2))
    assert claimed is not None
    assert p.sql("SELECT redispatches FROM {schema}.workflow_executions WHERE id = :id", id=execution_id)[0][0] == 0
