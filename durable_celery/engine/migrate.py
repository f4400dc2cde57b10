"""Moving in-flight executions onto the deployed definition (``migrate_executions``): which
mappings are valid, which executions may move, and what a move writes. Pure functions; the
state layer (``state/moves.py``) locks the row and writes the :class:`Move` in one transaction.

A move puts an execution that stands on node ``old`` of an earlier version on state ``new`` of
the current machine, at the current version. Two ways (docs/migrating-executions.md):

- *continue* (the default): ``new`` is the same step under its new definition (renamed, its
  options or successors changed). It continues the step's visit: ``entered_seq`` is kept, so the
  step's journal (waits it passed, children it called, values it recorded) replays on ``new``
  and its pending waits stay. A waiting execution stays waiting; a failed one is re-opened.
- *restart* (``restart_step=True``): ``new`` starts afresh, a new visit whose journal is empty;
  the old visit's pending waits are cancelled. For mapping onto another step (one added before
  the wait, say). Whatever the old visit did is not replayed.

Anything not waiting, failed or idle (an execution whose step holds a lease: running, or a
message carrying its lease) is never touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from durable_celery.clock import as_utc
from durable_celery.compiler.ir import ROUTING, StateMachine
from durable_celery.engine.statuses import MIGRATED_STEP, ExecutionStatus, StepStatus, check_move, check_reopen
from durable_celery.engine.transitions import queue_of
from durable_celery.engine.values import Message
from durable_celery.errors import InvalidInput

#: Why an execution was not moved (``MigrationSkip.reason`` starts with one of these).
RUNNING = "running"
NOT_MAPPED = "not on a mapped node"
CURRENT = "already on the current version"
LOCKED = "locked or changed meanwhile"
NOT_FOUND = "not found"
OTHER_WORKFLOW = "another workflow"
NOT_TOP_LEVEL = "a branch or iteration (it moves with its execution)"
NOT_MOVABLE = "not waiting, idle or failed with DefinitionChanged"
CALLED = "a failed child workflow (its caller has seen it fail)"

#: Statuses an execution may move from: waiting, idle (no lease), and failed (with DefinitionChanged)
MOVABLE = frozenset({ExecutionStatus.WAITING, ExecutionStatus.PENDING, ExecutionStatus.RUNNING,
                     ExecutionStatus.FAILED})


@dataclass(frozen=True)
class Move:
    """What moving one execution writes, fenced on its ``seq`` (the writer bumps it): the row's
    new ``values``, the history row (``step_executions``, step ``$migrated``), what happens to the
    waits of its visit, and the step message to publish after commit (None: it stays waiting, or
    the tick dispatches it when due)."""

    values: Mapping[str, Any]
    record: Mapping[str, Any]
    #: cancel the old visit's pending waits (restart)
    close_waits: bool
    #: the waits of the visit that the failure cancelled become pending again (re-open, continue)
    reopen_waits: bool
    message: Message | None


def check_mapping(machine: StateMachine, mapping: Any) -> dict[str, str]:
    """The mapping as a dict, or ``InvalidInput``: each key a node id (a string), each target a
    state of ``machine`` an execution can stand on: a step, decision, parallel or foreach state
    at top level, not a routing state (branch, loop test: they are resolved, never stood on),
    nor the end, nor a state inside a parallel branch or foreach body."""
    if not isinstance(mapping, Mapping) or not mapping:
        raise InvalidInput(f"mapping must be a non-empty dict of old node id -> new state id, got {mapping!r}")
    checked: dict[str, str] = {}
    for old, new in mapping.items():
        if not isinstance(old, str) or not old or not isinstance(new, str) or not new:
            raise InvalidInput(f"mapping entries must be non-empty strings, got {old!r}: {new!r}")
        state = machine.state(new)
        known = ", ".join(s.id for s in machine.states.values() if s.kind not in ROUTING and not s.region)
        if state is None:
            raise InvalidInput(f"mapping {old!r} -> {new!r}: workflow {machine.workflow!r} has no state {new!r} "
                               f"in its deployed definition (states: {known})")
        if state.kind in ROUTING:
            raise InvalidInput(f"mapping {old!r} -> {new!r}: {new!r} is a {state.kind} state, which only routes "
                               f"(no execution stands on it); map to a step (states: {known})")
        if state.region:
            raise InvalidInput(f"mapping {old!r} -> {new!r}: {new!r} is inside a parallel branch or foreach body; "
                               "an execution can only be moved to a top-level state")
        checked[old] = new
    return checked


def skip_reason(machine: StateMachine, row: Mapping[Any, Any], mapping: Mapping[str, str]) -> str | None:
    """Why the execution ``row`` (a ``workflow_executions`` row) cannot move, or None if it can."""
    if row["workflow"] != machine.workflow:
        return f"{OTHER_WORKFLOW} ({row['workflow']})"
    if row["kind"] != "workflow":
        return NOT_TOP_LEVEL
    if row["current_node"] not in mapping:
        return f"{NOT_MAPPED} (stands on {row['current_node']!r})" if row["current_node"] else NOT_MAPPED
    if row["version"] == machine.version:
        return CURRENT
    status = ExecutionStatus(row["status"])
    if status not in MOVABLE:
        return f"{NOT_MOVABLE} ({status.value})"
    if status is ExecutionStatus.FAILED:
        error = row["error"] or {}
        if error.get("type") != "DefinitionChanged" or error.get("step") != row["current_node"]:
            return f"{NOT_MOVABLE} (failed with {error.get('type')})"
        if row["parent_id"] is not None:
            return CALLED
    elif row["lease_owner"] is not None:
        # a step in flight, or a message carrying its lease: its step may run any moment
        return RUNNING
    return None


def decide_move(machine: StateMachine, row: Mapping[Any, Any], mapping: Mapping[str, str], now: datetime, *,
                restart_step: bool = False) -> Move | str:
    """The :class:`Move` of one execution (its row locked by the caller), or why it cannot move."""
    reason = skip_reason(machine, row, mapping)
    if reason is not None:
        return reason
    old, new = row["current_node"], mapping[row["current_node"]]
    state = machine.states[new]
    status = ExecutionStatus(row["status"])
    seq = row["seq"]
    values: dict[str, Any] = {"current_node": new, "node_shape": state.shape, "version": machine.version,
                              "lost_leases": 0, "redispatches": 0, "slot": None, "slot_key": None, "updated_at": now}
    if restart_step:
        values.update(entered_seq=seq + 1, attempt=1)
    message = None
    reopened = status is ExecutionStatus.FAILED
    # a waiting execution that continues its step waits on, for what the step waits for: the
    # wake-up runs ``new``; anything else runs ``new`` now (or when it is due)
    if restart_step or status is not ExecutionStatus.WAITING:
        target = ExecutionStatus.PENDING if status is ExecutionStatus.PENDING else ExecutionStatus.RUNNING
        if reopened:
            check_reopen(status, target)
            values.update(error=None, completed_at=None, stopping=None, stop_status=None, compensation_plan=None)
        elif status is not target:
            check_move(status, target)
        # an idle execution due later (a scheduled start, a retry's backoff) keeps its time
        due = row["ready_at"] if status in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING) else None
        ready = as_utc(due) if due is not None and as_utc(due) > now else now
        values.update(status=target.value, ready_at=ready, dispatched_at=now if ready <= now else None,
                      lease_owner=None, lease_expires_at=None, step_started_at=None)
        if ready <= now:
            message = Message(row["id"], seq + 1, machine.workflow, new, queue_of(machine, new, row["queue"]),
                              row["priority"])
    facts = {"from": old, "from_version": row["version"], "to": new, "to_version": machine.version,
             "from_status": status.value, "restarted": restart_step, "reopened": reopened}
    record = {"execution_id": row["id"], "seq": seq, "step_name": MIGRATED_STEP, "attempt": 1,
              "status": StepStatus.COMPLETED.value, "started_at": now, "completed_at": now, "duration_ms": 0,
              "input": row["context"], "output": facts, "error": None, "logs": None, "worker": "migrate_executions",
              "is_compensation": False, "compensation_for": None}
    return Move(values, record, close_waits=restart_step, reopen_waits=reopened and not restart_step,
                message=message)
