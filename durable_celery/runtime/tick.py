"""The beat tick: one cheap pass over the indexed "something is due" rows.

1. expired leases (a worker died mid-step): released and re-dispatched;
2. waiting executions whose sleep or wait timeout is due: woken;
3. runnable executions with no live message (lost publish, transactional or scheduled start,
   a retry backoff too long for a countdown message): dispatched;
4. executions past their workflow timeout: failed with ``WorkflowTimeout``.

Every sweep locks its rows with ``FOR UPDATE SKIP LOCKED`` and marks them in the same
transaction, so two beats (or a beat that restarts) never act on a row twice, and a beat that was
down catches up on its next run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from durable_celery.engine.statuses import ExecutionStatus
from durable_celery.errors import WorkflowTimeout
from durable_celery.runtime.executor import error_dict
from durable_celery.runtime.saga import stop_txn
from durable_celery.state.executions import (
    take_dispatchable_txn,
    take_expired_leases_txn,
    take_overdue_txn,
)
from durable_celery.state.waits import take_due_waits_txn

if TYPE_CHECKING:
    from durable_celery.durable import Durable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TickReport:
    recovered: int
    dispatched: int
    timed_out: int
    woken: int = 0


def tick(durable: Durable) -> TickReport:
    settings = durable.settings
    now = durable.clock.now()
    with durable.db.begin() as conn:
        recovered = take_expired_leases_txn(conn, now, settings.tick_batch)
    for row in recovered:
        log.warning("durable: execution %s lost its worker in step %s; re-dispatching", row["id"], row["current_node"])
    with durable.db.begin() as conn:
        due = take_dispatchable_txn(conn, now, timedelta(seconds=settings.redispatch_after), settings.tick_batch)
    with durable.db.begin() as conn:
        woken = take_due_waits_txn(conn, now, settings.tick_batch)
    for row in [*recovered, *due, *woken]:
        durable.dispatcher.send(row["id"], row["seq"], workflow=row["workflow"], step=row["current_node"],
                                queue=row["queue"], priority=row["priority"])
    timed_out = 0
    compensating = []
    with durable.db.begin() as conn:
        for row in take_overdue_txn(conn, now, settings.tick_batch):
            machine = durable.registry.get(row["workflow"])
            seconds = machine.timeout if machine and machine.timeout else 0
            error = error_dict(WorkflowTimeout(row["workflow"], seconds), row["current_node"])
            stopped = stop_txn(conn, machine, row["id"], ExecutionStatus.FAILED, error, now, compensate=True)
            if stopped is not None:
                timed_out += 1
                compensating.extend(stopped)
    durable.dispatcher.publish(compensating)
    return TickReport(len(recovered), len(due), timed_out, len(woken))
