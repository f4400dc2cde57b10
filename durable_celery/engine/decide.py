"""The decisions: where an execution goes after a step attempt, a fan-out, a join, a
compensation or a lost worker. Pure functions from (machine, snapshot, what happened, time) to a
:class:`Checkpoint`; the state layer writes it, the runtime publishes its messages.

Every checkpoint records the state that actually ran as ``current_node`` (a branch or loop test
reached at an entry point is resolved once, here), so a retry, a resume or a re-dispatch goes
straight to that step, on that step's queue.
"""

from __future__ import annotations

import dataclasses
import json
import math
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from durable_celery import codec
from durable_celery.compiler.ir import END, JOIN, State, StateMachine
from durable_celery.engine.backoff import retry_delay, should_retry
from durable_celery.engine.statuses import ExecutionStatus, StepStatus, check_move
from durable_celery.engine.transitions import StepResultError, check_shape, interpret_result, queue_of, resolve
from durable_celery.engine.values import Checkpoint, Message, Outcome, Snapshot, StepOutcome, StepResult
from durable_celery.errors import ContextNotSerializable, WorkerLost, WorkflowNotFound, WorkflowTimeout

#: The error type of an execution cancelled because it had not started by its start deadline.
START_DEADLINE_PASSED = "StartDeadlinePassed"
#: The error type of an attempt whose worker died while its execution was stopping.
OUTCOME_UNKNOWN = "OutcomeUnknown"
#: Values that release the lease and leave the execution unscheduled.
RELEASED: Mapping[str, Any] = {"lease_owner": None, "lease_expires_at": None, "step_started_at": None, "ready_at": None}


@dataclass(frozen=True)
class Policy:
    """The engine settings decisions depend on."""

    dispatch_mode: str = "per_step"
    max_countdown: float = 60.0
    stale_lock_timeout: float = 60.0
    #: recorded on each attempt
    worker: str = ""
    #: retries are due at once, their backoff skipped: Celery's eager mode (``task_always_eager``),
    #: where, as with Celery's own eager retries, nothing waits for a countdown
    skip_backoff: bool = False
    #: seconds a lease handed over to the next step's message lasts before the tick takes it back
    #: (``redispatch_after``); None: no handoff (eager mode), the message's task claims instead
    handoff_ttl: float | None = None
    #: controlled queues (docs/queues.md): their steps are claimed through the queue, never handed
    controlled: frozenset[str] = frozenset()
    #: the largest context a step may return (bytes of its JSON); None: no limit
    max_context_bytes: int | None = None


@dataclass(frozen=True)
class Turn:
    """One task's view of its run: the time, the queue it runs on (``None``: unknown), and
    whether its continuation budget allows running another step."""

    now: datetime
    queue: str | None = None
    may_continue: bool = False
    #: a fresh lease token this task may hand over with the next step's message
    handoff: str | None = None


@dataclass(frozen=True)
class Run:
    """The state to run next, its decoded context and the loop counters after routing to it."""

    state: State
    ctx: dict[str, Any]
    loops: Mapping[str, int]


def error_dict(exc: BaseException, step: str | None) -> dict[str, Any]:
    """The stored form of an error: type, message, step and a (bounded) traceback."""
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "step": step,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-8000:],
    }


# -- entering the current node -----------------------------------------------------------------


