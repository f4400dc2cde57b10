"""Child executions: the parallel branches and foreach iterations a workflow fans out into.

A fan-out inserts one child row per branch or item, all at once, keyed by (parent_id,
parent_seq, branch_index); up to its concurrency are runnable, the rest parked (no ready_at).
When a child finishes, in the same transaction: a parked sibling is released, and the parent is
woken once the block is decided (every child finished, or one failed). Lock order: the parent
row first, then children.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, literal_column, select, update
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.expression import ColumnElement

from durable_celery.engine.fanout import FAILED
from durable_celery.engine.statuses import ACTIVE, TERMINAL, ExecutionStatus
from durable_celery.state.executions import CLAIMED_COLUMNS, DISPATCH_COLUMNS, finish_txn, leased_values
from durable_celery.state.inserts import insert_executions_txn
from durable_celery.state.tables import workflow_executions as t
from durable_celery.state.waits import cancel_waits_txn, wake_txn


def insert_children_txn(conn: Connection, rows: list[dict[str, Any]]) -> list[Mapping[Any, Any]]:
    """Insert child rows, in one statement (as ``start_many`` inserts executions: what the rows
    share, their context among it, is sent once); return those runnable now (to be published
    after commit)."""
    if rows:
        insert_executions_txn(conn, rows)
    return [r for r in rows if r["ready_at"] is not None]


def children_txn(conn: Connection, parent_id: str, parent_seq: int) -> list[RowMapping]:
    """The children of one fan-out, in branch order: only what deciding and joining the block
    reads (a foreach may have thousands: not their inputs, items and other columns)."""
    stmt = (select(t.c.id, t.c.status, t.c.error, t.c.context, t.c.branch_key, t.c.branch_index)
            .where(t.c.parent_id == parent_id, t.c.parent_seq == parent_seq)
            .order_by(t.c.branch_index))
    return list(conn.execute(stmt).mappings())


@dataclass(frozen=True)
class TakeNext:
    """A finishing iteration's worker offers to run the sibling its end releases, in the same
    task (no broker round trip): claimed in the finishing transaction with this lease token
    (the caller checked that the sibling starts on ``queue``, the queue the worker serves)."""

    token: str
    lease_until: datetime
    queue: str | None


@dataclass
class Finished:
    """What ending a branch or iteration set in motion: rows to publish (a released sibling, the
    woken parent), the sibling claimed for the finishing worker instead, if any, and whether the
    block's decision is left to a second transaction (``unsettled``: see ``child_finished_txn``)."""

    rows: list[Mapping[Any, Any]] = field(default_factory=list)
    claimed: RowMapping | None = None
    unsettled: bool = False


_TERMINAL = [s.value for s in TERMINAL]


def _sibling_statement(*, unleased: bool) -> Any:
    # Built once: constructing a statement costs more than running it, and every branch and
    # iteration that ends runs one of these.
    unfinished = (select(t.c.id)
                  .where(t.c.parent_id == bindparam("parent_id"), t.c.parent_seq == bindparam("parent_seq"),
                         t.c.id != bindparam("child_id"), t.c.status.not_in(_TERMINAL)))
    if unleased:
        unfinished = unfinished.where(t.c.lease_owner.is_(None))
    return unfinished.order_by(t.c.branch_index.desc()).limit(1)


_UNFINISHED_SIBLING = _sibling_statement(unleased=False)
_UNLEASED_SIBLING = _sibling_statement(unleased=True)


def _siblings(child: Mapping[Any, Any]) -> Any:
    return and_(t.c.parent_id == child["parent_id"], t.c.parent_seq == child["parent_seq"])


def _sibling_params(child: Mapping[Any, Any]) -> dict[str, Any]:
    return {"parent_id": child["parent_id"], "parent_seq": child["parent_seq"], "child_id": child["id"]}


def _unfinished_sibling(conn: Connection, child: Mapping[Any, Any]) -> bool:
    """Whether any sibling is unfinished, found without counting: a foreach may have thousands
    of siblings. Iterations start in item order, so an unfinished one, if any, is near the end:
    the scan goes backwards over the (parent_id, parent_seq, branch_index) index."""
    return conn.execute(_UNFINISHED_SIBLING, _sibling_params(child)).first() is not None


