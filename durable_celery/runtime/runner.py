"""The step runner: claim an execution, run its current step, checkpoint the outcome in one
transaction, then hand off (publish) or, in continuation mode, go on with the next step."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from durable_celery import codec
from durable_celery.compiler.ir import END, FAN_OUT, JOIN, State, StateMachine
from durable_celery.context import StepInfo
from durable_celery.engine.backoff import retry_delay, should_retry
from durable_celery.engine.statuses import RUNNABLE, TERMINAL, ExecutionStatus, StepStatus
from durable_celery.engine.transitions import StepResultError, check_shape, interpret_result, queue_of, resolve
from durable_celery.errors import ContextNotSerializable, WorkflowNotFound, WorkflowTimeout
from durable_celery.runtime.executor import Attempt, error_dict, run_attempt
from durable_celery.runtime.fanout import fails_fast, fan_out
from durable_celery.runtime.saga import compensate, compensating_values, plan_txn
from durable_celery.runtime.waiting import WaitHandle
from durable_celery.state.children import child_finished_txn
from durable_celery.state.executions import advance_txn, cancel_tree_txn, claim_txn, peek_txn
from durable_celery.state.steps import advance_with_attempt, record_attempt_txn
from durable_celery.state.waits import cancel_waits_txn, lock_execution_txn, should_wake, wake_txn
from durable_celery.testing import faults

if TYPE_CHECKING:
    from durable_celery.durable import Durable

log = logging.getLogger(__name__)
_KEEP: Any = object()  # "leave the context as it is"
WORKER = f"{socket.gethostname()}"


@dataclass
class _Lease:
    """The claimed execution row (updated in place as continuation advances it)."""

    row: Mapping[Any, Any]
    token: str
    queue: str
    started: float
    #: iterations of the loops under way (persisted with the next checkpoint)
    loops: dict[str, int] = field(default_factory=dict)


class Runner:
    """Drives executions forward inside Celery tasks."""

    def __init__(self, durable: Durable) -> None:
        self.durable = durable
        self._db = durable.db
        self._clock = durable.clock
        self._settings = durable.settings

    # -- entry point of the `durable.step` task ---------------------------------------------------

    def run(self, execution_id: str, seq: int, queue: str | None) -> str:
        """Handle one message; returns what happened (for logs and tests)."""
        now = self._clock.now()
        token = uuid.uuid4().hex
        with self._db.single() as conn:  # the claim is one UPDATE ... RETURNING
            row = claim_txn(conn, execution_id, seq, token, now, now + timedelta(seconds=self._settings.stale_lock_timeout))
        if row is None:
            return self._unclaimed(execution_id, seq)
        keeper = self.durable.leases
        keeper.hold(token)
        try:
            return self._drive(_Lease(row, token, queue or row["queue"], time.monotonic()))
        finally:
            keeper.release(token)

    def _unclaimed(self, execution_id: str, seq: int) -> str:
        """A message that could not claim: a duplicate or stale one is dropped; one that came
        early (a retry countdown on a skewed clock) is re-published for when it is due."""
        with self._db.connect() as conn:
            row = peek_txn(conn, execution_id)
        if (row is not None and row["seq"] == seq and row["lease_owner"] is None and row["ready_at"] is not None
                and row["status"] in RUNNABLE):
            wait = (self.durable.as_utc(row["ready_at"]) - self._clock.now()).total_seconds()
            if wait > 0:
                self.durable.dispatcher.send(execution_id, seq, workflow=row["workflow"], step=row["current_node"],
                                              queue=row["queue"], priority=row["priority"], countdown=wait)
                return "early"
        return "duplicate"

    # -- the loop over consecutive steps ------------------------------------------------------------

    def _drive(self, lease: _Lease) -> str:
        """Run steps while the lease is kept (continuation); return how the task ended."""
        if lease.row["status"] == ExecutionStatus.COMPENSATING:
            machine = self.durable.registry.get(lease.row["workflow"])
            if machine is None:
                return self.fail(lease, error_dict(WorkflowNotFound(lease.row["workflow"]), None))
            return compensate(self, lease, machine)
        while True:
            located = self._locate(lease)
            if isinstance(located, str):
                return located
            machine, state, ctx = located
            if state.kind in FAN_OUT:
                outcome = fan_out(self, lease, machine, state, ctx)
            else:
                outcome = self._run_state(lease, machine, state, ctx)
            if outcome != "continue":
                return outcome

    def _locate(self, lease: _Lease) -> str | tuple[StateMachine, State, dict[str, Any]]:
        """The state to run next and its context, or how the execution ended before it: unknown
        workflow, workflow timeout, a changed definition, or routing that failed or finished."""
        row = lease.row
        machine = self.durable.registry.get(row["workflow"])
        if machine is None:
            return self.fail(lease, error_dict(WorkflowNotFound(row["workflow"]), None))
        deadline = row["deadline_at"]
        if deadline is not None and self.durable.as_utc(deadline) <= self._clock.now():
            return self.fail(lease, error_dict(WorkflowTimeout(row["workflow"], machine.timeout or 0), None))
        lease.loops = dict(row["loops"] or {})
        try:
            if row["version"] != machine.version:
                check_shape(machine, row["current_node"], row["node_shape"])
            ctx = codec.decode(row["context"])
            state_id = resolve(machine, row["current_node"], ctx, lease.loops)
        except Exception as exc:  # DefinitionChanged, BranchNoMatch, LoopLimitExceeded, or user routing code raised
            return self.fail(lease, error_dict(exc, row["current_node"]))
        if state_id in (END, JOIN):
            return self._complete(lease, row["context"], None, None)
        return machine, machine.states[state_id], ctx

    def _run_state(self, lease: _Lease, machine: StateMachine, state: State, ctx: dict[str, Any]) -> str:
        """Run one attempt of a step and checkpoint what happened."""
        row = lease.row
        assert state.step is not None
        waits = WaitHandle(self.durable, row["id"], state.id, row["seq"], row["entered_seq"], lease.token,
                           row["root_id"] or row["id"])
        info = StepInfo(row["root_id"] or row["id"], row["workflow"], state.id, row["attempt"],
                        codec.decode(row["input"]), waits)
        args = (ctx, codec.decode(row["item"])) if state.step.takes_item else (ctx,)
        attempt = run_attempt(state.step.fn, args, info, state.step.timeout)
        if attempt.suspended:
            return self.suspend(lease)
        if attempt.lease_lost:
            return "lease-lost"
        step_row = self._step_row(lease, state, attempt)
        if not attempt.ok:
            return self._failed_attempt(lease, machine, state, attempt, step_row)
        outcome = self._successor(machine, state, attempt.value, lease.loops)
        if isinstance(outcome, dict):  # the step's result could not be used: not worth retrying
            attempt.ok, attempt.error, attempt.retryable = False, outcome, False
            step_row.update(status=StepStatus.FAILED.value, error=outcome, output=None)
            return self._failed_attempt(lease, machine, state, attempt, step_row)
        return self._move_on(lease, machine, outcome, step_row)

    def advance(self, lease: _Lease, machine: StateMachine, state: State, result: Any) -> str:
        """Move on from ``state`` as if it returned ``result`` (a dict or a goto): joins use it."""
        outcome = self._successor(machine, state, result, lease.loops)
        if isinstance(outcome, dict):
            return self.fail(lease, outcome)
        return self._move_on(lease, machine, outcome, None)

    def _move_on(self, lease: _Lease, machine: StateMachine, outcome: tuple[str, Any, dict[str, Any] | None],
                 step_row: dict[str, Any] | None) -> str:
        next_id, encoded_ctx, routing_error = outcome
        if step_row is not None:
            step_row["output"] = encoded_ctx
        if routing_error is not None or next_id in (END, JOIN):
            return self._complete(lease, encoded_ctx, step_row, routing_error)
        return self._hand_over(lease, machine, next_id, encoded_ctx, step_row)

    def _successor(self, machine: StateMachine, state: State, result: Any,
                   loops: dict[str, int]) -> tuple[str, Any, dict[str, Any] | None] | dict[str, Any]:
        """(next state id, encoded context, error from routing) or an error dict if the
        result is unusable. Updates ``loops`` as routing passes loop tests."""
        try:
            next_id, new_ctx = interpret_result(machine, state, result)
            encoded = codec.encode(new_ctx)
        except StepResultError as exc:
            return error_dict(exc, state.id)
        except codec.Unencodable as exc:
            return error_dict(ContextNotSerializable(state.id, exc.path, exc.type_name), state.id)
        try:
            return resolve(machine, next_id, new_ctx, loops), encoded, None
        except Exception as exc:  # BranchNoMatch, LoopLimitExceeded, DefinitionChanged, or user routing code
            return next_id, encoded, error_dict(exc, next_id)

    # -- checkpoints: each one transaction, fenced by seq and lease -----------------------------------

    def _step_row(self, lease: _Lease, state: State, attempt: Attempt) -> dict[str, Any]:
        row = lease.row
        now = self._clock.now()
        started = self.durable.as_utc(row["step_started_at"]) if row["step_started_at"] else now
        return {
            "execution_id": row["id"], "seq": row["seq"], "step_name": state.id, "attempt": row["attempt"],
            "status": (StepStatus.COMPLETED if attempt.ok else StepStatus.FAILED).value,
            "started_at": started, "completed_at": now, "duration_ms": attempt.duration_ms,
            "input": row["context"], "output": None, "error": attempt.error, "logs": attempt.logs or None,
            "worker": WORKER, "is_compensation": False,
        }

    def commit(self, lease: _Lease, values: dict[str, Any] | Callable[[Connection], dict[str, Any]],
               step_row: dict[str, Any] | None, also: Callable[[Connection], list[Mapping[Any, Any]]] | None = None,
               ) -> bool:
        """One checkpoint transaction, fenced by seq and lease: the execution's new values (or a
        function of the transaction deciding them), the attempt's row, and ``also`` (which returns
        rows to publish). A finishing child also releases a parked sibling or wakes its parent.
        Publishes after commit."""
        row = lease.row
        now = self._clock.now()
        if (self._db.dialect == "postgresql" and isinstance(values, dict) and step_row is not None and also is None
                and values.get("status") not in TERMINAL and values.get("status") != ExecutionStatus.COMPENSATING):
            # The hot path, a step handing over to the next: one statement, one round trip.
            values.setdefault("updated_at", now)
            with self._db.single() as conn:
                if not advance_with_attempt(conn, row["id"], row["seq"], lease.token, values, step_row):
                    log.warning("durable: execution %s lost its lease at seq %s; discarding this attempt",
                                row["id"], row["seq"])
                    return False
            faults.trip("after_checkpoint", step_row["step_name"])
            return True
        to_publish: list[Mapping[Any, Any]] = []
        with self._db.begin() as conn:
            if callable(values):
                values = values(conn)
            values.setdefault("updated_at", now)
            finishing = values.get("status") in TERMINAL
            is_child = row["parent_id"] is not None and row["kind"] != "workflow"
            parent = None
            if finishing and is_child:
                # Lock order everywhere: ancestors first (the root, then the parent), then the child.
                if row["root_id"] and row["root_id"] != row["parent_id"]:
                    lock_execution_txn(conn, row["root_id"])
                parent = lock_execution_txn(conn, row["parent_id"])
            if not advance_txn(conn, row["id"], row["seq"], lease.token, values):
                log.warning("durable: execution %s lost its lease at seq %s; discarding this attempt",
                            row["id"], row["seq"])
                return False
            if step_row is not None:
                record_attempt_txn(conn, step_row)
            if values.get("status") == ExecutionStatus.COMPENSATING:
                to_publish.append({**row, "seq": row["seq"] + 1, "current_node": None})
            if also is not None:
                to_publish.extend(also(conn))
            if finishing:
                cancel_waits_txn(conn, row["id"], now)
                if parent is not None:
                    to_publish.extend(child_finished_txn(conn, row, ExecutionStatus(values["status"]),
                                                         values.get("context", row["context"]), now,
                                                         self._fails_fast(parent)))
        if step_row is not None:
            faults.trip("after_checkpoint", step_row["step_name"])
        self.durable.dispatcher.publish(to_publish)
        return True

    def _fails_fast(self, parent: Mapping[Any, Any]) -> bool:
        machine = self.durable.registry.get(parent["workflow"])
        return fails_fast(machine.state(parent["current_node"]) if machine else None)

    def _hand_over(self, lease: _Lease, machine: StateMachine, next_id: str, ctx: Any,
                   step_row: dict[str, Any] | None) -> str:
        """Checkpoint a completed step and move to ``next_id``: keep the lease and return
        "continue" (continuation mode), or release it and publish ("dispatched")."""
        settings = self._settings
        row = lease.row
        now = self._clock.now()
        next_queue = queue_of(machine, next_id, row["queue"])
        keep = (settings.dispatch_mode == "continuation" and next_queue == lease.queue
                and time.monotonic() - lease.started < settings.continuation_budget)
        values: dict[str, Any] = {
            "context": ctx, "current_node": next_id, "node_shape": machine.states[next_id].shape,
            "version": machine.version, "attempt": 1, "status": ExecutionStatus.RUNNING.value,
            "entered_seq": row["seq"] + 1, "loops": lease.loops or None,
        }
        if keep:
            values.update(lease_expires_at=now + timedelta(seconds=settings.stale_lock_timeout), step_started_at=now)
        else:
            values.update(lease_owner=None, lease_expires_at=None, step_started_at=None, ready_at=now,
                          dispatched_at=now)
        if not self.commit(lease, values, step_row):
            return "lease-lost"
        if keep:
            lease.row = {**row, **values, "seq": row["seq"] + 1}
            return "continue"
        self.durable.dispatcher.send(row["id"], row["seq"] + 1, workflow=row["workflow"], step=next_id,
                                      queue=next_queue, priority=row["priority"])
        return "dispatched"

    def _failed_attempt(self, lease: _Lease, machine: StateMachine, state: State, attempt: Attempt,
                        step_row: dict[str, Any]) -> str:
        assert state.step is not None
        row = lease.row
        n = row["attempt"]
        if not (attempt.retryable and should_retry(state.step.retry, n)):
            return self.fail(lease, attempt.error, step_row)
        delay = retry_delay(state.step.retry, n)
        now = self._clock.now()
        ready_at = now + timedelta(seconds=delay)
        via_message = delay <= self._settings.max_countdown
        values = {"attempt": n + 1, "lease_owner": None, "lease_expires_at": None, "step_started_at": None,
                  "ready_at": ready_at, "dispatched_at": ready_at if via_message else None}
        if not self.commit(lease, values, step_row):
            return "lease-lost"
        if via_message:  # long backoffs are left to the tick: no ETA message held for hours
            self.durable.dispatcher.send(row["id"], row["seq"] + 1, workflow=row["workflow"], step=state.id,
                                          queue=row["queue"], priority=row["priority"],
                                          countdown=delay)
        return "retry-scheduled"

    def suspend(self, lease: _Lease) -> str:
        """The step reached an unsatisfied wait: release the execution as ``waiting``. If an
        event or a due timeout slipped in since the step looked, make it runnable at once."""
        row = lease.row
        now = self._clock.now()
        values = {"status": ExecutionStatus.WAITING.value, "lease_owner": None, "lease_expires_at": None,
                  "step_started_at": None, "ready_at": None, "updated_at": now}
        with self._db.begin() as conn:
            if not advance_txn(conn, row["id"], row["seq"], lease.token, values):
                return "lease-lost"
            woken = wake_txn(conn, row["id"], now) if should_wake(conn, row["id"], row["entered_seq"], now,
                                                             row["root_id"] or row["id"]) else None
        if woken is None:
            return "waiting"
        self.durable.dispatcher.publish([woken])
        return "woken"

    def _complete(self, lease: _Lease, ctx: Any, step_row: dict[str, Any] | None,
                  error: dict[str, Any] | None) -> str:
        """Finish the execution with ``ctx``; with a routing ``error`` it fails instead."""
        if error is not None:
            return self.fail(lease, error, step_row, context=ctx)
        values = {"status": ExecutionStatus.COMPLETED.value, "context": ctx, "error": None, "lease_owner": None,
                  "lease_expires_at": None, "step_started_at": None, "ready_at": None, "deadline_at": None,
                  "completed_at": self._clock.now(), "current_node": None}
        return "completed" if self.commit(lease, values, step_row) else "lease-lost"

    def fail(self, lease: _Lease, error: dict[str, Any] | None, step_row: dict[str, Any] | None = None,
             also: Callable[[Connection], list[Mapping[Any, Any]]] | None = None, context: Any = _KEEP) -> str:
        """Fail the execution with ``error`` (in the same transaction: ``step_row``, ``also``).
        A workflow with completed steps to compensate starts compensating instead."""
        row = lease.row
        now = self._clock.now()
        machine = self.durable.registry.get(row["workflow"]) if row["kind"] == "workflow" else None
        outcome = ExecutionStatus.FAILED

        def stop_descendants(conn: Connection) -> list[Mapping[Any, Any]]:
            # Branches or iterations still active (a fail-fast sibling woke this execution, which
            # then failed for another reason) must not run on after it.
            cancel_tree_txn(conn, row["id"], now, {"type": "Cancelled", "message": "the execution failed",
                                                   "step": None, "traceback": None})
            return list(also(conn)) if also is not None else []

        def decide(conn: Connection) -> dict[str, Any]:
            nonlocal outcome
            plan = plan_txn(conn, machine, row["id"])
            values: dict[str, Any] = {"error": error} if context is _KEEP else {"error": error, "context": context}
            if plan:
                outcome = ExecutionStatus.COMPENSATING
                return {**values, **compensating_values(plan, now)}
            return {**values, "status": ExecutionStatus.FAILED.value, "lease_owner": None, "lease_expires_at": None,
                    "step_started_at": None, "ready_at": None, "deadline_at": None, "completed_at": now}

        return outcome.value if self.commit(lease, decide, step_row, stop_descendants) else "lease-lost"
