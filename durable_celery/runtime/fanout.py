"""Parallel blocks and foreach: the parent's side of a fan-out.

On its first visit to a parallel or foreach state the parent inserts one child execution per
branch or item (up to ``concurrency`` runnable, the rest parked) and waits, in one checkpoint.
Children run on any worker, each step checkpointed as usual. When the block is decided (every
child finished, or one failed) the parent is woken, and this join collects the children's
results in order, applies ``into``, and moves on — durably, with no chord to lose.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, RowMapping

from durable_celery import codec
from durable_celery.compiler.ir import State, StateMachine
from durable_celery.engine.statuses import ExecutionStatus
from durable_celery.errors import ChildFailed, ContextNotSerializable, InvalidInput
from durable_celery.runtime.executor import error_dict
from durable_celery.state.children import FAILED, children_txn, decided, insert_children_txn
from durable_celery.state.executions import advance_txn, cancel_tree_txn
from durable_celery.state.waits import lock_leased_txn

if TYPE_CHECKING:
    from durable_celery.runtime.runner import Runner, _Lease


def fan_out(runner: Runner, lease: _Lease, machine: StateMachine, state: State, ctx: dict[str, Any]) -> str:
    """Start the block's children, keep waiting for them, or join them."""
    durable = runner.durable
    row = lease.row
    # Stand on the fan-out state itself (it may have been reached through routing states), so a
    # finishing child reads the block's on_error from its parent's current node.
    waiting = {"status": ExecutionStatus.WAITING.value, "lease_owner": None, "lease_expires_at": None,
               "step_started_at": None, "ready_at": None, "updated_at": durable.clock.now(),
               "current_node": state.id, "node_shape": state.shape, "loops": lease.loops or None}
    with durable.db.begin() as conn:
        if lock_leased_txn(conn, row["id"], row["seq"], lease.token) is None:
            return "lease-lost"
        children = children_txn(conn, row["id"], row["entered_seq"])
        # Decide and wait under the parent's lock: a child finishing now waits for this commit,
        # then finds the parent waiting and wakes it.
        if children and not decided(children, fails_fast(state)):
            advance_txn(conn, row["id"], row["seq"], lease.token, waiting)
            return "waiting"
    if children:
        return _join(runner, lease, machine, state, ctx, children)
    try:
        rows = _children_rows(durable.clock.now(), row, machine, state, ctx)
    except Exception as exc:  # items(ctx) raised, or returned something unusable
        return runner.fail(lease, error_dict(exc, state.id))
    if not rows:  # a foreach over no items
        return runner.advance(lease, machine, state, ctx if state.concurrency == 1 else {**ctx, "__results__": []})
    ok = runner.commit(lease, waiting, None, also=lambda conn: insert_children_txn(conn, rows))
    return "waiting" if ok else "lease-lost"


def fails_fast(state: State | None) -> bool:
    """Whether one failed child decides the block: fail_fast parallels, and every foreach."""
    return state is None or state.kind == "foreach" or state.on_error == "fail_fast"


def _children_rows(now: datetime, parent: Mapping[str, Any], machine: StateMachine, state: State,
                   ctx: dict[str, Any]) -> list[dict[str, Any]]:
    encoded_ctx = parent["context"]
    if state.kind == "parallel":
        specs = [(key, entry, parent["item"]) for key, entry in state.branches]
        kind, runnable = "branch", len(specs)
    else:
        assert state.items is not None and state.body is not None
        items = state.items(ctx)
        if not isinstance(items, (list, tuple)):
            raise InvalidInput(f"foreach {state.id!r}: items(ctx) must return a list, got {type(items).__name__}")
        specs = []
        for i, item in enumerate(items):
            try:
                specs.append((str(i), state.body, codec.encode(item)))
            except codec.Unencodable as exc:
                raise ContextNotSerializable(state.id, f"items[{i}]{'.' + exc.path if exc.path else ''}",
                                             exc.type_name) from None
        kind = "sequence" if state.concurrency == 1 else "iteration"
        runnable = state.concurrency
    return [{
        "id": str(uuid.uuid4()), "workflow": parent["workflow"], "version": machine.version,
        "status": ExecutionStatus.PENDING.value, "queue": parent["queue"], "priority": parent["priority"],
        # input: what the workflow was started with (context.workflow_input() in a branch)
        "input": parent["input"], "context": encoded_ctx, "current_node": entry, "node_shape": machine.states[entry].shape,
        "attempt": 1, "seq": 0, "entered_seq": 0, "kind": kind, "parent_id": parent["id"],
        "root_id": parent["root_id"] or parent["id"], "parent_seq": parent["entered_seq"], "branch_key": key,
        "branch_index": i, "item": item, "ready_at": now if i < runnable else None,
        "dispatched_at": now if i < runnable else None, "created_at": now, "updated_at": now,
    } for i, (key, entry, item) in enumerate(specs)]


def _outcome(child: RowMapping) -> list[Any]:
    if child["status"] == ExecutionStatus.COMPLETED:
        return ["ok", codec.decode(child["context"])]
    error = child["error"] or {}
    return ["error", {"type": error.get("type"), "message": error.get("message"), "step": error.get("step")}]


def _join(runner: Runner, lease: _Lease, machine: StateMachine, state: State, ctx: dict[str, Any],
          children: list[RowMapping]) -> str:
    failed = [c for c in children if c["status"] in FAILED]
    if failed and (state.kind == "foreach" or state.on_error == "fail_fast"):
        first = failed[0]
        message = (first["error"] or {}).get("message", first["status"])
        error = error_dict(ChildFailed(state.id, first["branch_key"], message), (first["error"] or {}).get("step"))
        parent_id = lease.row["id"]

        def cancel_rest(conn: Connection) -> list[Any]:
            cancel_tree_txn(conn, parent_id, runner.durable.clock.now(), {"type": "Cancelled", "message":
                            f"a sibling failed in {state.id!r}", "step": None, "traceback": None})
            return []

        return runner.fail(lease, error, also=cancel_rest)
    if state.kind == "foreach":
        if state.concurrency == 1:
            return runner.advance(lease, machine, state, codec.decode(children[-1]["context"]))
        return runner.advance(lease, machine, state, {**ctx, "__results__": [_outcome(c) for c in children]})
    results = {c["branch_key"]: _outcome(c) for c in children}
    if state.into is None:
        return runner.advance(lease, machine, state, {**ctx, "__results__": results})
    try:
        combined = state.into(ctx, results)
    except Exception as exc:
        return runner.fail(lease, error_dict(exc, state.id))
    return runner.advance(lease, machine, state, combined)