def locate(machine: StateMachine | None, snap: Snapshot, turn: Turn) -> Run | Checkpoint:
    """The state to run next, or how the execution ends before it: its start deadline passed
    before its first step began, unknown workflow, workflow timeout, a changed definition,
    routing that failed or reached the end. A state reached on a queue other than its own is
    handed over to its queue."""
    if snap.start_deadline_at is not None and snap.start_deadline_at <= turn.now:
        return start_deadline_passed(snap, turn.now)
    if machine is None:
        return fail(None, snap, error_dict(WorkflowNotFound(snap.workflow), None), turn.now)
    if snap.deadline_at is not None and snap.deadline_at <= turn.now:
        return fail(machine, snap, error_dict(WorkflowTimeout(snap.workflow, machine.timeout or 0), None), turn.now)
    loops = dict(snap.loops)
    node = snap.current_node or END
    try:
        if snap.version != machine.version:
            check_shape(machine, node, snap.node_shape)
        ctx = codec.decode(snap.context)
        state_id = resolve(machine, node, ctx, loops)
    except Exception as exc:  # DefinitionChanged, BranchNoMatch, LoopLimitExceeded, or user routing code raised
        return fail(machine, snap, error_dict(exc, node), turn.now)
    if state_id in (END, JOIN):
        return complete(snap, snap.context, None, turn.now)
    state = machine.states[state_id]
    queue = queue_of(machine, state_id, snap.queue)
    if turn.queue is not None and queue != turn.queue:
        return _reroute(machine, snap, state, loops, queue, turn.now)
    return Run(state, ctx, loops)


def start_deadline_passed(snap: Snapshot, now: datetime) -> Checkpoint:
    """Cancel an execution whose first step had not begun by its start deadline (a start
    deadline is only set, ``snap.start_deadline_at``, while it has not: see ``checkpoint``).
    Nothing ran, so there is nothing to compensate and nothing below it to stop."""
    assert snap.start_deadline_at is not None
    values = {**RELEASED, "status": ExecutionStatus.CANCELLED.value, "error": start_deadline_error(snap.start_deadline_at),
              "deadline_at": None, "start_deadline_at": None, "completed_at": now,
              # a claim records a start; this one did not start
              "started_at": None}
    return checkpoint(snap, Outcome.CANCELLED, values)


def start_deadline_error(deadline: datetime) -> dict[str, Any]:
    """The stored error of an execution cancelled by its start deadline."""
    return {"type": START_DEADLINE_PASSED, "step": None, "traceback": None,
            "message": f"cancelled: not started by its start deadline ({deadline.isoformat()})"}


def _reroute(machine: StateMachine, snap: Snapshot, state: State, loops: Mapping[str, int], queue: str,
             now: datetime) -> Checkpoint:
    """Hand ``state`` over to its own queue. Resolving routing starts a visit; re-routing the
    current step keeps its visit (its recorded waits) and attempt."""
    values: dict[str, Any] = {**RELEASED, "current_node": state.id, "node_shape": state.shape,
                              "loops": dict(loops) or None, "ready_at": now, "dispatched_at": now}
    if state.id != snap.current_node:
        values.update(entered_seq=snap.seq + 1, attempt=1, version=machine.version)
    return checkpoint(snap, Outcome.DISPATCHED, values, messages=(_message(snap, state.id, queue),))


# -- after a step attempt ------------------------------------------------------------------------


def after_step(machine: StateMachine, snap: Snapshot, run: Run, result: StepResult, turn: Turn,
               policy: Policy) -> Checkpoint:
    """Decide what a step attempt leads to. (A lost lease is not decided: nothing is written.)"""
    state = run.state
    here = {"current_node": state.id, "node_shape": state.shape, "loops": dict(run.loops) or None}
    if result.outcome is StepOutcome.SUSPENDED:
        values = {**RELEASED, **here, "status": ExecutionStatus.WAITING.value}
        return checkpoint(snap, Outcome.WAITING, values, recheck_waits=True)
    if not result.ok:
        return _failed_attempt(machine, snap, state, result, here, turn.now, policy)
    try:
        next_id, new_ctx = interpret_result(machine, state, result.value)
        encoded = codec.encode(new_ctx)
    except StepResultError as exc:
        return _failed_attempt(machine, snap, state, _unusable(result, exc, state.id), here, turn.now, policy)
    except codec.Unencodable as exc:
        error = ContextNotSerializable(state.id, exc.path, exc.type_name)
        return _failed_attempt(machine, snap, state, _unusable(result, error, state.id), here, turn.now, policy)
    too_large = _too_large(encoded, state.id, policy.max_context_bytes)
    if too_large is not None:
        return _failed_attempt(machine, snap, state, _unusable(result, too_large, state.id), here, turn.now, policy)
    attempt = attempt_record(snap, state.id, result, turn.now, policy.worker, output=encoded)
    return move_on(machine, snap, state, next_id, new_ctx, encoded, dict(run.loops), attempt, turn, policy)


