"""Decisions of compensations (the saga pattern), pure.

When a top-level workflow fails for good, times out, or is cancelled with ``compensate=True``,
it becomes ``compensating``. Once no step of its tree is still in flight, the compensation task
reads the completed steps (of the execution and the branches and iterations it fanned out
into) and fixes the plan: their compensations, newest completed step first. Each compensation
gets the output of the step it undoes, runs with its own retry policy and is recorded as an
attempt. A failing compensation does not stop the others. The execution ends ``compensated``
or ``compensation_failed``; with nothing to compensate it ends as it would have without
compensations (``failed`` or ``cancelled``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from durable_celery.compiler.ir import StateMachine
from durable_celery.dsl.nodes import CompensationNode
from durable_celery.engine.backoff import retry_delay, should_retry
from durable_celery.engine.decide import RELEASED, Policy, attempt_record, checkpoint
from durable_celery.engine.statuses import ExecutionStatus
from durable_celery.engine.values import Checkpoint, Message, Outcome, Snapshot, StepResult


def plan(machine: StateMachine | None, done: Iterable[Mapping[Any, Any]]) -> list[dict[str, Any]]:
    """The compensations to run, from the execution tree's step attempts that completed (or
    whose outcome is unknown), newest first: ``[{"step", "compensation", "input"}]``."""
    if machine is None or not machine.compensations:
        return []
    entries = []
    for row in done:
        state = machine.state(row["step_name"])
        if state is not None and state.step is not None and state.step.compensate:
            entries.append({"step": row["step_name"], "compensation": state.step.compensate,
                            "input": row["output"] if row["output"] is not None else row["input"]})
    return entries


def final_status(snap: Snapshot) -> ExecutionStatus:
    """The status a compensating execution ends in when there is nothing to compensate."""
    return ExecutionStatus(snap.stop_status or ExecutionStatus.FAILED.value)


def start(snap: Snapshot, entries: list[dict[str, Any]], now: datetime) -> Checkpoint:
    """Fix the plan (the lease is kept to run it), or end at once when it is empty."""
    if not entries:
        status = final_status(snap)
        values = {**RELEASED, "status": status.value, "completed_at": now, "compensation_plan": []}
        return checkpoint(snap, Outcome(status.value), values)
    return checkpoint(snap, Outcome.CONTINUE, {"compensation_plan": entries, "attempt": 1, "step_started_at": now},
                       keep_lease=True)


def next_entry(snap: Snapshot) -> dict[str, Any] | None:
    """The next compensation to run, or None when every one has run."""
    plan_ = list(snap.compensation_plan or [])
    done = len(snap.compensation_results or [])
    return plan_[done] if done < len(plan_) else None


def after(snap: Snapshot, entry: Mapping[Any, Any], handler: CompensationNode, result: StepResult, output: Any,
          now: datetime, policy: Policy, *, here: bool = True) -> Checkpoint:
    """Record one compensation attempt: retry it later, or go on with the next (or finish).
    ``here``: the next one runs in this task (the lease is kept), else in a new message."""
    attempt = attempt_record(snap, handler.name, result, now, policy.worker, output=output,
                             compensation_for=entry["step"], input=entry["input"])
    if not result.ok and should_retry(handler.retry, snap.attempt):
        delay = 0.0 if policy.skip_backoff else retry_delay(handler.retry, snap.attempt)
        ready_at = now + timedelta(seconds=delay)
        via_message = delay <= policy.max_countdown
        values = {**RELEASED, "attempt": snap.attempt + 1, "lost_leases": 0, "ready_at": ready_at,
                  "dispatched_at": ready_at if via_message else None}
        messages = (Message(snap.id, snap.seq + 1, snap.workflow, None, snap.queue, snap.priority, delay),) \
            if via_message else ()
        return checkpoint(snap, Outcome.RETRY_SCHEDULED, values, attempt, messages=messages)
    results = [*(snap.compensation_results or []),
               {"step": entry["step"], "compensation": handler.name,
                "status": "completed" if result.ok else "failed", "error": result.error}]
    if len(results) < len(snap.compensation_plan or []):
        if not here:
            values = {**RELEASED, "compensation_results": results, "attempt": 1, "lost_leases": 0, "ready_at": now,
                      "dispatched_at": now}
            message = Message(snap.id, snap.seq + 1, snap.workflow, None, snap.queue, snap.priority)
            return checkpoint(snap, Outcome.DISPATCHED, values, attempt, messages=(message,))
        values = {"compensation_results": results, "attempt": 1, "step_started_at": now, "lost_leases": 0,
                  "lease_expires_at": now + timedelta(seconds=policy.stale_lock_timeout)}
        return checkpoint(snap, Outcome.CONTINUE, values, attempt, keep_lease=True)
    return _ended(snap, results, attempt, now)


def finish(snap: Snapshot, now: datetime) -> Checkpoint:
    """End a compensating execution whose compensations have all run."""
    return _ended(snap, list(snap.compensation_results or []), None, now)


def _ended(snap: Snapshot, results: list[dict[str, Any]], attempt: Mapping[Any, Any] | None,
           now: datetime) -> Checkpoint:
    ok = all(r["status"] == "completed" for r in results)
    status = ExecutionStatus.COMPENSATED if ok else ExecutionStatus.COMPENSATION_FAILED
    values = {**RELEASED, "compensation_results": results, "status": status.value, "completed_at": now}
    return checkpoint(snap, Outcome(status.value), values, attempt)
