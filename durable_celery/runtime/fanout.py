"""Running a fan-out state (parallel block, foreach): start its children, wait for them, or
join them. What to do is the engine's (:mod:`durable_celery.engine.fanout`); here the
children are read under the parent's lock."""

from __future__ import annotations

from durable_celery.compiler.ir import StateMachine
from durable_celery.engine import fanout as blocks
from durable_celery.engine.decide import Run, Turn
from durable_celery.engine.values import Checkpoint, Outcome, Snapshot
from durable_celery.runtime.commit import Committer, Lease
from durable_celery.state.checkpoint import write_checkpoint_txn
from durable_celery.state.children import children_txn
from durable_celery.state.waits import lock_leased_txn


def step(committer: Committer, machine: StateMachine, snap: Snapshot, lease: Lease, run: Run,
         turn: Turn) -> Checkpoint | Outcome:
    """The checkpoint that starts or joins the block, or how the task ended if it parked the
    execution to wait for the block's children."""
    sv = committer.services
    state = run.state
    loops = dict(run.loops)
    with sv.db.begin() as conn:
        if lock_leased_txn(conn, snap.id, snap.seq, lease.token) is None:
            return Outcome.LEASE_LOST
        children = children_txn(conn, snap.id, snap.entered_seq)
        # Decide and park under the parent's lock: a child finishing now waits for this commit,
        # then finds the parent waiting and wakes it.
        park = None
        if children and not blocks.decided([c["status"] for c in children], blocks.fails_fast(state)):
            park = blocks.park(snap, state, loops, turn)
            written = write_checkpoint_txn(conn, machine, snap, lease.token, park, turn.now)
    if park is not None:
        if written is None:
            written = committer.apply_stop(machine, snap, lease, park)
        if written is None:
            return Outcome.LEASE_LOST
        committer.publish(written)
        return written.outcome
    if children:
        return blocks.join(machine, snap, state, run.ctx, loops, children, turn, sv.policy)
    return blocks.spawn(machine, snap, state, run.ctx, loops, turn, sv.policy)
