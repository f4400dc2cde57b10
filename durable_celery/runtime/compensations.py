"""Running the compensations of a compensating execution, one attempt each, in this task. The
plan and what each attempt leads to are decided in :mod:`durable_celery.engine.saga`."""

from __future__ import annotations

import functools
from typing import Any

from durable_celery import codec
from durable_celery.compiler.ir import StateMachine
from durable_celery.context import StepInfo
from durable_celery.engine import saga
from durable_celery.engine.values import Outcome, Snapshot, StepOutcome, StepResult
from durable_celery.runtime import tracing
from durable_celery.runtime.commit import Committer, Lease
from durable_celery.runtime.executor import run_attempt
from durable_celery.state.steps import compensable_attempts_txn


def run(committer: Committer, machine: StateMachine, snap: Snapshot, lease: Lease) -> Outcome:
    """Fix the plan if it is not fixed yet, then run the remaining compensations."""
    sv = committer.services
    while True:
        entry = saga.next_entry(snap)
        if snap.compensation_plan is None:
            with sv.db.connect() as conn:
                done = compensable_attempts_txn(conn, snap.id)
            cp = saga.start(snap, saga.plan(machine, done), sv.clock.now())
        elif entry is None:  # every compensation ran (a crash between the last one and the end)
            cp = saga.finish(snap, sv.clock.now())
        else:
            handler = machine.compensations[entry["compensation"]]
            index = len(snap.compensation_results or [])
            info = StepInfo(snap.top, snap.workflow, handler.name, snap.attempt, codec.decode(snap.input),
                            execution_id=snap.id, visit=f"compensation-{index}")
            undo = codec.decode(entry["input"])
            result = tracing.traced(snap.trace_context, snap.workflow, handler.name,
                                    {"durable.execution_id": snap.id, "durable.attempt": snap.attempt,
                                     "durable.compensation_for": entry.get("step")},
                                    functools.partial(run_attempt, handler.fn, (undo,), info, handler.timeout))
            if result.outcome in (StepOutcome.SUSPENDED, StepOutcome.LEASE_LOST):
                result = StepResult(StepOutcome.FAILED, logs=result.logs, duration_ms=result.duration_ms, error={
                    "type": "InvalidCompensation", "step": handler.name, "traceback": None,
                    "message": "a compensation cannot wait or outlive its lease"})
            cp = saga.after(snap, entry, handler, result, _storable(result), sv.clock.now(), sv.policy)
        written = committer.commit(machine, snap, lease, cp)
        if written is None:
            return Outcome.LEASE_LOST
        if written.outcome is not Outcome.CONTINUE:
            return written.outcome
        snap = snap.after(cp)


def _storable(result: StepResult) -> Any:
    """The compensation's return value as stored, or None if it cannot be stored."""
    if not result.ok:
        return None
    try:
        return codec.encode(result.value)
    except codec.Unencodable:
        return None
