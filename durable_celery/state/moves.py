"""Transactions of ``migrate_executions``: the executions a mapping may move, and one move
(``engine/migrate.py`` decides it), each in a transaction of its own.

Lock order, as everywhere: the execution row first, then its waits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from durable_celery.engine.migrate import MOVABLE, Move
from durable_celery.state.executions import DISPATCH_COLUMNS
from durable_celery.state.tables import step_executions as s
from durable_celery.state.tables import waits as w
from durable_celery.state.tables import workflow_executions as t


def candidates_txn(conn: Connection, workflow: str, nodes: Sequence[str],
                   ids: Sequence[str] | None) -> list[RowMapping]:
    """The executions to consider, oldest first, unlocked: with ``ids``, those ids (whatever
    they stand on, so each can be reported); else the top-level executions of ``workflow`` on one
    of ``nodes`` in a status that may move."""
    stmt = select(t)
    if ids is not None:
        stmt = stmt.where(t.c.id.in_(list(ids)))
    else:
        stmt = stmt.where(t.c.workflow == workflow, t.c.kind == "workflow", t.c.current_node.in_(list(nodes)),
                          t.c.status.in_([status.value for status in MOVABLE]))
    return list(conn.execute(stmt.order_by(t.c.created_at, t.c.id)).mappings())


def lock_for_move_txn(conn: Connection, execution_id: str, seq: int) -> RowMapping | None:
    """Lock the execution if it is still at ``seq`` and no one holds it (SKIP LOCKED): None if
    a worker holds it now or it moved on since it was read."""
    stmt = select(t).where(t.c.id == execution_id, t.c.seq == seq).with_for_update(skip_locked=True)
    return conn.execute(stmt).mappings().first()


def move_txn(conn: Connection, row: RowMapping, move: Move) -> RowMapping | None:
    """Write ``move`` for the locked ``row``: the row (fenced on its seq), its visit's waits and
    the history row. Returns the row's dispatch columns (None: it moved meanwhile)."""
    stmt = (update(t).where(t.c.id == row["id"], t.c.seq == row["seq"])
            .values(seq=row["seq"] + 1, **move.values).returning(*DISPATCH_COLUMNS))
    moved = conn.execute(stmt).mappings().first()
    if moved is None:
        return None
    now: datetime = move.record["completed_at"]
    visit = (w.c.execution_id == row["id"], w.c.entered_seq == row["entered_seq"])
    if move.close_waits:
        conn.execute(update(w).where(w.c.execution_id == row["id"], w.c.status == "pending")
                     .values(status="cancelled", resolved_at=now))
    if move.reopen_waits:
        # the failure closed them (cancel_waits_txn); the visit goes on, so they wait again
        conn.execute(update(w).where(*visit, w.c.status == "cancelled").values(status="pending", resolved_at=None))
    conn.execute(insert(s).values(**move.record))
    return moved