def _too_large(encoded: Any, step: str, limit: int | None) -> ContextNotSerializable | None:
    """The error for a context over ``limit`` bytes of JSON (as stored), else None."""
    if limit is None:
        return None
    size = len(json.dumps(encoded, separators=(",", ":")).encode())
    if size <= limit:
        return None
    return ContextNotSerializable(step, "", "", detail=f"it is {size} bytes of JSON, over max_context_bytes ({limit}); "
                                                       "keep large data elsewhere and a reference to it in the context")


def _unusable(result: StepResult, exc: BaseException, step: str) -> StepResult:
    """A step whose return value cannot be used failed; retrying would return the same."""
    return StepResult(StepOutcome.FAILED, error=error_dict(exc, step), retryable=False, logs=result.logs,
                      duration_ms=result.duration_ms)


def move_on(machine: StateMachine, snap: Snapshot, state: State, next_id: str, ctx: dict[str, Any], encoded: Any,
            loops: dict[str, int], attempt: Mapping[str, Any] | None, turn: Turn, policy: Policy) -> Checkpoint:
    """Go from ``state`` to ``next_id`` with context ``ctx``: resolve routing, then complete,
    keep the lease for the next step (continuation) or hand it over to a message."""
    try:
        target = resolve(machine, next_id, ctx, loops)
    except Exception as exc:  # BranchNoMatch, LoopLimitExceeded, DefinitionChanged, or user routing code
        return fail(machine, snap, error_dict(exc, next_id), turn.now, attempt=attempt, context=encoded)
    if target in (END, JOIN):
        return complete(snap, encoded, attempt, turn.now)
    next_queue = queue_of(machine, target, snap.queue)
    values: dict[str, Any] = {
        "context": encoded, "current_node": target, "node_shape": machine.states[target].shape,
        "version": machine.version, "attempt": 1, "status": ExecutionStatus.RUNNING.value,
        "entered_seq": snap.seq + 1, "loops": loops or None, "lost_leases": 0,
    }
    if policy.dispatch_mode == "continuation" and turn.may_continue and next_queue == turn.queue:
        # The lease's expiry is left alone (the heartbeat renews it): an update that touches no
        # indexed column can stay on its page (a HOT update), the cheapest write Postgres has
        values["step_started_at"] = turn.now
        return checkpoint(snap, Outcome.CONTINUE, values, attempt, keep_lease=True)
    if turn.handoff is not None and policy.handoff_ttl is not None and next_queue not in policy.controlled:
        # The next step's message carries its lease: its task runs without a claim (one commit a step)
        until = handed_until(turn.now, policy.handoff_ttl)
        values.update(RELEASED, lease_owner=turn.handoff, lease_expires_at=until, dispatched_at=turn.now)
        message = dataclasses.replace(_message(snap, target, next_queue), handoff=turn.handoff, handoff_until=until)
        return checkpoint(snap, Outcome.DISPATCHED, values, attempt, messages=(message,))
    values.update(RELEASED, ready_at=turn.now, dispatched_at=turn.now)
    return checkpoint(snap, Outcome.DISPATCHED, values, attempt, messages=(_message(snap, target, next_queue),))


#: a handed lease's expiry is rounded up to a multiple of this share of ``handoff_ttl``
HANDOFF_GRID = 4


