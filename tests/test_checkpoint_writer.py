"""The checkpoint writer on Postgres, without workers: each decided checkpoint is one fenced
transaction (one statement where it touches only the row, the attempt and, for a workflow that
completes, its open waits), and a stale writer writes nothing."""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection, RowMapping

from durable_celery.engine import decide, fanout
from durable_celery.engine.statuses import ExecutionStatus
from durable_celery.engine.values import Outcome, Snapshot, StepOutcome, StepResult
from durable_celery.runtime.commit import snapshot
from durable_celery.state.checkpoint import _advance_with_attempt, write_checkpoint
from durable_celery.state.children import TakeNext
from durable_celery.state.executions import claim_txn, peek_txn
from tests.conftest import Project

Factory = Callable[..., Project]


def claimed_at_start(p: Project, conn: Connection, execution_id: str, token: str, now: datetime) -> RowMapping:
    """A new execution claimed by worker ``token`` at its first step: the start leased the row to
    its first message, and the claim takes that lease over."""
    handed = conn.execute(text(f'SELECT lease_owner FROM "{p.prefix}".workflow_executions WHERE id = :id'),
                          {"id": execution_id}).scalar()
    row = claim_txn(conn, execution_id, 0, token, now, now + timedelta(seconds=60), handed)
    assert row is not None
    return row


def claimed_with_open_wait(p: Project, kind: str, names: list[str]) -> tuple[str, Snapshot, datetime]:
    """A `noop` execution claimed by worker w1 at its first step, with a pending wait of ``kind``."""
    d = p.durable
    execution_id = d.start("noop", {})
    now = d.clock.now()
    with d.db.begin() as conn:
        row = claimed_at_start(p, conn, execution_id, "w1", now)
        conn.execute(text(f'INSERT INTO "{p.prefix}".waits (execution_id, entered_seq, idx, step_name, kind, names, '
                          "status, created_at) VALUES (:id, 0, 0, 'noop_0', :kind, :names, 'pending', now())"),
                     {"id": execution_id, "kind": kind, "names": json.dumps(names)})
    assert row is not None
    return execution_id, snapshot(row), now


def test_a_workflow_completing_closes_its_open_waits_in_the_same_statement(project_factory: Factory) -> None:
    p = project_factory("redis")
    d = p.durable
    # Given an execution at its last step, claimed by a worker, with a wait left open (a call
    # that timed out leaves its child's wait pending)
    execution_id, snap, now = claimed_with_open_wait(p, "child", [])
    attempt = decide.attempt_record(snap, "noop_0", StepResult(StepOutcome.SUCCEEDED, value={}), now, "w1", output={})
    done = decide.complete(snap, {}, attempt, now)
    assert done.completes_alone and not done.simple
    # When the completing checkpoint is written
    written = write_checkpoint(d.db, d.registry.get("noop"), snap, "w1", done, now)
    # Then the row completed, its attempt is recorded and the wait closed, together
    assert written is not None and written.outcome is Outcome.COMPLETED
    with d.db.connect() as conn:
        final = peek_txn(conn, execution_id)
    assert final is not None and final["status"] == "completed" and final["seq"] == 1
    assert p.sql("SELECT status FROM {schema}.waits WHERE execution_id = :id", id=execution_id) == [("cancelled",)]
    assert p.sql("SELECT step_name, status FROM {schema}.step_executions WHERE execution_id = :id",
                 id=execution_id) == [("noop_0", "completed")]
    # And the same checkpoint written again (a stale worker) writes nothing
    assert write_checkpoint(d.db, d.registry.get("noop"), snap, "w1", done, now) is None
    assert p.sql("SELECT count(*) FROM {schema}.step_executions WHERE execution_id = :id", id=execution_id) == [(1,)]


def test_a_stale_writer_leaves_a_pending_wait_of_another_visit_alone(project_factory: Factory) -> None:
    p = project_factory("redis")
    d = p.durable
    execution_id, snap, now = claimed_with_open_wait(p, "event", ["go"])
    attempt = decide.attempt_record(snap, "noop_0", StepResult(StepOutcome.SUCCEEDED, value={}), now, "w2", output={})
    # A worker whose lease is not the row's (w2) completes nothing, and closes no wait
    assert write_checkpoint(d.db, d.registry.get("noop"), snap, "w2", decide.complete(snap, {}, attempt, now),
                            now) is None
    assert p.sql("SELECT status FROM {schema}.waits WHERE execution_id = :id", id=execution_id) == [("pending",)]
    with d.db.connect() as conn:
        assert conn.execute(text(f'SELECT status FROM "{p.prefix}".workflow_executions WHERE id = :id'),
                            {"id": execution_id}).scalar() == "running"


