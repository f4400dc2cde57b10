"""Transactions on ``workflow_executions``: start, claim, checkpoint, lease renewal, the tick's
sweeps and the client's reads. Exactly-once comes from the ``seq`` fence and the lease owner in
each ``UPDATE ... WHERE``, never from check-then-write."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, func, insert, literal_column, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.sql.expression import ColumnElement

from durable_celery.engine.statuses import ACTIVE, RUNNABLE, ExecutionStatus, sources_of
from durable_celery.engine.values import COLUMNS as SNAPSHOT_COLUMNS
from durable_celery.state.db import Database
from durable_celery.state.prepared import prepared_for
from durable_celery.state.tables import workflow_executions as t

#: What a message needs to be published for an execution.
# (root_id: the top-level execution a live event about the row names)
DISPATCH_COLUMNS = (t.c.id, t.c.seq, t.c.workflow, t.c.current_node, t.c.queue, t.c.priority, t.c.root_id,
                    t.c.version)


# Built once, like the claim below: a start builds no statement, and each compiles once per
# dialect and schema map (SQLAlchemy's compiled cache), whatever the row's values.
_INSERT = insert(t)
_INSERT_UNIQUE = {
    "postgresql": postgresql.insert(t).on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(t.c.id),
    "sqlite": sqlite.insert(t).on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(t.c.id),
}
_KEY_HOLDER = select(t.c.id).where(t.c.idempotency_key == bindparam("key"))


def insert_execution(db: Database, row: dict[str, Any]) -> tuple[str, bool]:
    """:func:`insert_execution_txn` as a statement of its own. A plain start on PostgreSQL (no
    idempotency key) is one prepared INSERT on the driver's cursor (``state/prepared.py``):
    a start's only round trip, without SQLAlchemy's execution around it."""
    if db.dialect == "postgresql" and row.get("idempotency_key") is None:
        shape = tuple(row)
        prepared_for(db, ("insert_execution", shape), lambda: _insert_statement(shape)).first(row)
        return row["id"], True
    with db.single() as conn:
        return insert_execution_txn(conn, row)


def _insert_statement(columns: tuple[str, ...]) -> Any:
    return insert(t).values({c: bindparam(c, type_=t.c[c].type) for c in columns})


def insert_execution_txn(conn: Connection, row: dict[str, Any],
                         options: dict[str, Any] | None = None) -> tuple[str, bool]:
    """Insert a new execution; with an ``idempotency_key`` already used, insert nothing.

    Returns (id, created): the new id, or the id of the execution that holds the key.
    ``options`` are per-statement execution options (the schema map on a caller's connection),
    set on the statements: a SQLAlchemy 1.4 caller's Connection may be a legacy one, whose
    ``execute`` takes no ``execution_options``.

    One statement when the key is new (or there is none): on an autocommit connection
    (``Database.single``) the start is one round trip.
    """
    if row.get("idempotency_key") is None:
        conn.execute(_with_options(_INSERT, options), row)
        return row["id"], True
    created = conn.execute(_with_options(_INSERT_UNIQUE[conn.dialect.name], options), row).scalar()
    if created is not None:
        return created, True
    return conn.execute(_with_options(_KEY_HOLDER, options), {"key": row["idempotency_key"]}).scalar_one(), False


def _with_options(stmt: Any, options: dict[str, Any] | None) -> Any:
    return stmt.execution_options(**options) if options else stmt


#: what a claim returns: the columns the engine decides from, no more (fewer to decode on the hot path)
CLAIMED_COLUMNS = tuple(t.c[name] for name in (*SNAPSHOT_COLUMNS, "loops"))


def leased_values(token: Any, until: Any, now: Any) -> dict[str, Any]:
    """What every claim writes to lease an execution to ``token`` until ``until`` (values or bind
    parameters), besides its status and timestamps: no longer runnable, its step started ``now``,
    the re-dispatch back-off over (its message was delivered), and no slot of a controlled queue
    (a claim through a controlled queue names its slot instead)."""
    return {"lease_owner": token, "lease_expires_at": until, "ready_at": None, "step_started_at": now,
            "redispatches": 0, "slot": None, "slot_key": None}


def claimed_values(token: Any, until: Any, now: Any) -> dict[str, Any]:
    """What a claim of a runnable execution writes (the plain claim's, and a controlled queue's,
    which names its slot besides): :func:`leased_values`, and its status and timestamps."""
    return {**leased_values(token, until, now),
            # a compensating execution stays compensating while its compensations run
            "status": case((t.c.status == ExecutionStatus.COMPENSATING.value, t.c.status),
                           else_=ExecutionStatus.RUNNING.value),
            "started_at": func.coalesce(t.c.started_at, now), "updated_at": now,
            # kept for the first claim, whose task checks it (engine/decide.py, ``locate``);
            # a claim after the execution started clears it: it never stops a started one
            "start_deadline_at": case((t.c.started_at.is_(None), t.c.start_deadline_at), else_=None)}


def _claim_statement() -> Any:
    # Built once: constructing a statement costs more than running it on this hot path.
    now: Any = bindparam("now")
    return (
        update(t)
        .where(t.c.id == bindparam("execution_id"), t.c.seq == bindparam("expected_seq"),
               # as literals: a prepared statement takes no list parameter (state/prepared.py)
               t.c.status.in_([literal_column(f"'{s.value}'") for s in RUNNABLE]),
               or_(and_(t.c.lease_owner.is_(None), t.c.ready_at.is_not(None), t.c.ready_at <= now),
                   # the lease its message carries, taken over by a task that got it late
                   t.c.lease_owner == bindparam("handed")))
        .values(**claimed_values(bindparam("token"), bindparam("lease_until"), now))
        .returning(*CLAIMED_COLUMNS)
    )


_CLAIM = _claim_statement()


def claim(db: Database, execution_id: str, seq: int, token: str, now: datetime, lease_until: datetime,
          handed: str | None = None) -> Mapping[Any, Any] | None:
    """:func:`claim_txn` as a statement of its own: on PostgreSQL, prepared on the driver's cursor."""
    if db.dialect == "postgresql":
        return prepared_for(db, "claim", lambda: _CLAIM).first_mapping(
            _claim_params(execution_id, seq, token, now, lease_until, handed))
    with db.single() as conn:
        return claim_txn(conn, execution_id, seq, token, now, lease_until, handed)


def claim_txn(conn: Connection, execution_id: str, seq: int, token: str, now: datetime,
              lease_until: datetime, handed: str | None = None) -> RowMapping | None:
    """Take the lease on an execution that is runnable at ``seq``, or leased to ``handed`` (the
    lease the message carries); ``None`` if the message is a duplicate, stale, early, or another
    worker holds the lease."""
    return conn.execute(_CLAIM, _claim_params(execution_id, seq, token, now, lease_until, handed)).mappings().first()


def _claim_params(execution_id: str, seq: int, token: str, now: datetime, lease_until: datetime,
                  handed: str | None) -> dict[str, Any]:
    return {"execution_id": execution_id, "expected_seq": seq, "token": token, "now": now,
            "lease_until": lease_until, "handed": handed}


def peek_txn(conn: Connection, execution_id: str) -> RowMapping | None:
    """The whole row, unlocked."""
    return conn.execute(select(t).where(t.c.id == execution_id)).mappings().first()


def renew_leases_txn(conn: Connection, tokens: Sequence[str], now: datetime, until: datetime) -> int:
    """Extend the leases held under ``tokens``. A lease taken from its message is marked
    started, so the tick counts its loss against the attempt; an execution whose first step
    runs from the lease handed over at its start (never claimed) shows as running from here on."""
    if not tokens:
        return 0
    pending = ExecutionStatus.PENDING.value
    # on ix_workflow_executions_lease (see tables.py): the leased rows, not the whole table
    result = conn.execute(update(t).where(t.c.lease_expires_at.is_not(None), t.c.lease_owner.in_(list(tokens)))
                          .values(lease_expires_at=until, step_started_at=func.coalesce(t.c.step_started_at, now),
                                  status=case((t.c.status == pending, ExecutionStatus.RUNNING.value), else_=t.c.status),
                                  started_at=func.coalesce(t.c.started_at, now)))
    return result.rowcount


def _locked_ids(conn: Connection, condition: Any, order: Any, limit: int) -> list[str]:
    stmt = select(t.c.id).where(condition).order_by(order).limit(limit).with_for_update(skip_locked=True)
    return list(conn.execute(stmt).scalars())


#: Re-dispatch back-off doubles up to this many times (redispatch_after * 2**6 at most).
MAX_BACKOFF_STEPS = 6


def take_dispatchable_txn(conn: Connection, now: datetime, redispatch_after: timedelta,
                          limit: int, controlled: Sequence[str] = ()) -> list[RowMapping]:
    """Runnable executions with no live message: never dispatched (transactional or scheduled
    starts, long retries) or dispatched and still not claimed (a publish lost between commit and
    broker). The wait before re-publishing doubles with each re-dispatch of the same message, so
    a backlog (messages queued, not lost) is not flooded with duplicates. Marks them dispatched.

    Rows a ``controlled`` queue turned away (``slot`` set, never dispatched since) are left to
    that queue's own dispatch (``runtime/queues.py``), which starts them as slots free."""
    unclaimed = or_(*(
        and_(t.c.redispatches == n if n < MAX_BACKOFF_STEPS else t.c.redispatches >= n,
             t.c.dispatched_at <= now - redispatch_after * 2 ** n)
        for n in range(MAX_BACKOFF_STEPS + 1)
    ))
    condition = and_(
        # lease_expires_at as well: what puts the sweep on ix_workflow_executions_ready (tables.py)
        t.c.lease_owner.is_(None), t.c.lease_expires_at.is_(None), t.c.ready_at.is_not(None), t.c.ready_at <= now,
        t.c.status.in_([s.value for s in RUNNABLE]),
        or_(t.c.dispatched_at.is_(None), unclaimed),
    )
    if controlled:
        condition = and_(condition, or_(t.c.dispatched_at.is_not(None), t.c.slot.is_(None),
                                        t.c.slot.not_in(list(controlled))))
    ids = _locked_ids(conn, condition, t.c.ready_at, limit)
    if not ids:
        return []
    redispatched = case((t.c.dispatched_at.is_(None), t.c.redispatches), else_=t.c.redispatches + 1)
    stmt = (update(t).where(t.c.id.in_(ids)).values(dispatched_at=now, redispatches=redispatched)
            .returning(*DISPATCH_COLUMNS))
    return list(conn.execute(stmt).mappings())


def take_expired_leases_txn(conn: Connection, now: datetime, limit: int, token: str) -> list[RowMapping]:
    """Executions whose worker stopped heart-beating (SKIP LOCKED), their leases taken over by
    the tick under ``token``, to release or, past the bound of lost leases or when a stop waits
    for them, to decide.

    Taking the lease over, in the statement that finds it expired, fences off its old holder
    from then on: a worker that was only slow can no longer renew it or checkpoint, and a late
    message can no longer take over a lease handed to it (``claim_txn``). Deciding or releasing
    by the old token instead would race with them: the step would run twice. The lease stays
    expired, so a tick that dies here leaves it to the next."""
    condition = and_(t.c.lease_owner.is_not(None), t.c.lease_expires_at < now)
    ids = _locked_ids(conn, condition, t.c.lease_expires_at, limit)
    if not ids:
        return []
    return list(conn.execute(update(t).where(t.c.id.in_(ids)).values(lease_owner=token).returning(*t.c)).mappings())


def release_leases_txn(conn: Connection, expired: Sequence[Mapping[Any, Any]], now: datetime) -> list[RowMapping]:
    """Release the leases the tick took over (:func:`take_expired_leases_txn`) so another
    worker claims the same seq, counting the loss against the attempt. A lease handed to a
    message and never marked started (see ``renew_leases_txn``) is not counted: its message
    was lost or waited in a backlog. A row is released only while the tick still holds it."""
    if not expired:
        return []
    stmt = (update(t).where(t.c.id.in_([r["id"] for r in expired]),
                            t.c.lease_owner.in_({r["lease_owner"] for r in expired}))
            .values(lease_owner=None, lease_expires_at=None, ready_at=now, dispatched_at=now, updated_at=now,
                    lost_leases=t.c.lost_leases + case((t.c.step_started_at.is_(None), 0), else_=1))
            .returning(*DISPATCH_COLUMNS))
    return list(conn.execute(stmt).mappings())


def take_overdue_txn(conn: Connection, now: datetime, limit: int) -> list[RowMapping]:
    """Active executions past their workflow deadline, locked for the caller to finish."""
    condition = and_(t.c.deadline_at.is_not(None), t.c.deadline_at < now,
                     t.c.status.in_([s.value for s in ACTIVE]))
    ids = _locked_ids(conn, condition, t.c.deadline_at, limit)
    if not ids:
        return []
    return list(conn.execute(select(t).where(t.c.id.in_(ids))).mappings())


def take_unstarted_txn(conn: Connection, now: datetime, limit: int) -> list[RowMapping]:
    """Executions whose start deadline passed before their first step began, locked for the
    caller to cancel: pending with no lease. (One leased to its first message may be running
    that step from the message alone: the lease expires first if the message never comes, and
    a message that comes late is checked by its task.) On ix_workflow_executions_start_deadline."""
    condition = and_(t.c.start_deadline_at.is_not(None), t.c.start_deadline_at <= now,
                     t.c.status == ExecutionStatus.PENDING.value, t.c.lease_owner.is_(None))
    ids = _locked_ids(conn, condition, t.c.start_deadline_at, limit)
    if not ids:
        return []
    return list(conn.execute(select(t).where(t.c.id.in_(ids))).mappings())


def finish_txn(conn: Connection, execution_id: str, status: ExecutionStatus, now: datetime,
               error: dict[str, Any] | None) -> RowMapping | None:
    """Force an execution into a final status (cancel, timeout), fencing off any running worker
    by bumping ``seq`` and dropping its lease. ``None`` if its status cannot move there."""
    stmt = (
        update(t)
        .where(t.c.id == execution_id, t.c.status.in_([s.value for s in sources_of(status)]))
        .values(status=status.value, seq=t.c.seq + 1, lease_owner=None, lease_expires_at=None, ready_at=None,
                deadline_at=None, start_deadline_at=None, error=error, completed_at=now, updated_at=now)
        .returning(*t.c)
    )
    return conn.execute(stmt).mappings().first()


def children_of_txn(conn: Connection, parent_id: str, status: str | None = None) -> list[RowMapping]:
    """The child workflows started by the steps of an execution or of its branches and
    iterations, in the order they were started."""
    tree = select(t.c.id).where(t.c.root_id == parent_id).scalar_subquery()
    stmt = select(t).where(t.c.kind == "workflow", t.c.parent_id.in_(tree))
    if status is not None:
        stmt = stmt.where(t.c.status == status)
    return list(conn.execute(stmt.order_by(t.c.created_at, t.c.id)).mappings())


#: top-level executions, as a literal: a generic plan matches ``ix_workflow_executions_listed``
#: (partial on ``kind = 'workflow'``) only if the query writes the value
_WORKFLOW: ColumnElement[str] = literal_column("'workflow'")
_STATUSES = frozenset(s.value for s in ExecutionStatus)
#: what an id prefix may hold: hex digits and dashes, as ids are written
ID_PREFIX = re.compile(r"[0-9a-f-]{1,36}")


def list_txn(conn: Connection, *, workflow: str | None, status: str | None, queue: str | None,
             parent_id: str | None = None, limit: int, offset: int, current_step: str | None = None,
             created_after: datetime | None = None, created_before: datetime | None = None,
             after: tuple[datetime, str] | None = None, id_prefix: str | None = None) -> list[RowMapping]:
    """Top-level executions, newest first (``created_at`` descending, then ``id``).

    ``created_after`` (inclusive) and ``created_before`` (exclusive) bound ``created_at``;
    ``after`` is a keyset position, the (created_at, id) of the last row of the previous page:
    the rows that come after it in this order. Both are ranges on ``created_at``, so the page is
    read from an index whatever the table's size (ix_workflow_executions_listed, or
    (status, created_at) / (workflow, status, created_at) with a status), never skipped over.
    """
    stmt = select(t).where(t.c.kind == _WORKFLOW)  # not the branches and iterations it fanned out into
    if workflow is not None:
        stmt = stmt.where(t.c.workflow == workflow)
    if status is not None:
        # a status (one of nine, plain words) as a literal: the planner always sees which, so a
        # rare one keeps its index; a generic plan would walk the whole listed index for it
        stmt = stmt.where(t.c.status == (literal_column(f"'{status}'") if status in _STATUSES else status))
    if queue is not None:
        stmt = stmt.where(t.c.queue == queue)
    if parent_id is not None:
        stmt = stmt.where(t.c.parent_id == parent_id)
    if current_step is not None:
        stmt = stmt.where(t.c.current_node == current_step)
    if id_prefix is not None:
        # hex digits and dashes (no LIKE wildcard, no quote) as a literal: a generic plan of
        # ``LIKE $1`` cannot read the prefix index (ix_workflow_executions_id_prefix) and would
        # walk the listed one instead; anything else stays a bound value
        pattern = f"{id_prefix}%"
        stmt = stmt.where(t.c.id.like(literal_column(f"'{pattern}'") if ID_PREFIX.fullmatch(id_prefix) else pattern))
    if created_after is not None:
        stmt = stmt.where(t.c.created_at >= created_after)
    if created_before is not None:
        stmt = stmt.where(t.c.created_at < created_before)
    if after is not None:
        at, last_id = after
        # expanded rather than a row comparison: ``created_at <= at`` is the index condition
        stmt = stmt.where(t.c.created_at <= at, or_(t.c.created_at < at, t.c.id > last_id))
    stmt = stmt.order_by(t.c.created_at.desc(), t.c.id).limit(limit).offset(offset)
    return list(conn.execute(stmt).mappings())


def count_by_status_txn(conn: Connection, statuses: list[str] | None = None) -> dict[str, int]:
    stmt = select(t.c.status, func.count()).where(t.c.kind == _WORKFLOW)
    if statuses is not None:
        stmt = stmt.where(t.c.status.in_(statuses))
    rows = conn.execute(stmt.group_by(t.c.status))
    return {status: count for status, count in rows}
