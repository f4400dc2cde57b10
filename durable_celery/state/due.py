"""When the tick next has something to do: the earliest time a row becomes due, for the test
runner's fake clock (``durable_celery.testing.runner``), which skips straight to it.

The times are those the tick's sweeps compare with ``now`` (``runtime/tick.py``): a runnable
execution's ``ready_at`` (a retry's backoff, a scheduled start), a pending wait's
``timeout_at`` (sleeps, wait and input timeouts), an active execution's ``deadline_at`` (the
workflow timeout, compared strictly: due just after it) and, when asked for, an enabled cron
schedule's ``next_run_at``. Leases are left out: in eager mode a step's lease ends with its
task, and a lease left behind means the engine raised, which the test sees.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.engine import Connection

from durable_celery.clock import as_utc
from durable_celery.engine.statuses import ACTIVE, RUNNABLE, ExecutionStatus
from durable_celery.state.tables import scheduled_workflows as s
from durable_celery.state.tables import waits as w
from durable_celery.state.tables import workflow_executions as t

#: How far past ``deadline_at`` a workflow timeout is due (the tick compares it strictly).
STRICT = timedelta(microseconds=1)


def tree_txn(conn: Connection, execution_id: str) -> set[str]:
    """The ids of an execution and of everything it started, at any depth: the branches and
    iterations of its blocks (``root_id``) and its child workflows (``parent_id``)."""
    found = {execution_id}
    frontier = [execution_id]
    while frontier:
        rows = conn.execute(select(t.c.id).where(or_(t.c.parent_id.in_(frontier), t.c.root_id.in_(frontier))))
        frontier = [i for i in rows.scalars() if i not in found]
        found.update(frontier)
    return found


def next_due_txn(conn: Connection, within: Collection[str] | None = None, schedules: bool = False) -> datetime | None:
    """The earliest time at which a tick acts on something, past or future: on the executions
    ``within`` (None: on every one), and on the cron schedules if ``schedules``. A time not
    after now means the next tick has work. None: nothing waits for time (only an event, an
    input or a call can move it on)."""
    ready = select(func.min(t.c.ready_at)).where(  # dispatched: its message is on its way already
        t.c.status.in_([x.value for x in RUNNABLE]), t.c.lease_owner.is_(None), t.c.dispatched_at.is_(None))
    timeout = (select(func.min(w.c.timeout_at)).select_from(w.join(t, w.c.execution_id == t.c.id))
               .where(w.c.status == "pending", t.c.entered_seq == w.c.entered_seq,
                      t.c.status == ExecutionStatus.WAITING.value))
    deadline = select(func.min(t.c.deadline_at)).where(t.c.status.in_([x.value for x in ACTIVE]))
    if within is not None:
        ids = list(within)
        ready, timeout, deadline = (q.where(t.c.id.in_(ids)) for q in (ready, timeout, deadline))
    times = [conn.execute(ready).scalar(), conn.execute(timeout).scalar()]
    latest = conn.execute(deadline).scalar()
    if latest is not None:
        times.append(as_utc(latest) + STRICT)
    if schedules:
        times.append(conn.execute(select(func.min(s.c.next_run_at)).where(s.c.enabled.is_(True))).scalar())
    due = [as_utc(x) for x in times if x is not None]
    return min(due) if due else None
