"""Decisions of parallel blocks and foreach: the child executions a fan-out starts, when a
block is decided, and what its join hands to the next state. Pure: the runtime supplies the
children's rows."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from durable_celery import codec
from durable_celery.compiler.ir import State, StateMachine
from durable_celery.engine.decide import RELEASED, Policy, Turn, checkpoint, error_dict, fail, move_on
from durable_celery.engine.statuses import TERMINAL, ExecutionStatus
from durable_celery.engine.transitions import StepResultError, interpret_result, queue_of
from durable_celery.engine.values import Checkpoint, Message, Outcome, Snapshot
from durable_celery.errors import ChildFailed, ContextNotSerializable, InvalidInput

#: Child statuses that count as a failed branch or iteration.
FAILED = frozenset({ExecutionStatus.FAILED, ExecutionStatus.CANCELLED, ExecutionStatus.COMPENSATED,
                    ExecutionStatus.COMPENSATION_FAILED})


def fails_fast(state: State | None) -> bool:
    """Whether one failed child decides the block: fail_fast parallels, and every foreach."""
    return state is None or state.kind == "foreach" or state.on_error == "fail_fast"


def decided(statuses: Sequence[str], fail_fast: bool) -> bool:
    """A block is decided when every child finished, or (failing fast) one of them failed."""
    return all(s in TERMINAL for s in statuses) or (fail_fast and any(s in FAILED for s in statuses))


def park(snap: Snapshot, state: State, loops: Mapping[str, int], turn: Turn) -> Checkpoint:
    """Wait for the block's children, standing on the fan-out state itself (it may have been
    reached through routing), so a finishing child reads the block's on_error from it."""
    values = {**RELEASED, "status": ExecutionStatus.WAITING.value, "current_node": state.id,
              "node_shape": state.shape, "loops": dict(loops) or None}
    return checkpoint(snap, Outcome.WAITING, values)


def spawn(machine: StateMachine, snap: Snapshot, state: State, ctx: dict[str, Any], loops: dict[str, int],
          turn: Turn, policy: Policy) -> Checkpoint:
    """Start the block: insert its children (up to its concurrency runnable) and wait for them."""
    try:
        rows = _children(machine, snap, state, ctx, turn)
    except Exception as exc:  # items(ctx) raised, or returned something unusable
        return fail(machine, snap, error_dict(exc, state.id), turn.now)
    if not rows:  # a foreach over no items
        result = ctx if state.concurrency == 1 else {**ctx, "__results__": []}
        return move_on(machine, snap, state, state.next, result, codec.encode(result), loops, None, turn, policy)
    messages = tuple(Message(r["id"], 0, r["workflow"], r["current_node"], queue_of(machine, r["current_node"], r["queue"]),
                             r["priority"]) for r in rows if r["ready_at"] is not None)
    waiting = park(snap, state, loops, turn)
    return checkpoint(snap, Outcome.WAITING, waiting.values, children=tuple(rows), messages=messages)


def _children(machine: StateMachine, parent: Snapshot, state: State, ctx: dict[str, Any],
              turn: Turn) -> list[dict[str, Any]]:
    if state.kind == "parallel":
        specs = [(key, entry, parent.item) for key, entry in state.branches]
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
    now = turn.now
    return [{
        "id": str(uuid.uuid4()), "workflow": parent.workflow, "version": machine.version,
        "status": ExecutionStatus.PENDING.value, "queue": parent.queue, "priority": parent.priority,
        # input: what the workflow was started with (context.workflow_input() in a branch)
        "input": parent.input, "context": parent.context, "current_node": entry,
        "node_shape": machine.states[entry].shape, "attempt": 1, "seq": 0, "entered_seq": 0, "kind": kind,
        "parent_id": parent.id, "root_id": parent.top, "parent_seq": parent.entered_seq, "branch_key": key,
        "branch_index": i, "item": item, "ready_at": now if i < runnable else None,
        "dispatched_at": now if i < runnable else None, "created_at": now, "updated_at": now,
        # its step attempts' spans join the parent's execution span (one trace)
        "trace_context": parent.trace_context,
    } for i, (key, entry, item) in enumerate(specs)]


def _outcome(child: Mapping[Any, Any]) -> list[Any]:
    if child["status"] == ExecutionStatus.COMPLETED:
        return ["ok", codec.decode(child["context"])]
    error = child["error"] or {}
    return ["error", {"type": error.get("type"), "message": error.get("message"), "step": error.get("step")}]


def join(machine: StateMachine, snap: Snapshot, state: State, ctx: dict[str, Any], loops: dict[str, int],
         children: Sequence[Mapping[Any, Any]], turn: Turn, policy: Policy) -> Checkpoint:
    """The block is decided: fail it (a failed child under fail_fast or in a foreach), or move on
    with the results (``into`` deciding, when given)."""
    failed = [c for c in children if c["status"] in FAILED]
    if failed and fails_fast(state):
        first = failed[0]
        message = (first["error"] or {}).get("message", first["status"])
        error = error_dict(ChildFailed(state.id, first["branch_key"], message), (first["error"] or {}).get("step"))
        return fail(machine, snap, error, turn.now)
    if state.kind == "foreach":
        if state.concurrency == 1:
            result = codec.decode(children[-1]["context"])
        else:
            result = {**ctx, "__results__": [_outcome(c) for c in children]}
    else:
        results = {c["branch_key"]: _outcome(c) for c in children}
        if state.into is None:
            result = {**ctx, "__results__": results}
        else:
            try:
                result = state.into(ctx, results)
            except Exception as exc:
                return fail(machine, snap, error_dict(exc, state.id), turn.now)
    return _advance(machine, snap, state, result, loops, turn, policy)


def _advance(machine: StateMachine, snap: Snapshot, state: State, result: Any, loops: dict[str, int], turn: Turn,
             policy: Policy) -> Checkpoint:
    try:
        next_id, new_ctx = interpret_result(machine, state, result)
        encoded = codec.encode(new_ctx)
    except StepResultError as exc:
        return fail(machine, snap, error_dict(exc, state.id), turn.now)
    except codec.Unencodable as exc:
        return fail(machine, snap, error_dict(ContextNotSerializable(state.id, exc.path, exc.type_name), state.id),
                    turn.now)
    return move_on(machine, snap, state, next_id, new_ctx, encoded, loops, None, turn, policy)
