"""Child executions: the parallel branches and foreach iterations a workflow fans out into.

A fan-out inserts one child row per branch or item, all at once, keyed by (parent_id,
parent_seq, branch_index); up to its concurrency are runnable, the rest parked (no ready_at).
When a child finishes, in the same transaction: a parked sibling is released, and the parent is
woken once the block is decided (every child finished, or one failed). Lock order: the parent
row first, then children.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, literal_column, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.expression import ColumnElement

from durable_celery.engine.fanout import FAILED
from durable_celery.engine.statuses import ACTIVE, TERMINAL, ExecutionStatus
from durable_celery.state.executions import DISPATCH_COLUMNS, finish_txn
from durable_celery.state.tables import workflow_executions as t
from durable_celery.state.waits import cancel_waits_txn, wake_txn


def insert_children_txn(conn: Connection, rows: list[dict[str, Any]]) -> list[Mapping[Any, Any]]:
    """Insert child rows; return those runnable now (to be published after commit)."""
    if rows:
        conn.execute(insert(t), rows)
    return [r for r in rows if r["ready_at"] is not None]


def children_txn(conn: Connection, parent_id: str, parent_seq: int) -> list[RowMapping]:
    stmt = (select(t).where(t.c.parent_id == parent_id, t.c.parent_seq == parent_seq)
            .order_by(t.c.branch_index))
    return list(conn.execute(stmt).mappings())


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


def stop_tree_txn(conn: Connection, parent_id: str, now: datetime, error: dict[str, Any], *,
                  wait_for_in_flight: bool, stop_workflow: Callable[[str], bool] | None = None) -> int:
    """Stop the active descendants of an execution (its parallel branches, foreach iterations
    and child workflows), depth first; returns how many were stopped.

    A descendant with a step in flight is, with ``wait_for_in_flight`` (its workflow will
    compensate), only asked to stop: its step finishes, its outcome is recorded, and then it
    ends (so what the step did is compensated too). Every other one is cancelled at once. A
    child workflow is stopped by ``stop_workflow(id)`` instead, if given (it may compensate).
    """
    active = select(t.c.id, t.c.lease_owner, t.c.kind).where(t.c.parent_id == parent_id,
                                                              t.c.status.in_([s.value for s in ACTIVE]))
    stopped = 0
    for child_id, lease_owner, kind in list(conn.execute(active)):
        if kind == "workflow" and stop_workflow is not None:
            stopped += stop_workflow(child_id)
            continue
        if wait_for_in_flight and lease_owner is not None:
            conn.execute(update(t).where(t.c.id == child_id, t.c.lease_owner.is_not(None), t.c.stopping.is_(None))
                         .values(stopping={"status": ExecutionStatus.CANCELLED.value, "error": error}, updated_at=now))
        elif finish_txn(conn, child_id, ExecutionStatus.CANCELLED, now, error) is not None:
            cancel_waits_txn(conn, child_id, now)
        else:
            continue
        stopped += 1 + stop_tree_txn(conn, child_id, now, error, wait_for_in_flight=wait_for_in_flight,
                                     stop_workflow=stop_workflow)
    return stopped


def release_compensation_txn(conn: Connection, root_id: str, now: datetime) -> Mapping[Any, Any] | None:
    """Make a compensating execution runnable once no step of its tree is in flight any more
    (called, under the root's lock, when a member of the tree ends)."""
    in_flight = select(t.c.id).where(t.c.root_id == root_id, t.c.id != root_id, t.c.lease_owner.is_not(None))
    stmt = (update(t).where(t.c.id == root_id, t.c.status == ExecutionStatus.COMPENSATING.value,
                            t.c.ready_at.is_(None), t.c.lease_owner.is_(None), ~in_flight.exists())
            .values(seq=t.c.seq + 1, ready_at=now, dispatched_at=now, updated_at=now)
            .returning(*DISPATCH_COLUMNS))
    return conn.execute(stmt).mappings().first()


def tree_quiescent_txn(conn: Connection, execution_id: str) -> bool:
    """No step of the execution's tree (other than its own) is in flight."""
    leased = select(t.c.id).where(t.c.root_id == execution_id, t.c.id != execution_id,
                                  t.c.lease_owner.is_not(None)).limit(1)
    return conn.execute(leased).first() is None


def release_parked_compensations_txn(conn: Connection, now: datetime, limit: int) -> list[Mapping[Any, Any]]:
    """The tick's safety net: compensating executions still parked although nothing of their
    tree is in flight any more (normally the last step to end releases them)."""
    member = t.alias("member")
    leased = select(member.c.id).where(member.c.root_id == t.c.id, member.c.id != t.c.id,
                                       member.c.lease_owner.is_not(None))
    # the status as a literal: a generic plan then still estimates it rare (and takes its index)
    compensating: ColumnElement[str] = literal_column(f"'{ExecutionStatus.COMPENSATING.value}'")
    ids = list(conn.execute(
        select(t.c.id).where(t.c.status == compensating, t.c.ready_at.is_(None),
                             t.c.lease_owner.is_(None), ~leased.exists())
        .limit(limit).with_for_update(skip_locked=True, of=t)).scalars())
    released = []
    for root_id in ids:
        row = release_compensation_txn(conn, root_id, now)
        if row is not None:
            released.append(row)
    return released
