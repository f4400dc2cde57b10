"""Transactions of controlled queues (``queues=``, docs/queues.md): the controlled claim, the
waiters a freed slot dispatches, pause and resume, and the counts behind ``queue_stats``.

How a limit holds without check-then-write races: every claim on a controlled queue locks that
queue's ``queue_control`` row (``FOR UPDATE``; on SQLite, whose writers are serialised, a no-op
``UPDATE`` takes the write lock), and only then counts, in a fresh statement, the rows whose
lease holds a slot of the queue (``slot = queue AND lease_owner IS NOT NULL``). Claims of one
queue therefore count and take slots one at a time; a slot frees itself in the transaction that
drops the lease (a checkpoint, the tick releasing an expired lease, a cancel), with no counter to
keep in step. A count that misses a slot freed concurrently only turns a claim away, never lets
one too many in. ``pause_queue`` updates the same row, so it waits for claims in flight and every
claim after it sees the pause.

Lock order: the queue row, then execution rows (no other transaction locks a queue row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from durable_celery import codec
from durable_celery.engine.statuses import RUNNABLE
from durable_celery.queue_limits import QueueLimits, Rate, key_value
from durable_celery.state.executions import CLAIMED_COLUMNS, DISPATCH_COLUMNS, claimed_values
from durable_celery.state.tables import queue_control as qc
from durable_celery.state.tables import queue_starts as qs
from durable_celery.state.tables import workflow_executions as t

_RUNNABLE = [s.value for s in RUNNABLE]
#: the ``queue_control`` row of a queue (per-key rows are not used: its claims lock this one)
QUEUE_ROW = ""


@dataclass(frozen=True)
class Refusal:
    """Why a controlled claim was turned away: ``paused``, ``concurrency``, ``key_concurrency``,
    ``rate`` or ``key_rate``; the row now waits for the queue (``slot`` set, no lease)."""

    reason: str


def ensure_queue_txn(conn: Connection, queue: str, now: datetime) -> None:
    """The queue's control row, created unpaused if missing."""
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(dialect_insert(qc).values(queue=queue, key=QUEUE_ROW, paused=False, updated_at=now)
                 .on_conflict_do_nothing(index_elements=["queue", "key"]))


def lock_queue_txn(conn: Connection, queue: str, now: datetime) -> bool:
    """Lock the queue's control row for this transaction; returns whether it is paused."""
    for _ in range(2):
        if conn.dialect.name == "postgresql":
            paused = conn.execute(select(qc.c.paused).where(qc.c.queue == queue, qc.c.key == QUEUE_ROW)
                                  .with_for_update()).scalar()
        else:  # SQLite: a write takes the database's write lock, held to the commit
            paused = conn.execute(update(qc).where(qc.c.queue == queue, qc.c.key == QUEUE_ROW)
                                  .values(updated_at=qc.c.updated_at).returning(qc.c.paused)).scalar()
        if paused is not None:
            return bool(paused)
        ensure_queue_txn(conn, queue, now)
    raise AssertionError(f"the control row of queue {queue!r} could not be created")  # pragma: no cover


def running_txn(conn: Connection, queue: str, key: str | None = None) -> int:
    """Steps holding a slot of ``queue`` now (of one key's, with ``key``)."""
    stmt = select(func.count()).select_from(t).where(t.c.slot == queue, t.c.lease_owner.is_not(None))
    if key is not None:
        stmt = stmt.where(t.c.slot_key == key)
    return int(conn.execute(stmt).scalar_one())


def _starts_txn(conn: Connection, queue: str, key: str, rate: Rate, now: datetime) -> int:
    """Starts in the rate's sliding window ending now; older records are deleted."""
    since = now - timedelta(seconds=rate.period)
    conn.execute(delete(qs).where(qs.c.queue == queue, qs.c.key == key, qs.c.started_at <= since))
    stmt = select(func.count()).select_from(qs).where(qs.c.queue == queue, qs.c.key == key, qs.c.started_at > since)
    return int(conn.execute(stmt).scalar_one())


def _claim_statement() -> Any:
    now: Any = bindparam("now")
    return (
        update(t)
        .where(t.c.id == bindparam("execution_id"), t.c.seq == bindparam("expected_seq"),
               t.c.status.in_(_RUNNABLE), t.c.lease_owner.is_(None), t.c.ready_at.is_not(None), t.c.ready_at <= now)
        .values(**{**claimed_values(bindparam("token"), bindparam("lease_until"), now),
                   "slot": bindparam("slot"), "slot_key": bindparam("slot_key")})
        .returning(*CLAIMED_COLUMNS)
    )


_CLAIM = _claim_statement()


