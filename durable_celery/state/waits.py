"""Transactions on ``waits`` and ``events``: the waits a step reached, the events and inputs
sent to an execution (kept until a wait consumes them), waking waiting executions.

Lock order, everywhere: the execution row first (``FOR UPDATE``), then its waits and events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    and_,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.expression import ColumnElement

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


_MEMBER_STATUSES = [ExecutionStatus.PENDING.value, ExecutionStatus.RUNNING.value, ExecutionStatus.WAITING.value]


def _tree(root_id: str) -> ColumnElement[bool]:
    """A top-level execution and its active branches and iterations."""
    return or_(t.c.id == root_id, and_(t.c.root_id == root_id, t.c.status.in_(_MEMBER_STATUSES)))


def names_contain(conn: Connection, name: str) -> ColumnElement[bool]:
    """The wait's ``names`` include ``name``."""
    if conn.dialect.name == "postgresql":
        return type_coerce(w.c.names, JSONB).contains([name])
    names = func.json_each(w.c.names).table_valued("value")
    return exists().select_from(names).where(names.c.value == name)


def _of_kind(kind: str) -> ColumnElement[bool]:
    """Waits that ``kind`` ("event" or "input") can satisfy: input waits take inputs; event,
    any and all waits take events."""
    return w.c.kind == "input" if kind == "input" else w.c.kind.in_(["event", "any", "all"])


def _asks(conn: Connection, kind: str, name: str, pending: bool) -> ColumnElement[bool]:
    """The execution's current visit has a wait of ``kind`` for ``name`` (only a pending one
    if ``pending``)."""
    found = [w.c.execution_id == t.c.id, w.c.entered_seq == t.c.entered_seq, _of_kind(kind), names_contain(conn, name)]
    if pending:
        found.append(w.c.status == "pending")
    return exists().where(*found)


def asking_ids_txn(conn: Connection, root_id: str, kind: str, name: str) -> list[str]:
    """The executions of a tree (the root, its active branches and iterations) whose current
    visit has a pending wait for ``name``; one query, nothing locked."""
    stmt = select(t.c.id).where(_tree(root_id), _asks(conn, kind, name, pending=True))
    return list(conn.execute(stmt).scalars())


def asked_txn(conn: Connection, root_id: str, kind: str, name: str) -> bool:
    """Whether some execution of the tree has a wait for ``name`` (any status) in its current visit."""
    stmt = select(t.c.id).where(_tree(root_id), _asks(conn, kind, name, pending=False)).limit(1)
    return conn.execute(stmt).first() is not None


def lock_asking_txn(conn: Connection, root_id: str, kind: str, name: str,
                    among: Sequence[str] | None = None) -> list[tuple[RowMapping, RowMapping]]:
    """Lock, in id order, the executions of a tree whose current visit has a pending wait for
    ``name`` (only those ``among`` if given), and no other member of the tree. Returns
    (execution, wait) for each pending wait, read again once the locks are held (a step may have
    settled it, or moved on, in between), the root first, then by id, waits in call order; the
    execution mapping holds ``id``, ``status`` and ``entered_seq``. The caller holds the root's
    lock: the lock order everywhere is ancestor first."""
    stmt = select(t.c.id, t.c.status, t.c.entered_seq).where(_tree(root_id), _asks(conn, kind, name, pending=True))
    if among is not None:
        stmt = stmt.where(t.c.id.in_(list(among)))
    members = {row["id"]: row for row in conn.execute(stmt.order_by(t.c.id).with_for_update(of=t)).mappings()}
    if not members:
        return []
    waits = select(w).join(t, and_(w.c.execution_id == t.c.id, w.c.entered_seq == t.c.entered_seq)).where(
        t.c.id.in_(list(members)), w.c.status == "pending", _of_kind(kind))
    found = [(members[wait["execution_id"]], wait) for wait in conn.execute(waits).mappings()
             if name in wait["names"]]
    return sorted(found, key=lambda pair: (pair[0]["id"] != root_id, pair[0]["id"], pair[1]["idx"]))


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