def updates_written(p: Project, snap: Snapshot, token: str, cp: decide.Checkpoint, now: datetime) -> tuple[int, int]:
    """Write ``cp``'s row and attempt in one transaction: how many rows of `workflow_executions` it
    updated, and how many of those in place (HOT), as Postgres counts them in that transaction."""
    counts = text("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables "
                  "WHERE schemaname = :schema AND relname = 'workflow_executions'")
    with p.durable.db.begin() as conn:
        # (the backend's counts not flushed yet, of earlier transactions, show here too: a difference)
        before = conn.execute(counts, {"schema": p.prefix}).one()
        assert _advance_with_attempt(conn, snap, token, {**cp.values, "updated_at": now}, cp.attempt)
        after = conn.execute(counts, {"schema": p.prefix}).one()
    return after[0] - before[0], after[1] - before[1]


def test_a_continuation_checkpoint_is_a_hot_update_that_writes_no_index(project_factory: Factory) -> None:
    p = project_factory("redis")
    d = p.durable
    machine = d.registry.get("noop")
    # Given a `noop` execution claimed at its first step
    execution_id, snap, now = claimed_with_open_wait(p, "event", ["go"])
    # When the step's checkpoint keeps the lease to run the next step in the same task (continuation)
    located = decide.locate(machine, snap, decide.Turn(now, snap.queue, may_continue=True))
    assert isinstance(located, decide.Run)
    policy = decide.Policy(dispatch_mode="continuation", handoff_ttl=15.0)
    cp = decide.after_step(machine, snap, located, StepResult(StepOutcome.SUCCEEDED, value={"n": 1}),
                           decide.Turn(now, snap.queue, may_continue=True, handoff="h1"), policy)
    assert cp.keep_lease and cp.values["current_node"] == "noop_1"
    # Then Postgres updates the row in place (HOT): the step it moved to, its context and its
    # attempt counter are in no index, so no index of the table gets an entry
    assert updates_written(p, snap, "w1", cp, now) == (1, 1)


def test_a_per_step_checkpoint_after_a_handed_step_is_a_hot_update_too(project_factory: Factory) -> None:
    p = project_factory("redis")
    d = p.durable
    machine = d.registry.get("noop")
    ttl = d.settings.handoff_ttl
    policy = decide.Policy(dispatch_mode="per_step", handoff_ttl=ttl)
    # Given a `noop` execution whose first step ran from the lease its start handed to its message
    execution_id = d.start("noop", {})
    with d.db.connect() as conn:
        row = peek_txn(conn, execution_id)
    assert row is not None
    first = dataclasses.replace(snapshot(row), status=ExecutionStatus.RUNNING)
    grid = ttl / decide.HANDOFF_GRID  # two steps within one quarter of the lease
    now = datetime.fromtimestamp((int(d.clock.now().timestamp() / grid) + 1) * grid + grid / 4, tz=timezone.utc)

    def handed_over(snap: Snapshot, at: datetime, token: str) -> decide.Checkpoint:
        turn = decide.Turn(at, snap.queue, handoff=token)
        located = decide.locate(machine, snap, turn)
        assert isinstance(located, decide.Run)
        return decide.after_step(machine, snap, located, StepResult(StepOutcome.SUCCEEDED, value={}), turn, policy)

    done = handed_over(first, now, "h2")
    assert write_checkpoint(d.db, machine, first, str(first.lease_owner), done, now) is not None
    # When the step it handed over checkpoints in turn, handing over to the third
    second = first.after(done)
    then = now + timedelta(seconds=grid / 2)
    cp = handed_over(second, then, "h3")
    assert cp.values["lease_expires_at"] == done.values["lease_expires_at"]
    # Then the row is updated in place: the new lease's token and the step it stands on are in
    # no index, and its expiry, on the lease index, is the same quarter's
    assert updates_written(p, second, "h2", cp, then) == (1, 1)


