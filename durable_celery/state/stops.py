"""Stopping an execution from outside a worker: ``cancel`` and the workflow timeout.

Without compensation the execution and its tree end at once; a step in flight is fenced off
(its result is discarded). With compensation (a top-level workflow that has compensations), a
step in flight is not cut off: the execution, and each member of its tree running a step, is
asked to stop (``stopping``); each step finishes, its outcome is recorded, and the compensation
starts once nothing of the tree is in flight, so what those steps did is compensated too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection

from durable_celery.engine.decide import compensating_values
from durable_celery.engine.statuses import ACTIVE, ExecutionStatus, sources_of
from durable_celery.state.children import stop_tree_txn, tree_quiescent_txn
from durable_celery.state.executions import DISPATCH_COLUMNS, finish_txn
from durable_celery.state.tables import workflow_executions as t
from durable_celery.state.waits import cancel_waits_txn, lock_execution_txn


def stop_txn(conn: Connection, row: Mapping[Any, Any], status: ExecutionStatus, error: dict[str, Any],
             now: datetime, *, compensate: bool,
             compensable: Callable[[str, str], bool] | None = None) -> list[Mapping[Any, Any]] | None:
    """Stop the active execution ``row`` (locked by the caller) in ``status``. ``compensate``:
    run the compensations of its completed steps (the caller checked it has any). Returns the
    rows to publish, or None if the execution was not active.

    ``compensable(workflow, version)``, given when the stop asks for compensation: the child workflows of
    the tree are stopped the same way, each compensating if its workflow has compensations;
    without it they are cancelled with the rest of the tree."""
    if row["status"] not in ACTIVE:
        return None
    child_error = {"type": "Cancelled", "message": f"parent {status.value}", "step": None, "traceback": None}
    rows: list[Mapping[Any, Any]] = []

    def stop_workflow(child_id: str) -> bool:
        child = lock_execution_txn(conn, child_id)
        assert compensable is not None
        stopped = None if child is None else stop_txn(
            conn, child, ExecutionStatus.CANCELLED, child_error, now, compensate=compensable(child["workflow"], child["version"]),
            compensable=compensable)
        rows.extend(stopped or [])
        return stopped is not None

    stop_tree_txn(conn, row["id"], now, child_error, wait_for_in_flight=compensate,
                  stop_workflow=stop_workflow if compensable is not None else None)
    ended = _stop_self(conn, row, status, error, now, compensate=compensate)
    return None if ended is None else [*rows, *ended]


def _stop_self(conn: Connection, row: Mapping[Any, Any], status: ExecutionStatus, error: dict[str, Any],
               now: datetime, *, compensate: bool) -> list[Mapping[Any, Any]] | None:
    if not compensate:
        if finish_txn(conn, row["id"], status, now, error) is None:
            return None
        cancel_waits_txn(conn, row["id"], now)
        return []
    if row["lease_owner"] is not None:  # a step in flight: it finishes first (see module doc)
        conn.execute(update(t).where(t.c.id == row["id"], t.c.lease_owner.is_not(None), t.c.stopping.is_(None))
                     .values(stopping={"status": status.value, "error": error, "compensate": True},
                             deadline_at=None, updated_at=now))
        return []
    ready = tree_quiescent_txn(conn, row["id"])
    stmt = (update(t).where(t.c.id == row["id"], t.c.status.in_([s.value for s in sources_of(ExecutionStatus.COMPENSATING)]))
            .values(seq=t.c.seq + 1, **compensating_values(status, error, now, ready)).returning(*DISPATCH_COLUMNS))
    moved = conn.execute(stmt).mappings().first()
    if moved is None:
        return None
    cancel_waits_txn(conn, row["id"], now)
    return [moved] if ready else []
