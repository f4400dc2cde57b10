"""Transactions on ``waits`` and ``events``: the waits a step reached, the events and inputs
sent to an execution (kept until a wait consumes them), waking waiting executions.

Lock order, everywhere: the execution row first (``FOR UPDATE``), then its waits and events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, RowMapping, exists, func, insert, select, update

from durable_celery.engine.statuses import ExecutionStatus
from durable_celery.state.executions import DISPATCH_COLUMNS
from durable_celery.state.tables import events as ev
from durable_celery.state.tables import waits as w
from durable_celery.state.tables import workflow_executions as t


def lock_execution_txn(conn: Connection, execution_id: str) -> RowMapping | None:
    return conn.execute(select(t).where(t.c.id == execution_id).with_for_update()).mappings().first()


def root_of_txn(conn: Connection, execution_id: str) -> str | None:
    """The id of the top-level execution ``execution_id`` belongs to (None: no such execution)."""
    row = conn.execute(select(t.c.id, t.c.root_id).where(t.c.id == execution_id)).first()
    return None if row is None else (row.root_id or row.id)


def tree_members_txn(conn: Connection, root_id: str) -> list[RowMapping]:
    """The active branches and iterations under a top-level execution, locked in id order
    (after the root: the lock order everywhere is ancestor first)."""
    stmt = (select(t).where(t.c.root_id == root_id, t.c.id != root_id,
                            t.c.status.in_([ExecutionStatus.PENDING.value, ExecutionStatus.RUNNING.value,
                                            ExecutionStatus.WAITING.value]))
            .order_by(t.c.id).with_for_update())
    return list(conn.execute(stmt).mappings())


def lock_leased_txn(conn: Connection, execution_id: str, seq: int, token: str) -> RowMapping | None:
    """Lock the execution only if this worker still holds it at ``seq``."""
    stmt = select(t).where(t.c.id == execution_id, t.c.seq == seq, t.c.lease_owner == token).with_for_update()
    return conn.execute(stmt).mappings().first()


def get_wait_txn(conn: Connection, execution_id: str, entered_seq: int, idx: int) -> RowMapping | None:
    stmt = select(w).where(w.c.execution_id == execution_id, w.c.entered_seq == entered_seq, w.c.idx == idx)
    return conn.execute(stmt).mappings().first()


def insert_wait_txn(conn: Connection, row: dict[str, Any]) -> RowMapping:
    conn.execute(insert(w).values(**row))
    found = get_wait_txn(conn, row["execution_id"], row["entered_seq"], row["idx"])
    assert found is not None
    return found


def settle_wait_txn(conn: Connection, wait_id: int, status: str, result: Any, now: datetime | None) -> None:
    conn.execute(update(w).where(w.c.id == wait_id).values(status=status, result=result, resolved_at=now))


def mark_seen_txn(conn: Connection, wait_id: int, event_id: int, result: Any) -> None:
    """A pending wait looked at events up to ``event_id`` (and kept ``result`` so far)."""
    conn.execute(update(w).where(w.c.id == wait_id).values(seen_event_id=event_id, result=result))


def pending_events_txn(conn: Connection, execution_id: str, kind: str, names: Sequence[str],
                       not_after: datetime | None, after_id: int | None = None) -> list[RowMapping]:
    """Unconsumed events or inputs with one of ``names``, oldest first; only those that
    arrived by ``not_after`` (a wait's timeout) and, if given, after event ``after_id`` count."""
    stmt = select(ev).where(ev.c.execution_id == execution_id, ev.c.kind == kind, ev.c.status == "pending",
                            ev.c.name.in_(list(names)))
    if after_id is not None:
        stmt = stmt.where(ev.c.id > after_id)
    if not_after is not None:
        stmt = stmt.where(ev.c.created_at <= not_after)
    return list(conn.execute(stmt.order_by(ev.c.created_at, ev.c.id)).mappings())


def mark_event_txn(conn: Connection, event_id: int, status: str, wait_id: int | None, now: datetime) -> bool:
    """Consume (or reject) a pending event; False if another wait took it first."""
    result = conn.execute(update(ev).where(ev.c.id == event_id, ev.c.status == "pending")
                          .values(status=status, consumed_by=wait_id, consumed_at=now))
    return result.rowcount == 1


def insert_event_txn(conn: Connection, execution_id: str, kind: str, name: str, payload: Any, now: datetime) -> None:
    conn.execute(insert(ev).values(execution_id=execution_id, kind=kind, name=name, payload=payload,
                                   status="pending", created_at=now))


def visit_waits_txn(conn: Connection, execution_id: str, entered_seq: int) -> list[RowMapping]:
    """Every wait of one visit of the current step, in call order."""
    stmt = select(w).where(w.c.execution_id == execution_id, w.c.entered_seq == entered_seq)
    return list(conn.execute(stmt.order_by(w.c.idx)).mappings())


def pending_waits_txn(conn: Connection, execution_id: str, entered_seq: int) -> list[RowMapping]:
    return [wait for wait in visit_waits_txn(conn, execution_id, entered_seq) if wait["status"] == "pending"]


def should_wake(conn: Connection, execution_id: str, entered_seq: int, now: datetime, root_id: str) -> bool:
    """Would a re-run of the step get further: an event or input for one of its pending waits
    is waiting to be consumed, or one of their timeouts is due."""
    for wait in pending_waits_txn(conn, execution_id, entered_seq):
        if wait["timeout_at"] is not None and _utc(wait["timeout_at"]) <= now:
            return True
        kind = "input" if wait["kind"] == "input" else "event"
        if wait["names"] and pending_events_txn(conn, root_id, kind, wait["names"], None, wait["seen_event_id"]):
            return True
    return False


def wake_txn(conn: Connection, execution_id: str, now: datetime) -> RowMapping | None:
    """Make a waiting execution runnable again (bumping seq fences any stale message)."""
    stmt = (update(t).where(t.c.id == execution_id, t.c.status == ExecutionStatus.WAITING.value)
            .values(status=ExecutionStatus.RUNNING.value, seq=t.c.seq + 1, ready_at=now, dispatched_at=now,
                    updated_at=now)
            .returning(*DISPATCH_COLUMNS))
    return conn.execute(stmt).mappings().first()


def take_due_waits_txn(conn: Connection, now: datetime, limit: int) -> list[RowMapping]:
    """Wake waiting executions whose current wait timed out (sleeps included). The execution
    rows are locked with SKIP LOCKED and leave `waiting` here, so two beats never wake one twice."""
    due = exists().where(w.c.execution_id == t.c.id, w.c.entered_seq == t.c.entered_seq, w.c.status == "pending",
                         w.c.timeout_at.is_not(None), w.c.timeout_at <= now)
    stmt = (select(t.c.id).where(t.c.status == ExecutionStatus.WAITING.value, due).limit(limit)
            .with_for_update(skip_locked=True, of=t))
    woken = []
    for execution_id in list(conn.execute(stmt).scalars()):
        row = wake_txn(conn, execution_id, now)
        if row is not None:
            woken.append(row)
    return woken


def cancel_waits_txn(conn: Connection, execution_id: str, now: datetime) -> None:
    """Close the open waits of an execution that finished (pending inputs no longer show)."""
    conn.execute(update(w).where(w.c.execution_id == execution_id, w.c.status == "pending")
                 .values(status="cancelled", resolved_at=now))


def list_inputs_txn(conn: Connection, status: str | None, timeout_before: datetime | None,
                    limit: int) -> list[RowMapping]:
    """Input waits, with ``workflow_id``: the top-level execution to answer through."""
    stmt = (select(w, func.coalesce(t.c.root_id, t.c.id).label("workflow_id"))
            .join(t, t.c.id == w.c.execution_id).where(w.c.kind == "input"))
    if status is not None:
        stmt = stmt.where(w.c.status == status)
    if timeout_before is not None:
        stmt = stmt.where(w.c.timeout_at.is_not(None), w.c.timeout_at < timeout_before)
    return list(conn.execute(stmt.order_by(w.c.created_at, w.c.id).limit(limit)).mappings())


def list_events_txn(conn: Connection, execution_id: str | None, status: str | None, limit: int) -> list[RowMapping]:
    stmt = select(ev)
    if execution_id is not None:
        stmt = stmt.where(ev.c.execution_id == execution_id)
    if status is not None:
        stmt = stmt.where(ev.c.status == status)
    return list(conn.execute(stmt.order_by(ev.c.created_at, ev.c.id).limit(limit)).mappings())


def _utc(value: datetime) -> datetime:
    from durable_celery.clock import as_utc

    return as_utc(value)