def handed_until(now: datetime, ttl: float) -> datetime:
    """When a lease handed to a message expires: ``ttl`` seconds from ``now``, rounded up to the
    next multiple of ``ttl / HANDOFF_GRID`` seconds since the epoch (so at most a quarter later).
    Consecutive steps handed over within that quarter write the same expiry: their checkpoints
    change no indexed column and stay HOT updates (the expiry is in the lease index)."""
    grid = ttl / HANDOFF_GRID
    due = now.timestamp() + ttl
    return datetime.fromtimestamp(math.ceil(due / grid) * grid, tz=timezone.utc)


def _failed_attempt(machine: StateMachine, snap: Snapshot, state: State, result: StepResult,
                    here: Mapping[str, Any], now: datetime, policy: Policy) -> Checkpoint:
    assert state.step is not None
    attempt = attempt_record(snap, state.id, result, now, policy.worker)
    n = snap.attempt
    if not (result.retryable and should_retry(state.step.retry, n)):
        return fail(machine, snap, result.error, now, attempt=attempt, extra=here)
    delay = 0.0 if policy.skip_backoff else retry_delay(state.step.retry, n)
    ready_at = now + timedelta(seconds=delay)
    # Long backoffs are left to the tick: no ETA message waits in the broker past max_countdown.
    via_message = delay <= policy.max_countdown
    values = {**RELEASED, **here, "attempt": n + 1, "lost_leases": 0, "ready_at": ready_at,
              "dispatched_at": ready_at if via_message else None}
    messages = (_message(snap, state.id, queue_of(machine, state.id, snap.queue), countdown=delay),) if via_message else ()
    return checkpoint(snap, Outcome.RETRY_SCHEDULED, values, attempt, messages=messages)


def worker_lost(machine: StateMachine | None, snap: Snapshot, now: datetime, policy: Policy) -> Checkpoint:
    """The current attempt's worker was lost too many times (the step kills its worker): the
    attempt fails with ``WorkerLost`` and the retry policy applies."""
    node = snap.current_node or END
    state = machine.state(node) if machine is not None else None
    error = error_dict(WorkerLost(node, snap.lost_leases + 1), node)
    result = StepResult(StepOutcome.FAILED, error=error)
    if machine is None or state is None or state.step is None:
        return fail(machine, snap, error, now)
    here = {"current_node": state.id, "node_shape": state.shape, "loops": dict(snap.loops) or None}
    return _failed_attempt(machine, snap, state, result, here, now, policy)


# -- ending ----------------------------------------------------------------------------------------


_KEEP: Any = object()


def complete(snap: Snapshot, encoded_ctx: Any, attempt: Mapping[str, Any] | None, now: datetime) -> Checkpoint:
    """Finish the execution with ``encoded_ctx``."""
    values = {**RELEASED, "status": ExecutionStatus.COMPLETED.value, "context": encoded_ctx, "error": None,
              "deadline_at": None, "completed_at": now, "current_node": None}
    return checkpoint(snap, Outcome.COMPLETED, values, attempt)


def fail(machine: StateMachine | None, snap: Snapshot, error: Mapping[str, Any] | None, now: datetime, *,
         attempt: Mapping[str, Any] | None = None, context: Any = _KEEP,
         extra: Mapping[str, Any] | None = None) -> Checkpoint:
    """Fail the execution. Its active branches and iterations are stopped with it; a top-level
    workflow with compensations starts compensating instead (when completed steps have any)."""
    values: dict[str, Any] = {**(extra or {}), **RELEASED, "status": ExecutionStatus.FAILED.value,
                              "error": dict(error) if error is not None else None, "deadline_at": None,
                              "completed_at": now}
    if context is not _KEEP:
        values["context"] = context
    compensate = snap.is_top_level and machine is not None and bool(machine.compensations)
    return checkpoint(snap, Outcome.FAILED, values, attempt, compensate=compensate, stop_descendants=True)


