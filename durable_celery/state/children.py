"""Child executions: the parallel branches and foreach iterations a workflow fans out into.

A fan-out inserts one child row per branch or item, all at once, keyed by (parent_id,
parent_seq, branch_index); up to its concurrency are runnable, the rest parked (no ready_at).
When a child finishes, in the same transaction: a parked sibling is released, and the parent is
woken once the block is decided (every child finished, or one failed). Lock order: the parent
row first, then children.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, and_, func, insert, select, update

from durable_celery.engine.statuses import TERMINAL, ExecutionStatus
from durable_celery.state.executions import DISPATCH_COLUMNS
from durable_celery.state.tables import workflow_executions as t
from durable_celery.state.waits import wake_txn

FAILED = frozenset({ExecutionStatus.FAILED, ExecutionStatus.CANCELLED, ExecutionStatus.COMPENSATED,
                    ExecutionStatus.COMPENSATION_FAILED})


def insert_children_txn(conn: Connection, rows: list[dict[str, Any]]) -> list[Mapping[Any, Any]]:
    """Insert child rows; return those runnable now (to be published after commit)."""
    if rows:
        conn.execute(insert(t), rows)
    return [r for r in rows if r["ready_at"] is not None]


def children_txn(conn: Connection, parent_id: str, parent_seq: int) -> list[RowMapping]:
    stmt = (select(t).where(t.c.parent_id == parent_id, t.c.parent_seq == parent_seq)
            .order_by(t.c.branch_index))
    return list(conn.execute(stmt).mappings())


def decided(children: list[RowMapping], fail_fast: bool) -> bool:
    """A block is decided when every child finished, or (failing fast) one of them failed."""
    return all(c["status"] in TERMINAL for c in children) or (
        fail_fast and any(c["status"] in FAILED for c in children))


def _block_decided(conn: Connection, child: Mapping[Any, Any], status: ExecutionStatus, fail_fast: bool) -> bool:
    """Counted in SQL, not loaded: a foreach may have thousands of siblings."""
    if fail_fast and status in FAILED:
        return True
    siblings = and_(t.c.parent_id == child["parent_id"], t.c.parent_seq == child["parent_seq"], t.c.id != child["id"])
    unfinished = conn.execute(select(func.count()).where(
        siblings, t.c.status.not_in([s.value for s in TERMINAL]))).scalar_one()
    return unfinished == 0


def child_finished_txn(conn: Connection, child: Mapping[Any, Any], status: ExecutionStatus, final_ctx: Any,
                       now: datetime, fail_fast: bool) -> list[Mapping[Any, Any]]:
    """Called in the transaction that finishes ``child`` (after the parent row was locked):
    release the next parked sibling, wake the parent if the block is decided (``fail_fast``: a
    failed child decides it). Returns rows to publish."""
    to_publish: list[Mapping[Any, Any]] = []
    if status == ExecutionStatus.COMPLETED:
        parked = conn.execute(
            select(t.c.id, t.c.kind).where(t.c.parent_id == child["parent_id"], t.c.parent_seq == child["parent_seq"],
                                           t.c.status == ExecutionStatus.PENDING.value, t.c.ready_at.is_(None))
            .order_by(t.c.branch_index).limit(1)
        ).mappings().first()
        if parked is not None:
            values: dict[str, Any] = {"ready_at": now, "dispatched_at": now, "updated_at": now}
            if parked["kind"] == "sequence":  # in order: each iteration starts from the previous one's output
                values.update(context=final_ctx)
            released = conn.execute(update(t).where(t.c.id == parked["id"]).values(**values)
                                    .returning(*DISPATCH_COLUMNS)).mappings().first()
            if released is not None:
                to_publish.append(released)
    if _block_decided(conn, child, status, fail_fast):
        woken = wake_txn(conn, child["parent_id"], now)
        if woken is not None:
            to_publish.append(woken)
    return to_publish
