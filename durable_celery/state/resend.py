"""Messages the broker lost: their rows are marked never dispatched, so the tick's outbox sweep
publishes them at once, with no back-off (``runtime/broker.py`` says when the broker lost them).

Two kinds of rows wait on a message:

- a runnable row with no lease (``ready_at`` set), whose message claims it. Sending it again is
  always safe: a duplicate's claim matches no row;
- a row leased to its message (``runtime/handoff.py``): that message's task runs the step
  without a claim. The lease is taken back only if the step never started (``step_started_at``
  is empty: no task confirmed it) and the message was published before the broker lost it: then
  no copy of it exists to run the step beside the message that replaces it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import ColumnElement

from durable_celery.engine.statuses import RUNNABLE
from durable_celery.state.tables import workflow_executions as t


def unsend_lost_txn(conn: Connection, before: datetime, now: datetime, limit: int, *, leases: bool) -> int:
    """Mark up to ``limit`` rows whose message was published before ``before`` as never
    dispatched; with ``leases``, the leases handed to such messages and never taken are released
    too. Returns how many rows were marked (fewer than ``limit``: no more are left)."""
    runnable = [s.value for s in RUNNABLE]
    # on ix_workflow_executions_ready (see tables.py)
    waiting = and_(t.c.ready_at.is_not(None), t.c.lease_expires_at.is_(None), t.c.lease_owner.is_(None),
                   t.c.status.in_(runnable), t.c.dispatched_at < before,
                   # a controlled queue's turned-away rows are its own dispatch's (runtime/queues.py)
                   t.c.slot.is_(None))
    ids = _locked(conn, waiting, limit)
    marked = _mark(conn, ids, {"dispatched_at": None, "updated_at": now}) if ids else 0
    if not leases or marked >= limit:
        return marked
    # on ix_workflow_executions_lease: leases handed to a message (never confirmed), no stop waiting
    handed = and_(t.c.lease_expires_at.is_not(None), t.c.lease_owner.is_not(None), t.c.step_started_at.is_(None),
                  t.c.status.in_(runnable), t.c.stopping.is_(None),
                  # a message whose publish failed (``mark_unsent_txn``) is not in the broker either
                  or_(t.c.dispatched_at < before, t.c.dispatched_at.is_(None)))
    ids = _locked(conn, handed, limit - marked)
    if ids:
        marked += _mark(conn, ids, {"lease_owner": None, "lease_expires_at": None, "ready_at": now,
                                    "dispatched_at": None, "updated_at": now})
    return marked


def mark_unsent_txn(conn: Connection, unsent: Sequence[tuple[str, int]], *, release_leases: bool) -> int:
    """Mark the rows of messages whose publish failed, ``(execution id, seq)``, as never
    dispatched: the tick's outbox sweep sends a message that claims at once. With
    ``release_leases`` (a failed publish is known not to have reached the broker), a lease handed
    to such a message is released too; otherwise it waits for ``unsend_lost_txn`` or its expiry.
    A row that moved on since (another ``seq``) or whose step started is left alone."""
    if not unsent:
        return 0
    params = [{"eid": execution_id, "eseq": seq} for execution_id, seq in unsent]
    fence = (t.c.id == bindparam("eid"), t.c.seq == bindparam("eseq"), t.c.dispatched_at.is_not(None))
    marked = conn.execute(update(t).where(*fence, t.c.lease_owner.is_(None)).values(dispatched_at=None), params).rowcount
    if release_leases:
        marked += conn.execute(
            update(t).where(*fence, t.c.lease_owner.is_not(None), t.c.step_started_at.is_(None), t.c.stopping.is_(None))
            .values(lease_owner=None, lease_expires_at=None, ready_at=func.coalesce(t.c.ready_at, t.c.dispatched_at),
                    dispatched_at=None), params).rowcount
    else:
        marked += conn.execute(update(t).where(*fence, t.c.lease_owner.is_not(None), t.c.step_started_at.is_(None))
                               .values(dispatched_at=None), params).rowcount
    return marked


def _locked(conn: Connection, condition: ColumnElement[bool], limit: int) -> list[str]:
    stmt = select(t.c.id).where(condition).order_by(t.c.dispatched_at).limit(limit).with_for_update(skip_locked=True)
    return list(conn.execute(stmt).scalars())


def _mark(conn: Connection, ids: list[str], values: dict[str, object]) -> int:
    return conn.execute(update(t).where(t.c.id.in_(ids)).values(**values)).rowcount