def compensating_values(final: ExecutionStatus, error: Mapping[str, Any] | None, now: datetime,
                        ready: bool) -> dict[str, Any]:
    """An execution that starts compensating: its plan is read when the compensation task starts
    (once no step of its tree is still in flight); ``final`` is its status if there is nothing
    to compensate."""
    return {**RELEASED, "status": ExecutionStatus.COMPENSATING.value, "compensation_plan": None,
            "compensation_results": [], "attempt": 1, "deadline_at": None, "start_deadline_at": None,
            "completed_at": None,
            "error": dict(error) if error is not None else None,
            "stopping": None, "stop_status": final.value, "ready_at": now if ready else None,
            "dispatched_at": now if ready else None, "updated_at": now}


# -- records and messages -----------------------------------------------------------------------


def attempt_record(snap: Snapshot, step: str, result: StepResult, now: datetime, worker: str, *,
                   output: Any = None, compensation_for: str | None = None, input: Any = _KEEP) -> dict[str, Any]:
    """The ``step_executions`` row of one finished attempt."""
    started = snap.step_started_at or now
    return {
        "execution_id": snap.id, "seq": snap.seq, "step_name": step, "attempt": snap.attempt,
        "status": (StepStatus.COMPLETED if result.ok else StepStatus.FAILED).value,
        "started_at": started, "completed_at": now, "duration_ms": result.duration_ms,
        "input": snap.context if input is _KEEP else input, "output": output if result.ok else None,
        "error": result.error, "logs": list(result.logs) or None, "worker": worker,
        "is_compensation": compensation_for is not None, "compensation_for": compensation_for,
    }


def _message(snap: Snapshot, step: str | None, queue: str, countdown: float | None = None) -> Message:
    return Message(snap.id, snap.seq + 1, snap.workflow, step, queue, snap.priority, countdown)


def checkpoint(snap: Snapshot, outcome: Outcome, values: Mapping[str, Any],
                attempt: Mapping[str, Any] | None = None, **effects: Any) -> Checkpoint:
    """Every decision ends here: the status move it makes must be an allowed one. An execution
    whose first step ran from a lease handed over at its start (never claimed, so no
    ``started_at`` yet) records here when that step started; the first decision after its first
    step began clears its start deadline."""
    status = values.get("status")
    if status is not None:
        check_move(snap.status, status)
    if snap.started_at is None and snap.step_started_at is not None and "started_at" not in values:
        values = {**values, "started_at": snap.step_started_at}
    if snap.start_deadline_at is not None and "start_deadline_at" not in values:
        values = {**values, "start_deadline_at": None}  # it has started: its start deadline is met
    return Checkpoint(outcome, values, attempt, **effects)


def stopped(machine: StateMachine | None, snap: Snapshot, attempt: Mapping[str, Any] | None,
            now: datetime) -> Checkpoint:
    """Apply a stop (cancel, timeout, a failing parent) that was requested while a step was in
    flight, now that the step has ended: its ``attempt`` is recorded as it ended, then the
    execution compensates (a top-level workflow asked to) or ends."""
    stop = dict(snap.stopping or {})
    status = ExecutionStatus(stop.get("status", ExecutionStatus.CANCELLED.value))
    error = stop.get("error")
    values = {**RELEASED, "status": status.value, "error": error, "stopping": None, "deadline_at": None,
              "completed_at": now}
    compensate = (bool(stop.get("compensate")) and snap.is_top_level and machine is not None
                  and bool(machine.compensations))
    return checkpoint(snap, Outcome(status.value), values, attempt, compensate=compensate)


def outcome_unknown(snap: Snapshot, now: datetime, policy: Policy) -> dict[str, Any] | None:
    """The attempt record of a step whose worker died while its execution was stopping: it may
    have had its effect, so it is compensated like a completed step (``OutcomeUnknown``)."""
    if snap.current_node is None:
        return None
    error = {"type": OUTCOME_UNKNOWN, "step": snap.current_node, "traceback": None,
             "message": "the worker running this step was lost while the execution was stopping; "
                        "it may have had its effect, so it is compensated"}
    return attempt_record(snap, snap.current_node, StepResult(StepOutcome.FAILED, error=error), now, policy.worker)
