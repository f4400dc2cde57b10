"""A lease handed over with the step's message (per-step mode): the next step runs without a
claim, and the tick takes back a lease whose message was lost or came too late, without
counting a lost worker against the step. Real workers, beat and Redis."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from durable_celery.state.executions import claim_txn, release_leases_txn, take_expired_leases_txn
from tests.conftest import Project
from tests.test_faults import completed_rows, run_killed_after_first_checkpoint

Factory = Callable[..., Project]


def test_a_handed_lease_whose_message_was_lost_is_taken_back_without_counting_a_lost_worker(
        project_factory: Factory, tmp_path: Path) -> None:
    # One lost worker fails a step (max_lost_leases=1); the handed lease lasts 10 s (its minimum)
    p = project_factory("redis", stale_lock_timeout=60, redispatch_after=1, max_lost_leases=1)
    # Given a worker that dies right after the checkpoint of `first` handed `second` its lease,
    # before the message carrying it was published
    execution_id, execution = run_killed_after_first_checkpoint(p, tmp_path)
    # Then the tick took the lease back and re-sent `second`: the workflow completed, no step failed
    assert execution.status == "completed", execution.error
    assert [(s.step_name, s.status) for s in execution.steps] == [
        ("first", "completed"), ("second", "completed"), ("third", "completed")]
    assert p.effects(execution_id) == {"first": 1, "second": 1, "third": 1}


def test_messages_that_waited_in_a_backlog_past_their_handed_lease_still_run_each_step_once(
        project_factory: Factory) -> None:
    # Leases handed for 3 s (stale_lock_timeout); one lost worker would fail a step
    p = project_factory("redis", max_lost_leases=1)
    p.beat()
    # Given a backlog far longer than a handed lease: 16 executions of 0.3 s steps on one process
    ids = [p.durable.start("pipeline", {"second_sleep": 0.3}) for _ in range(16)]
    p.worker(concurrency=1)
    # When messages reach their task late (the tick took their leases back and re-sent them)
    executions = [p.wait(execution_id, timeout=90) for execution_id in ids]
    # Then every execution completed, each step ran and was checkpointed once, no worker counted lost
    assert [e.status for e in executions] == ["completed"] * len(ids)
    for execution_id in ids:
        assert p.effects(execution_id) == {"first": 1, "second": 1, "third": 1}
        assert completed_rows(p, execution_id) == {"first": 1, "second": 1, "third": 1}
    assert p.sql("SELECT count(*) FROM {schema}.step_executions WHERE status <> 'completed'")[0][0] == 0


def test_a_start_leases_the_execution_to_its_first_message_which_records_when_it_started(
        project_factory: Factory) -> None:
    p = project_factory("redis")
    # Given a start with no worker running: its row is leased to its first message, still pending
    execution_id = p.durable.start("pipeline", {})
    [(status, leased, ready_at, started_at)] = p.sql(
        "SELECT status, lease_owner IS NOT NULL, ready_at, started_at FROM {schema}.workflow_executions "
        "WHERE id = :id", id=execution_id)
    assert (status, leased, ready_at, started_at) == ("pending", True, None, None)
    # When a worker takes the message
    p.worker()
    execution = p.wait(execution_id)
    # Then the first step ran from the handed lease, and the execution says when it started
    assert execution.status == "completed" and p.effects(execution_id) == {"first": 1, "second": 1, "third": 1}
    assert execution.started_at is not None and execution.started_at == execution.steps[0].started_at


def test_a_late_message_cannot_take_over_a_handed_lease_the_tick_found_expired(project_factory: Factory) -> None:
    # Given a start whose lease, handed to its message, has expired, and a tick that found it so
    p = project_factory("redis")
    execution_id = p.durable.start("pipeline", {})
    [(handed, expires_at)] = p.sql("SELECT lease_owner, lease_expires_at FROM {schema}.workflow_executions "
                                   "WHERE id = :id", id=execution_id)
    later = expires_at + timedelta(seconds=1)
    with p.durable.db.begin() as conn:
        expired = take_expired_leases_txn(conn, later, 500, "tick")
    assert [(r["id"], r["lease_owner"]) for r in expired] == [(execution_id, "tick")]
    # When the late message tries to take its lease over before the tick releases it
    with p.durable.db.begin() as conn:
        taken = claim_txn(conn, execution_id, 0, "late-message", later, later + timedelta(seconds=3), handed)
    with p.durable.db.begin() as conn:
        released = release_leases_txn(conn, expired, later)
    # Then the lease is the tick's: the message finds it gone, and the tick re-dispatches the step once
    assert taken is None
    assert [r["id"] for r in released] == [execution_id]
    assert p.sql("SELECT lease_owner, lost_leases FROM {schema}.workflow_executions WHERE id = :id",
                 id=execution_id) == [(None, 0)]


def test_a_tick_releases_only_the_leases_it_still_holds(project_factory: Factory) -> None:
    # Given two ticks that found the same lease expired, one after the other
    p = project_factory("redis")
    execution_id = p.durable.start("pipeline", {})
    [(expires_at,)] = p.sql("SELECT lease_expires_at FROM {schema}.workflow_executions WHERE id = :id",
                            id=execution_id)
    later = expires_at + timedelta(seconds=1)
    with p.durable.db.begin() as conn:
        first = take_expired_leases_txn(conn, later, 500, "first-tick")
    with p.durable.db.begin() as conn:
        second = take_expired_leases_txn(conn, later, 500, "second-tick")
    # Then only the later one releases it (one re-dispatch, not two)
    with p.durable.db.begin() as conn:
        assert release_leases_txn(conn, first, later) == []
        assert [r["id"] for r in release_leases_txn(conn, second, later)] == [execution_id]
