"""Controlled queues at run time: the claim on such a queue, and dispatching the steps that
wait for it when a slot frees (after a step that held one, on resume, and on every tick as the
safety net). The SQL, and why it is race-free, is in :mod:`durable_celery.state.queues`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import RowMapping

from durable_celery.queue_limits import QueueLimits
from durable_celery.runtime.services import Services
from durable_celery.state.queues import (
    Refusal,
    capacity_txn,
    claim_controlled_txn,
    claim_next_txn,
    take_waiters_txn,
)

log = logging.getLogger(__name__)


def claim(sv: Services, limits: QueueLimits, execution_id: str, seq: int, token: str) -> RowMapping | Refusal | None:
    """One transaction: lock the queue, check pause and limits, claim or leave the row waiting."""
    with sv.db.begin() as conn:
        return claim_controlled_txn(conn, limits, execution_id, seq, token, sv.clock.now,
                                    timedelta(seconds=sv.settings.stale_lock_timeout))


def claim_next(sv: Services, limits: QueueLimits, token: str) -> RowMapping | None:
    """For a task whose step just freed a slot of the queue: claim the next waiting step, to run
    it in this task (no broker round trip between one step's end and the next one's start)."""
    settings = sv.settings
    with sv.db.begin() as conn:
        return claim_next_txn(conn, limits, token, sv.clock.now, timedelta(seconds=settings.stale_lock_timeout),
                              timedelta(seconds=settings.redispatch_after))


def dispatch_waiting(sv: Services, limits: QueueLimits, batch: int | None = None) -> int:
    """Dispatch as many waiting steps of the queue as it has room for, highest priority first;
    returns how many. Holds the queue's row while it picks, so a claim turned away meanwhile
    is either seen waiting here or saw the room itself."""
    settings = sv.settings
    now = sv.clock.now()
    redispatch_after = timedelta(seconds=settings.redispatch_after)
    with sv.db.begin() as conn:
        room = capacity_txn(conn, limits, now, redispatch_after, batch or settings.tick_batch)
        rows: list[Mapping[Any, Any]] = list(take_waiters_txn(conn, limits, now, redispatch_after, room))
    sv.dispatcher.publish(rows)
    return len(rows)


def refill(sv: Services, queue: str) -> None:
    """A step that held a slot of ``queue`` ended: start what waits for it. A failure is logged,
    not raised (the step's checkpoint is committed; the tick dispatches the waiters)."""
    limits = sv.settings.queue_limits.get(queue)
    if limits is None:
        return
    try:
        dispatch_waiting(sv, limits)
    except Exception:
        log.warning("durable: dispatching the steps waiting for queue %s failed; the tick will", queue,
                    exc_info=True)


def fill_all(sv: Services) -> int:
    """The tick's sweep over every controlled queue."""
    return sum(dispatch_waiting(sv, limits) for limits in sv.settings.queue_limits.values())