def branches_leased(p: Project) -> tuple[str, list[Snapshot], datetime]:
    """A `fanout` execution waiting for its parallel block (two branches), each branch leased to
    a worker of its own (b0, b1) at its first step."""
    d = p.durable
    machine = d.registry.get("fanout")
    execution_id = d.start("fanout", {"id": 7})
    now = d.clock.now()
    with d.db.begin() as conn:
        parent = snapshot(claimed_at_start(p, conn, execution_id, "p1", now))
    block = next(s for s in machine.states.values() if s.kind == "parallel")
    spawned = fanout.spawn(machine, parent, block, {"id": 7}, {}, decide.Turn(now, parent.queue), decide.Policy())
    assert write_checkpoint(d.db, machine, parent, "p1", spawned, now) is not None
    branches = []
    with d.db.begin() as conn:
        ids = [r[0] for r in conn.execute(text(f'SELECT id FROM "{p.prefix}".workflow_executions '
                                                "WHERE parent_id = :id ORDER BY branch_index"), {"id": execution_id})]
        for i, branch_id in enumerate(ids):
            leased = claim_txn(conn, branch_id, 0, f"b{i}", now, now + timedelta(seconds=60))
            assert leased is not None
            branches.append(snapshot(leased))
    return execution_id, branches, now


def ended(p: Project, branch: Snapshot, how: str, now: datetime) -> decide.Checkpoint:
    """The checkpoint that ends ``branch``'s only step: it completes, or fails for good."""
    result = StepResult(StepOutcome.SUCCEEDED, value={}) if how == "completes" else \
        StepResult(StepOutcome.FAILED, error={"type": "RuntimeError", "message": "down", "step": None})
    attempt = decide.attempt_record(branch, str(branch.current_node), result, now, "w", output={})
    if how == "completes":
        return decide.complete(branch, {}, attempt, now)
    return decide.fail(p.durable.registry.get("fanout"), branch, result.error, now, attempt=attempt)


def side_by_side(*calls: Callable[[], Any]) -> list[Any]:
    """Run ``calls`` in threads of their own, released at the same moment; their results."""
    start = threading.Barrier(len(calls))

    def released(call: Callable[[], Any]) -> Any:
        start.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(released, calls))


@pytest.mark.parametrize("first,second", [("completes", "completes"), ("fails", "completes")])
def test_of_the_last_two_branches_ending_side_by_side_exactly_one_wakes_the_parent(
        project_factory: Factory, first: str, second: str) -> None:
    p = project_factory("redis")
    d = p.durable
    machine = d.registry.get("fanout")
    for _ in range(8):  # each round a new block: the two ends race differently each time
        # Given a complete_all block whose two branches are both running
        execution_id, branches, now = branches_leased(p)
        checkpoints = [ended(p, b, how, now) for b, how in zip(branches, (first, second))]
        # When both end at the same moment, each in its own worker's transaction
        written = side_by_side(*(functools.partial(write_checkpoint, d.db, machine, b, f"b{i}", cp, now)
                                 for i, (b, cp) in enumerate(zip(branches, checkpoints))))
        # Then both ends are written, and exactly one of them woke the parent, once
        assert all(w is not None for w in written)
        woken = [row for w in written for row in w.rows]
        assert [row["id"] for row in woken] == [execution_id]
        assert p.sql("SELECT status FROM {schema}.workflow_executions WHERE id = :id", id=execution_id) == [("running",)]


def test_the_branch_that_ends_its_block_may_take_the_parent_and_join_in_its_own_task(project_factory: Factory) -> None:
    p = project_factory("redis")
    d = p.durable
    machine = d.registry.get("fanout")
    # Given a block whose first branch has completed
    execution_id, branches, now = branches_leased(p)
    assert write_checkpoint(d.db, machine, branches[0], "b0", ended(p, branches[0], "completes", now), now) is not None
    # When the last one completes, its worker offering to run what its end makes runnable
    take = TakeNext("b1", now + timedelta(seconds=60), branches[1].queue)
    last = write_checkpoint(d.db, machine, branches[1], "b1", ended(p, branches[1], "completes", now), now, take=take)
    # Then the parent is leased to that worker, at its next seq, with nothing to publish
    assert last is not None and last.rows == () and last.claimed is not None
    assert last.claimed["id"] == execution_id and last.claimed["lease_owner"] == "b1"
    assert p.sql("SELECT status, lease_owner, ready_at FROM {schema}.workflow_executions WHERE id = :id",
                 id=execution_id) == [("running", "b1", None)]
    # And a worker on another queue is not offered it: the parent is published instead
    execution_id, branches, now = branches_leased(p)
    assert write_checkpoint(d.db, machine, branches[0], "b0", ended(p, branches[0], "completes", now), now) is not None
    elsewhere = TakeNext("b1", now + timedelta(seconds=60), "another-queue")
    last = write_checkpoint(d.db, machine, branches[1], "b1", ended(p, branches[1], "completes", now), now,
                            take=elsewhere)
    assert last is not None and last.claimed is None and [row["id"] for row in last.rows] == [execution_id]
