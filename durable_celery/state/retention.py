"""Retention: deleting finished executions in small batches (``Durable.cleanup``).

A batch is one short transaction. It picks the oldest finished top-level executions past the
cutoff, walking ``ix_workflow_executions_finished`` from where the last batch stopped (a keyset,
so no batch rescans the index entries its predecessors deleted), and locks them
``FOR UPDATE SKIP LOCKED``: a row someone holds is passed over, never waited for. It then deletes
the whole tree of each (the branches and iterations whose ``root_id`` it is) with their step
attempts, events and waits, children before parents, so the foreign keys' cascades find nothing
left to do and every count is exact.

Never deleted: an execution with an active member in its tree, and a child workflow whose caller
(or the caller's top-level execution) is still active, since a woken caller reads its child's
final context. Terminal statuses are final, so what one batch judges finished stays finished.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, literal_column, or_, select, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ColumnElement

from durable_celery.engine.statuses import ACTIVE, ExecutionStatus
from durable_celery.state.tables import broadcasts as b
from durable_celery.state.tables import events as ev
from durable_celery.state.tables import step_executions as st
from durable_celery.state.tables import waits as w
from durable_celery.state.tables import workflow_executions as t

#: a literal: a generic plan then still matches the partial index ``ix_workflow_executions_finished``
_WORKFLOW: ColumnElement[str] = literal_column("'workflow'")
_ACTIVE = sorted(s.value for s in ACTIVE)


@dataclass(frozen=True)
class Removed:
    """What one batch deleted (or, in a dry run, would delete)."""

    roots: int
    executions: int
    attempts: int
    waits: int
    events: int
    #: the keyset position the next batch starts after: (completed_at, id) of the last root
    last: tuple[datetime, str] | None


def _deletable(cutoff: datetime, statuses: Sequence[str]) -> Any:
    e = t
    member = t.alias("member")
    caller = t.alias("caller")
    caller_root = t.alias("caller_root")
    active_member = select(member.c.id).where(member.c.root_id == e.c.id, member.c.status.in_(_ACTIVE)).exists()
    caller_root_active = select(caller_root.c.id).where(caller_root.c.id == caller.c.root_id,
                                                        caller_root.c.status.in_(_ACTIVE)).exists()
    active_caller = select(caller.c.id).where(caller.c.id == e.c.parent_id,
                                              or_(caller.c.status.in_(_ACTIVE), caller_root_active)).exists()
    return (select(e.c.id, e.c.completed_at)
            .where(e.c.kind == _WORKFLOW, e.c.completed_at.is_not(None), e.c.completed_at < cutoff,
                   e.c.status.in_(list(statuses)), ~active_member, ~active_caller))


def cleanup_batch_txn(conn: Connection, cutoff: datetime, statuses: Sequence[str], after: tuple[datetime, str] | None,
                      limit: int, dry_run: bool) -> Removed:
    """Delete (``dry_run``: count) the next ``limit`` deletable executions after ``after``."""
    stmt = _deletable(cutoff, statuses)
    if after is not None:
        stmt = stmt.where(tuple_(t.c.completed_at, t.c.id) > tuple_(*after))
    stmt = stmt.order_by(t.c.completed_at, t.c.id).limit(limit)
    if not dry_run:
        stmt = stmt.with_for_update(skip_locked=True, of=t)
    roots = list(conn.execute(stmt))
    if not roots:
        return Removed(0, 0, 0, 0, 0, None)
    root_ids = [r.id for r in roots]
    tree = list(conn.execute(select(t.c.id).where(t.c.root_id.in_(root_ids))).scalars())
    ids = sorted({*tree, *root_ids})
    last = (roots[-1].completed_at, roots[-1].id)
    if dry_run:
        return Removed(len(roots), len(ids), _count(conn, st.c.execution_id, ids), _count(conn, w.c.execution_id, ids),
                       _count(conn, ev.c.execution_id, ids), last)
    attempts = conn.execute(delete(st).where(st.c.execution_id.in_(ids))).rowcount
    events = conn.execute(delete(ev).where(ev.c.execution_id.in_(ids))).rowcount  # before the waits they point at
    waits = conn.execute(delete(w).where(w.c.execution_id.in_(ids))).rowcount
    executions = conn.execute(delete(t).where(t.c.id.in_(ids))).rowcount
    return Removed(len(roots), executions, attempts, waits, events, last)


def _count(conn: Connection, column: Any, ids: list[str]) -> int:
    return int(conn.execute(select(func.count()).where(column.in_(ids))).scalar_one())


def broadcast_horizon_txn(conn: Connection, cutoff: datetime) -> datetime:
    """Events emitted by name before this time can no longer be received: they are older than
    the cutoff, and every active execution started after them (a tree receives only what was
    emitted since its top-level execution started)."""
    horizon = cutoff
    for status in _ACTIVE:  # one index probe each on (status, created_at)
        oldest = conn.execute(select(func.min(t.c.created_at))
                              .where(t.c.status == literal_column(f"'{ExecutionStatus(status).value}'"))).scalar()
        if oldest is not None and oldest < horizon:
            horizon = oldest
    return horizon


def cleanup_broadcasts_txn(conn: Connection, horizon: datetime, limit: int, dry_run: bool) -> int:
    """Delete up to ``limit`` broadcasts emitted before ``horizon`` (``dry_run``: count them all)."""
    if dry_run:  # all at once: a dry run deletes nothing, so batches would count the same rows again
        return int(conn.execute(select(func.count()).where(b.c.created_at < horizon)).scalar_one())
    stmt = select(b.c.id).where(b.c.created_at < horizon).order_by(b.c.id).limit(limit)
    ids = list(conn.execute(stmt.with_for_update(skip_locked=True)).scalars())
    if not ids:
        return 0
    return int(conn.execute(delete(b).where(b.c.id.in_(ids))).rowcount)
