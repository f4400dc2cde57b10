"""Compensations (the saga pattern).

When a workflow fails for good (a step out of retries, a failed parallel block, its timeout), or
is cancelled with ``compensate=True``, the compensations of the steps that completed — in the
execution and in the branches and iterations it fanned out into — run newest first. Each gets
the output of the step it compensates, runs with its own retry policy, and is recorded as a step
attempt (``is_compensation``, ``compensation_for``). A failing compensation does not stop the
others. The execution ends ``compensated`` or ``compensation_failed``; with nothing to
compensate it simply ends ``failed`` (or ``cancelled``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, or_, select, update

from durable_celery import codec
from durable_celery.compiler.ir import StateMachine
from durable_celery.context import StepInfo
from durable_celery.engine.backoff import retry_delay, should_retry
from durable_celery.engine.statuses import ACTIVE, ExecutionStatus, StepStatus
from durable_celery.runtime.executor import run_attempt
from durable_celery.state.executions import DISPATCH_COLUMNS
from durable_celery.state.tables import step_executions as s
from durable_celery.state.tables import workflow_executions as t

if TYPE_CHECKING:
    from durable_celery.runtime.runner import Runner, _Lease


def plan_txn(conn: Connection, machine: StateMachine | None, execution_id: str) -> list[dict[str, Any]]:
    """The compensations to run for an execution, newest completed step first."""
    if machine is None or not machine.compensations:
        return []
    tree = select(t.c.id).where(or_(t.c.id == execution_id, t.c.root_id == execution_id))
    done = conn.execute(
        select(s.c.step_name, s.c.output).where(s.c.execution_id.in_(tree), s.c.status == StepStatus.COMPLETED.value,
                                                 s.c.is_compensation.is_(False))
        .order_by(s.c.completed_at.desc(), s.c.id.desc())
    ).mappings()
    plan = []
    for row in done:
        state = machine.state(row["step_name"])
        if state is not None and state.step is not None and state.step.compensate:
            plan.append({"step": row["step_name"], "compensation": state.step.compensate, "input": row["output"]})
    return plan


def compensating_values(plan: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """What an execution becomes when it starts compensating (runnable at once)."""
    return {"status": ExecutionStatus.COMPENSATING.value, "compensation_plan": plan, "compensation_results": [],
            "attempt": 1, "lease_owner": None, "lease_expires_at": None, "step_started_at": None,
            "ready_at": now, "dispatched_at": now, "deadline_at": None, "completed_at": None, "updated_at": now}


def begin_txn(conn: Connection, machine: StateMachine | None, execution_id: str, error: dict[str, Any] | None,
              now: datetime) -> Mapping[Any, Any] | None:
    """Outside a worker (tick timeout, cancel): move an active execution to compensating if it
    has anything to compensate; returns the row to publish, or None (nothing to compensate)."""
    plan = plan_txn(conn, machine, execution_id)
    if not plan:
        return None
    stmt = (update(t).where(t.c.id == execution_id, t.c.status.in_([a.value for a in ACTIVE]))
            .values(seq=t.c.seq + 1, error=error, **compensating_values(plan, now)).returning(*DISPATCH_COLUMNS))
    return conn.execute(stmt).mappings().first()


def stop_txn(conn: Connection, machine: StateMachine | None, execution_id: str, status: ExecutionStatus,
             error: dict[str, Any], now: datetime, compensate: bool) -> list[Mapping[Any, Any]] | None:
    """Stop an active execution from outside a worker (cancel, workflow timeout): it starts
    compensating (when asked and there is something to compensate) or ends in ``status``; its
    open waits close and its active branches, iterations and children are cancelled. Returns the
    rows to publish, or None if the execution was not active."""
    from durable_celery.state.executions import cancel_tree_txn, finish_txn
    from durable_celery.state.waits import cancel_waits_txn

    row = begin_txn(conn, machine, execution_id, error, now) if compensate else None
    if row is None and finish_txn(conn, execution_id, status, now, error) is None:
        return None
    cancel_waits_txn(conn, execution_id, now)
    cancel_tree_txn(conn, execution_id, now, {"type": "Cancelled", "message": f"parent {status.value}",
                                             "step": None, "traceback": None})
    return [row] if row is not None else []


def compensate(runner: Runner, lease: _Lease, machine: StateMachine) -> str:
    """Run the remaining compensations of a compensating execution, one attempt each, in this task."""
    while True:
        row = lease.row
        plan = list(row["compensation_plan"] or [])
        results = list(row["compensation_results"] or [])
        if len(results) >= len(plan):
            return _finish(runner, lease, results)
        entry = plan[len(results)]
        handler = machine.compensations[entry["compensation"]]
        info = StepInfo(row["root_id"] or row["id"], row["workflow"], handler.name, row["attempt"],
                        codec.decode(row["input"]))
        started = runner.durable.clock.now()
        attempt = run_attempt(handler.fn, (codec.decode(entry["input"]),), info, handler.timeout)
        if attempt.suspended or attempt.lease_lost:
            attempt.ok, attempt.error = False, {"type": "InvalidCompensation", "step": handler.name, "traceback": None,
                                                "message": "a compensation cannot wait or outlive its lease"}
        now = runner.durable.clock.now()
        step_row = {
            "execution_id": row["id"], "seq": row["seq"], "step_name": handler.name, "attempt": row["attempt"],
            "status": (StepStatus.COMPLETED if attempt.ok else StepStatus.FAILED).value, "started_at": started,
            "completed_at": now, "duration_ms": attempt.duration_ms, "input": entry["input"],
            "output": codec.encode(attempt.value) if attempt.ok and _storable(attempt.value) else None,
            "error": attempt.error, "logs": attempt.logs or None, "is_compensation": True,
            "compensation_for": entry["step"],
        }
        if not attempt.ok and should_retry(handler.retry, row["attempt"]):
            return _retry_later(runner, lease, handler.retry, step_row)
        results.append({"step": entry["step"], "compensation": handler.name,
                        "status": "completed" if attempt.ok else "failed", "error": attempt.error})
        values = {"compensation_results": results, "attempt": 1, "step_started_at": now,
                  "lease_expires_at": now + timedelta(seconds=runner.durable.settings.stale_lock_timeout)}
        if not runner.commit(lease, values, step_row):
            return "lease-lost"
        lease.row = {**row, **values, "seq": row["seq"] + 1}


def _storable(value: Any) -> bool:
    try:
        codec.encode(value)
        return True
    except codec.Unencodable:
        return False


def _retry_later(runner: Runner, lease: _Lease, retry: Any, step_row: dict[str, Any]) -> str:
    row = lease.row
    delay = retry_delay(retry, row["attempt"])
    ready_at = runner.durable.clock.now() + timedelta(seconds=delay)
    values = {"attempt": row["attempt"] + 1, "lease_owner": None, "lease_expires_at": None, "step_started_at": None,
              "ready_at": ready_at, "dispatched_at": None}  # the tick dispatches it when due
    return "retry-scheduled" if runner.commit(lease, values, step_row) else "lease-lost"


def _finish(runner: Runner, lease: _Lease, results: list[dict[str, Any]]) -> str:
    ok = all(r["status"] == "completed" for r in results)
    status = ExecutionStatus.COMPENSATED if ok else ExecutionStatus.COMPENSATION_FAILED
    values = {"status": status.value, "lease_owner": None, "lease_expires_at": None, "step_started_at": None,
              "ready_at": None, "completed_at": runner.durable.clock.now()}
    return status.value if runner.commit(lease, values, None) else "lease-lost"