def wake_txn(conn: Connection, execution_id: str, now: datetime) -> RowMapping | None:
    """Make a waiting execution runnable again (bumping seq fences any stale message)."""
    stmt = (update(t).where(t.c.id == execution_id, t.c.status == ExecutionStatus.WAITING.value)
            .values(status=ExecutionStatus.RUNNING.value, seq=t.c.seq + 1, ready_at=now, dispatched_at=now,
                    updated_at=now)
            .returning(*DISPATCH_COLUMNS))
    return conn.execute(stmt).mappings().first()


def wake_all_txn(conn: Connection, ids: Sequence[str], now: datetime) -> list[RowMapping]:
    """:func:`wake_txn` for several executions in one statement (the caller locked them)."""
    if not ids:
        return []
    stmt = (update(t).where(t.c.id.in_(list(ids)), t.c.status == ExecutionStatus.WAITING.value)
            .values(status=ExecutionStatus.RUNNING.value, seq=t.c.seq + 1, ready_at=now, dispatched_at=now,
                    updated_at=now)
            .returning(*DISPATCH_COLUMNS))
    return list(conn.execute(stmt).mappings())


def take_due_waits_txn(conn: Connection, now: datetime, limit: int) -> list[RowMapping]:
    """Wake waiting executions whose current wait timed out (sleeps included), oldest timeout
    first. Driven by the partial index ``ix_waits_due``: the due pending waits, joined to their
    executions still waiting at the same visit. The execution rows are locked with SKIP LOCKED
    and leave `waiting` here, so two beats never wake one twice (nor one execution twice for two
    of its waits that are due)."""
    # 'pending' is written into the SQL, not bound, so the planner always matches the index's
    # predicate (a generic plan of a prepared statement can't prove it from a parameter)
    due = (select(t.c.id).select_from(w.join(t, w.c.execution_id == t.c.id))
           .where(w.c.status == literal_column("'pending'"), w.c.timeout_at.is_not(None),
                  w.c.timeout_at <= now, t.c.entered_seq == w.c.entered_seq,
                  t.c.status == ExecutionStatus.WAITING.value)
           .order_by(w.c.timeout_at).limit(limit).with_for_update(skip_locked=True, of=t))
    return wake_all_txn(conn, list(dict.fromkeys(conn.execute(due).scalars())), now)


def cancel_waits_txn(conn: Connection, execution_id: str, now: datetime) -> None:
    """Close the open waits of an execution that finished (pending inputs no longer show)."""
    conn.execute(update(w).where(w.c.execution_id == execution_id, w.c.status == "pending")
                 .values(status="cancelled", resolved_at=now))


def list_inputs_txn(conn: Connection, status: str | None, timeout_before: datetime | None,
                    limit: int, execution_id: str | None = None, expiring_first: bool = False) -> list[RowMapping]:
    """Input waits, with ``workflow_id``: the top-level execution to answer through, and its
    workflow's name; oldest first, or (``expiring_first``) by timeout, those without one last."""
    stmt = (select(w, func.coalesce(t.c.root_id, t.c.id).label("workflow_id"), t.c.workflow)
            .join(t, t.c.id == w.c.execution_id).where(w.c.kind == "input"))
    if status is not None:
        stmt = stmt.where(w.c.status == status)
    if timeout_before is not None:
        stmt = stmt.where(w.c.timeout_at.is_not(None), w.c.timeout_at < timeout_before)
    if execution_id is not None:
        stmt = stmt.where(or_(t.c.id == execution_id, t.c.root_id == execution_id))
    order: list[ColumnElement[Any]] = [w.c.created_at, w.c.id]
    if expiring_first:
        order = [w.c.timeout_at.asc().nulls_last(), *order]
    return list(conn.execute(stmt.order_by(*order).limit(limit)).mappings())


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