def claim_controlled_txn(conn: Connection, limits: QueueLimits, execution_id: str, seq: int, token: str,
                         clock: Callable[[], datetime], lease: timedelta, *,
                         locked: bool = False) -> RowMapping | Refusal | None:
    """Claim on a controlled queue, in the caller's transaction: the row (its lease now holds a
    slot of the queue), a :class:`Refusal` (the row waits for the queue, no message live), or
    ``None`` when the message is a duplicate, stale or early (as ``claim_txn``).

    The time is read once the queue is locked: claims then record their starts in the order they
    hold the lock, which the sliding window of a rate limit relies on. ``locked``: the caller
    holds the queue's lock already (and found it not paused)."""
    queue = limits.name
    paused = False if locked else lock_queue_txn(conn, queue, clock())
    now = clock()
    lease_until = now + lease
    fence = and_(t.c.id == execution_id, t.c.seq == seq, t.c.status.in_(_RUNNABLE), t.c.lease_owner.is_(None),
                 t.c.ready_at.is_not(None), t.c.ready_at <= now)
    key: str | None = None
    if limits.per_key is not None:
        context = conn.execute(select(t.c.context).where(fence)).first()
        if context is None:
            return None
        key = key_value(codec.decode(context[0]), limits.per_key.key)
    reason = _refusal(conn, limits, key, paused, now)
    if reason is not None:
        parked = conn.execute(update(t).where(fence).values(slot=queue, slot_key=key, dispatched_at=None))
        return Refusal(reason) if parked.rowcount == 1 else None
    row = conn.execute(_CLAIM, {"execution_id": execution_id, "expected_seq": seq, "token": token, "now": now,
                                "lease_until": lease_until, "slot": queue, "slot_key": key}).mappings().first()
    if row is not None:
        if limits.rate is not None:
            conn.execute(insert(qs).values(queue=queue, key=QUEUE_ROW, started_at=now))
        if key is not None and limits.per_key is not None and limits.per_key.rate is not None:
            conn.execute(insert(qs).values(queue=queue, key=key, started_at=now))
    return row


def claim_next_txn(conn: Connection, limits: QueueLimits, token: str, clock: Callable[[], datetime],
                   lease: timedelta, redispatch_after: timedelta) -> RowMapping | None:
    """Claim, for the task whose step just freed a slot, the step that has waited longest for
    the queue (highest priority first) and has no live message, if the limits let one more start
    now; ``None`` otherwise. One transaction, under the queue's lock, like any controlled claim."""
    paused = lock_queue_txn(conn, limits.name, clock())
    now = clock()
    waiter = take_waiters_txn(conn, limits, now, redispatch_after, 1, claim=True)
    if paused or not waiter:
        return None
    row = waiter[0]
    key = row["slot_key"]
    if _refusal(conn, limits, key, paused, now) is not None:
        return None
    claimed = claim_controlled_txn(conn, limits, row["id"], row["seq"], token, lambda: now, lease, locked=True)
    return None if isinstance(claimed, Refusal) else claimed


def _refusal(conn: Connection, limits: QueueLimits, key: str | None, paused: bool, now: datetime) -> str | None:
    queue = limits.name
    if paused:
        return "paused"
    if limits.concurrency is not None and running_txn(conn, queue) >= limits.concurrency:
        return "concurrency"
    pk = limits.per_key
    if pk is not None and key is not None and pk.concurrency is not None and \
            running_txn(conn, queue, key) >= pk.concurrency:
        return "key_concurrency"
    if limits.rate is not None and _starts_txn(conn, queue, QUEUE_ROW, limits.rate, now) >= limits.rate.limit:
        return "rate"
    if pk is not None and key is not None and pk.rate is not None and \
            _starts_txn(conn, queue, key, pk.rate, now) >= pk.rate.limit:
        return "key_rate"
    return None


def _waiting(queue: str, now: datetime) -> Any:
    """Rows that wait for a slot of ``queue``: turned away (or released by the tick), runnable."""
    return and_(t.c.slot == queue, t.c.lease_owner.is_(None), t.c.status.in_(_RUNNABLE), t.c.ready_at.is_not(None),
                t.c.ready_at <= now)


