"""Transactions on what a step's journal points at beyond its own waits: the child workflows it
called, the Celery tasks it awaits, and events emitted by name (``broadcasts``).

Lock order, as everywhere: an execution row before the journal rows of its steps. A child that
ends wakes its caller in a transaction of its own, after the child's own commit: the caller is
then locked alone (a cancel that cascades holds the caller first, then the child).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, literal, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from durable_celery.clock import as_utc
from durable_celery.engine.statuses import TERMINAL, ExecutionStatus
from durable_celery.state.tables import broadcasts as b
from durable_celery.state.tables import events as ev
from durable_celery.state.tables import waits as w
from durable_celery.state.tables import workflow_executions as t
from durable_celery.state.waits import (
    lock_execution_txn,
    names_contain,
    pending_events_txn,
    visit_waits_txn,
    wake_all_txn,
    wake_txn,
)

_TERMINAL = [s.value for s in TERMINAL]
#: journal kinds an event emitted by name can satisfy
EVENT_KINDS = ("event", "any", "all")


# -- child workflows ------------------------------------------------------------------------------

def child_outcome_txn(conn: Connection, child_id: str) -> RowMapping | None:
    """The child's status, context and error, if it has ended."""
    stmt = select(t.c.id, t.c.status, t.c.context, t.c.error).where(t.c.id == child_id, t.c.status.in_(_TERMINAL))
    return conn.execute(stmt).mappings().first()


def wake_caller_txn(conn: Connection, child_id: str, caller_id: str, now: datetime) -> RowMapping | None:
    """The child ``child_id`` ended: wake ``caller_id`` if its current step waits for it."""
    caller = lock_execution_txn(conn, caller_id)
    if caller is None or caller["status"] != ExecutionStatus.WAITING:
        return None
    asks = select(w.c.id).where(w.c.execution_id == caller_id, w.c.entered_seq == caller["entered_seq"],
                                w.c.kind == "child", w.c.ref == child_id, w.c.status == "pending")
    if conn.execute(asks).first() is None:
        return None
    return wake_txn(conn, caller_id, now)


#: The unwoken-callers sweep takes one of this many slices of the callers per tick: its cost is
#: then a 32nd of the callers waiting for a child, and each is looked at every 32 ticks (32 s at
#: the default tick, within the 60 s a lost worker's lease takes to expire).
CALLER_SLICES = 32