def _unleased_sibling(conn: Connection, child: Mapping[Any, Any]) -> bool:
    """Whether an unfinished sibling is held by no worker (parked, or waiting for its message)."""
    return conn.execute(_UNLEASED_SIBLING, _sibling_params(child)).first() is not None


def _release_parked(conn: Connection, child: Mapping[Any, Any], final_ctx: Any, now: datetime,
                    take: TakeNext | None) -> RowMapping | None:
    """Make the next parked sibling runnable, or claim it for ``take``'s worker: one statement.
    Parked ones come after every released one in item order, so the search starts past the
    finishing child (not at the block's first item); SKIP LOCKED lets siblings ending side by
    side (under a shared lock of the parent) each take a different one."""
    after = select(t.c.branch_index).where(t.c.id == child["id"]).scalar_subquery()
    parked = (select(t.c.id).where(_siblings(child), t.c.branch_index > after,
                                   t.c.status == ExecutionStatus.PENDING.value, t.c.ready_at.is_(None))
              .order_by(t.c.branch_index).limit(1).with_for_update(skip_locked=True).scalar_subquery())
    values: dict[str, Any] = {"dispatched_at": now, "updated_at": now}
    if child["kind"] == "sequence":  # in order: each iteration starts from the previous one's output
        values.update(context=final_ctx)
    if take is None:
        stmt = update(t).values(ready_at=now, **values).returning(*DISPATCH_COLUMNS)
    else:  # what a claim writes, for a row that was never started
        stmt = (update(t).values(**leased_values(take.token, take.lease_until, now), status=ExecutionStatus.RUNNING.value,
                                 started_at=now, **values)
                .returning(*CLAIMED_COLUMNS))
    return conn.execute(stmt.where(t.c.id == parked)).mappings().first()


def child_finished_txn(conn: Connection, child: Mapping[Any, Any], status: ExecutionStatus, final_ctx: Any,
                       now: datetime, fail_fast: bool, take: TakeNext | None = None, *,
                       shared: bool = False) -> Finished:
    """Called in the transaction that finishes ``child`` (after the parent row was locked):
    release the next parked sibling (claimed for ``take``'s worker, if given), wake the parent
    if the block is decided (``fail_fast``: a failed child decides it).

    ``shared``: the parent is locked FOR SHARE (a completed branch or iteration: its siblings end
    side by side). The parent is then not written: when no sibling was released and every
    unfinished one is leased, the decision is left ``unsettled``, for :func:`settle_block_txn` in
    a transaction of its own."""
    done = Finished()
    if status == ExecutionStatus.COMPLETED and child["kind"] != "branch":  # branches are never parked
        released = _release_parked(conn, child, final_ctx, now, take)
        if released is not None:  # an unfinished sibling: the block is not decided
            if take is None:
                done.rows.append(released)
            else:
                done.claimed = released
            return done
    if shared:
        # A sibling not leased yet ends later, in a transaction that sees this one's status or
        # settles the block after this commit: it decides. Otherwise every unfinished sibling
        # may be ending right now, unseen: settle after the commit.
        done.unsettled = not _unleased_sibling(conn, child)
    elif (fail_fast and status in FAILED) or not _unfinished_sibling(conn, child):
        woken = wake_txn(conn, child["parent_id"], now)
        if woken is not None:
            done.rows.append(woken)
    return done


def settle_block_txn(conn: Connection, child: Mapping[Any, Any], now: datetime) -> list[Mapping[Any, Any]]:
    """After ``child`` ended and committed, with its parent locked FOR UPDATE: wake the parent if
    no sibling is unfinished. Of iterations ending side by side, the last to take the lock sees
    the others' commits, so one of them wakes it."""
    if _unfinished_sibling(conn, child):
        return []
    woken = wake_txn(conn, child["parent_id"], now)
    return [] if woken is None else [woken]


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