def capacity_txn(conn: Connection, limits: QueueLimits, now: datetime, redispatch_after: timedelta,
                 batch: int) -> int:
    """How many waiters to dispatch now: free slots (and rate left), less the waiters already
    dispatched and not yet claimed. Locks the queue's row (the caller's transaction): a claim
    turned away meanwhile has committed its row as waiting before this counts. Too many only
    means a claim turned away again; every freed slot and every tick estimate afresh."""
    if lock_queue_txn(conn, limits.name, now):
        return 0
    free = batch
    if limits.concurrency is not None:
        free = min(free, limits.concurrency - running_txn(conn, limits.name))
    if limits.rate is not None:
        since = now - timedelta(seconds=limits.rate.period)
        started = conn.execute(select(func.count()).select_from(qs).where(
            qs.c.queue == limits.name, qs.c.key == QUEUE_ROW, qs.c.started_at > since)).scalar_one()
        free = min(free, limits.rate.limit - int(started))
    if free <= 0:
        return 0
    in_flight = conn.execute(select(func.count()).select_from(t).where(
        _waiting(limits.name, now), t.c.dispatched_at > now - redispatch_after)).scalar_one()
    return max(0, free - int(in_flight))


def take_waiters_txn(conn: Connection, limits: QueueLimits, now: datetime, redispatch_after: timedelta,
                     limit: int, *, claim: bool = False) -> list[RowMapping]:
    """Up to ``limit`` rows waiting for the queue with no live message, highest priority first
    (then the longest ready), skipping keys at their concurrency limit; marked dispatched (locked
    with SKIP LOCKED, so two callers never take the same row). ``claim``: only locked and
    returned (``id``, ``seq``, ``slot_key``), for the caller to claim in this transaction."""
    if limit <= 0:
        return []
    no_message = or_(t.c.dispatched_at.is_(None), t.c.dispatched_at <= now - redispatch_after)
    condition = and_(_waiting(limits.name, now), no_message)
    pk = limits.per_key
    if pk is not None and pk.concurrency is not None:
        busy = (select(t.c.slot_key).where(t.c.slot == limits.name, t.c.lease_owner.is_not(None),
                                           t.c.slot_key.is_not(None))
                .group_by(t.c.slot_key).having(func.count() >= pk.concurrency))
        condition = and_(condition, or_(t.c.slot_key.is_(None), t.c.slot_key.not_in(busy)))
    stmt = (select(t.c.id).where(condition).order_by(t.c.priority.desc(), t.c.ready_at).limit(limit)
            .with_for_update(skip_locked=True))
    ids = list(conn.execute(stmt).scalars())
    if not ids:
        return []
    if claim:
        return list(conn.execute(select(t.c.id, t.c.seq, t.c.slot_key).where(t.c.id.in_(ids))).mappings())
    return list(conn.execute(update(t).where(t.c.id.in_(ids)).values(dispatched_at=now)
                             .returning(*DISPATCH_COLUMNS)).mappings())


def set_paused_txn(conn: Connection, queue: str, paused: bool, now: datetime) -> None:
    """Pause or resume: waits for the queue's claims in flight (they hold its row)."""
    ensure_queue_txn(conn, queue, now)
    conn.execute(update(qc).where(qc.c.queue == queue, qc.c.key == QUEUE_ROW).values(paused=paused, updated_at=now))


def paused_queues_txn(conn: Connection) -> set[str]:
    return set(conn.execute(select(qc.c.queue).where(qc.c.key == QUEUE_ROW, qc.c.paused.is_(True))).scalars())


def counts_txn(conn: Connection, queue: str, controlled: bool, now: datetime) -> dict[str, int]:
    """``running``, ``runnable`` (ready, not started: includes the waiting) and ``waiting``
    (turned away by a limit or a pause) of a queue. A controlled queue is counted by the slots
    its steps hold or wait for; another by the executions' queue (a step with its own queue
    counts under its execution's queue there)."""
    runnable = and_(t.c.lease_owner.is_(None), t.c.status.in_(_RUNNABLE), t.c.ready_at.is_not(None),
                    t.c.ready_at <= now)
    waiting = _waiting(queue, now)
    if controlled:
        running = and_(t.c.slot == queue, t.c.lease_owner.is_not(None))
        ready = and_(runnable, or_(t.c.slot == queue, and_(t.c.slot.is_(None), t.c.queue == queue)))
    else:
        running = and_(t.c.queue == queue, t.c.lease_owner.is_not(None))
        ready = and_(runnable, t.c.queue == queue)
    stmt = select(func.count().filter(running), func.count().filter(ready), func.count().filter(waiting)) \
        .select_from(t).where(or_(t.c.queue == queue, t.c.slot == queue))
    r, q, w = conn.execute(stmt).one()
    return {"running": int(r), "runnable": int(q), "waiting": int(w)}


def starts_in_window_txn(conn: Connection, queue: str, rate: Rate, now: datetime) -> int:
    since = now - timedelta(seconds=rate.period)
    return int(conn.execute(select(func.count()).select_from(qs).where(
        qs.c.queue == queue, qs.c.key == QUEUE_ROW, qs.c.started_at > since)).scalar_one())