def caller_slice(part: int) -> tuple[str | None, str | None]:
    """The child ids (uuids: lowercase hex) of slice ``part`` of :data:`CALLER_SLICES`, by their
    first two digits: from the lower bound on (included) to the upper bound (excluded), ``None``
    for no bound, so that any string falls in exactly one slice."""
    def bound(k: int) -> str:
        return format(k * 256 // CALLER_SLICES, "02x")

    return (None if part == 0 else bound(part)), (None if part == CALLER_SLICES - 1 else bound(part + 1))


def take_unwoken_callers_txn(conn: Connection, now: datetime, limit: int, part: int | None = None) -> list[RowMapping]:
    """The tick's safety net: waiting executions whose current step waits for a child that has
    ended (a worker died between the child's end and waking its caller). Wakes them.

    ``part``: only the callers of children in that slice of ids (:func:`caller_slice`), found
    through the partial index ``ix_waits_child``; None for all of them."""
    child = t.alias("child")
    # literals, not parameters: a generic plan matches the partial index only on what it reads
    found = [w.c.kind == literal_column("'child'"), w.c.status == literal_column("'pending'"),
             t.c.entered_seq == w.c.entered_seq, t.c.status == ExecutionStatus.WAITING.value,
             child.c.status.in_(_TERMINAL)]
    low, high = caller_slice(part) if part is not None else (None, None)
    if low is not None:
        found.append(w.c.ref >= low)
    if high is not None:
        found.append(w.c.ref < high)
    stmt = (select(t.c.id).select_from(w.join(t, w.c.execution_id == t.c.id).join(child, child.c.id == w.c.ref))
            .where(*found).limit(limit).with_for_update(skip_locked=True, of=t))
    return wake_all_txn(conn, list(dict.fromkeys(conn.execute(stmt).scalars())), now)


# -- awaited Celery tasks -------------------------------------------------------------------------

def mark_sent_txn(conn: Connection, wait_id: int, now: datetime) -> None:
    conn.execute(update(w).where(w.c.id == wait_id).values(sent_at=now))


def resolve_task_txn(conn: Connection, execution_id: str, entered_seq: int, idx: int, result: Any,
                     now: datetime) -> tuple[bool, RowMapping | None]:
    """Record the result of an awaited task on its pending wait and wake the execution if it is
    suspended there. (False, None) if the wait is not pending any more: a duplicate or late
    result, or one for a visit that is over, changes nothing."""
    execution = lock_execution_txn(conn, execution_id)
    if execution is None:
        return False, None
    settled = conn.execute(
        update(w).where(w.c.execution_id == execution_id, w.c.entered_seq == entered_seq, w.c.idx == idx,
                        w.c.kind == "task", w.c.status == "pending")
        .values(status="resolved", result=result, resolved_at=now))
    if settled.rowcount != 1:
        return False, None
    if execution["status"] != ExecutionStatus.WAITING or execution["entered_seq"] != entered_seq:
        return True, None  # still running the step: it finds the result when it suspends
    return True, wake_txn(conn, execution_id, now)


# -- events emitted by name -----------------------------------------------------------------------

def insert_broadcast_txn(conn: Connection, name: str, payload: Any, now: datetime) -> int:
    return int(conn.execute(insert(b).values(name=name, payload=payload, created_at=now).returning(b.c.id)).scalar_one())


def broadcast_txn(conn: Connection, broadcast_id: int) -> RowMapping | None:
    return conn.execute(select(b).where(b.c.id == broadcast_id)).mappings().first()


def broadcast_targets_txn(conn: Connection, name: str, emitted_at: datetime) -> list[str]:
    """The top-level executions, started by ``emitted_at`` and still active, whose tree has a
    step waiting for event ``name`` now (nothing locked)."""
    member = t.alias("member")
    root = t.alias("root")
    stmt = (select(root.c.id).distinct()
            .select_from(w.join(member, and_(w.c.execution_id == member.c.id, w.c.entered_seq == member.c.entered_seq))
                         .join(root, root.c.id == member.c.root_id))
            .where(w.c.kind.in_(EVENT_KINDS), w.c.status == "pending", names_contain(conn, name),
                   root.c.status.not_in(_TERMINAL), root.c.created_at <= emitted_at))
    return sorted(conn.execute(stmt).scalars())


def copy_broadcasts_txn(conn: Connection, root_id: str, names: Sequence[str],
                        broadcast_id: int | None = None) -> None:
    """Keep for the tree of ``root_id`` the events emitted by name (with one of ``names``, or
    just ``broadcast_id``) since it started, as pending events; each at most once."""
    started = select(t.c.created_at).where(t.c.id == root_id).scalar_subquery()
    source = select(literal(root_id), literal("event"), b.c.name, b.c.payload, literal("pending"), b.c.created_at,
                    b.c.id).where(b.c.created_at >= started)
    source = source.where(b.c.id == broadcast_id) if broadcast_id is not None else source.where(
        b.c.name.in_(list(names)))
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(ev).from_select(
        ["execution_id", "kind", "name", "payload", "status", "created_at", "broadcast_id"], source
    ).on_conflict_do_nothing(index_elements=["execution_id", "broadcast_id"])
    conn.execute(stmt)


def event_waits(waits: Sequence[Mapping[Any, Any]]) -> list[str]:
    """The event names the pending event waits among ``waits`` ask for."""
    return sorted({name for wait in waits if wait["kind"] in EVENT_KINDS and wait["status"] == "pending"
                   for name in wait["names"]})


# -- waking a suspended step ----------------------------------------------------------------------

def should_wake(conn: Connection, execution_id: str, entered_seq: int, now: datetime, root_id: str) -> bool:
    """Would a re-run of the suspended step get further: the wait it stopped at was settled by
    someone else (an awaited task's result), the child it waits for ended, an event or input
    for one of its pending waits is waiting to be consumed, or one of their timeouts is due."""
    waits = visit_waits_txn(conn, execution_id, entered_seq)
    if waits and waits[-1]["kind"] == "task" and waits[-1]["status"] != "pending":
        return True
    pending = [wait for wait in waits if wait["status"] == "pending"]
    names = event_waits(pending)
    if names:
        copy_broadcasts_txn(conn, root_id, names)
    for wait in pending:
        if wait["timeout_at"] is not None and as_utc(wait["timeout_at"]) <= now:
            return True
        if wait["kind"] == "child":
            if wait["ref"] is not None and child_outcome_txn(conn, wait["ref"]) is not None:
                return True
            continue
        kind = "input" if wait["kind"] == "input" else "event"
        if wait["names"] and pending_events_txn(conn, root_id, kind, wait["names"], None, wait["seen_event_id"]):
            return True
    return False
