"""The beat tick: one cheap pass over the indexed "something is due" rows.

1. expired leases (a worker died mid-step): released and re-dispatched; an attempt that lost
   its worker ``max_lost_leases`` times fails with ``WorkerLost`` (the step kills its worker);
   a step that died while its execution was stopping is recorded with an unknown outcome;
2. waiting executions whose sleep or wait timeout is due: woken (and compensations parked for
   a step in flight that has ended, should the step's own checkpoint not have released them,
   and callers whose child ended without waking them: a 32nd of those callers per tick, so the
   sweep costs little however many wait, and a lost wake is found within 32 ticks);
3. runnable executions with no live message (lost publish, transactional or scheduled start,
   a retry backoff too long for a countdown message): dispatched, with a back-off per row;
4. executions past their workflow timeout: failed with ``WorkflowTimeout`` (compensating);
   executions whose first step had not begun by their start deadline: cancelled
   (``StartDeadlinePassed``);
5. cron schedules whose next run is due: their runs started (see ``runtime/schedules.py``).

Before the outbox sweep, a broker that lost the messages it held (a Redis restart) has them
marked due at once (``runtime/broker.py``), instead of after their lease or back-off.

Every sweep locks its rows with ``FOR UPDATE SKIP LOCKED`` and marks them in the same
transaction, and every decision is fenced like a worker's checkpoint, so two beats (or a beat
that restarts) never act on a row twice, and a beat that was down catches up on its next run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import RowMapping

from durable_celery.clock import as_utc
from durable_celery.compiler.ir import StateMachine
from durable_celery.engine import decide, saga
from durable_celery.engine.statuses import ExecutionStatus
from durable_celery.engine.values import Checkpoint, Snapshot, StepOutcome, StepResult
from durable_celery.errors import WorkerLost, WorkflowTimeout
from durable_celery.runtime import live, queues
from durable_celery.runtime.broker import resend_lost
from durable_celery.runtime.calls import wake_caller
from durable_celery.runtime.commit import snapshot
from durable_celery.runtime.schedules import fire_due_schedules
from durable_celery.runtime.services import Services
from durable_celery.state.checkpoint import settle_lost, unsettled_txn, write_checkpoint
from durable_celery.state.children import release_parked_compensations_txn
from durable_celery.state.executions import (
    finish_txn,
    release_leases_txn,
    take_dispatchable_txn,
    take_expired_leases_txn,
    take_overdue_txn,
    take_unstarted_txn,
)
from durable_celery.state.journal import CALLER_SLICES, take_unwoken_callers_txn
from durable_celery.state.stops import stop_txn
from durable_celery.state.waits import take_due_waits_txn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TickReport:
    recovered: int
    dispatched: int
    timed_out: int
    woken: int = 0
    #: attempts failed with WorkerLost, or stops applied to a step whose worker died
    decided: int = 0
    #: runs of cron schedules started
    scheduled: int = 0
    #: steps dispatched that waited for a controlled queue (docs/queues.md)
    filled: int = 0
    #: executions cancelled because their first step had not begun by their start deadline
    unstarted: int = 0


def tick(sv: Services, *, expire_leases: bool = True) -> TickReport:
    """One pass of every sweep. ``expire_leases=False`` skips the expired leases (sweep 1): the
    beat's grace after a database outage, while live workers renew the leases they could not
    (``beat_service``)."""
    settings = sv.settings
    now = sv.clock.now()
    expired: list[RowMapping] = []
    if expire_leases:
        with sv.db.begin() as conn:
            expired = take_expired_leases_txn(conn, now, settings.tick_batch, f"tick:{uuid.uuid4().hex}")
    # Decided first, each fenced by the dead worker's lease; the others are released.
    decided = {row["id"] for row in expired if _needs_decision(row, settings.max_lost_leases) and _decide_lost(sv, row)}
    with sv.db.begin() as conn:
        recovered = release_leases_txn(conn, [r for r in expired if r["id"] not in decided], now)
    for row in recovered:
        log.warning("durable: execution %s lost its worker in step %s; re-dispatching", row["id"], row["current_node"])
    resend_lost(sv, now)  # a broker that lost its messages: they are due at once
    with sv.db.begin() as conn:
        due = take_dispatchable_txn(conn, now, timedelta(seconds=settings.redispatch_after), settings.tick_batch,
                                    list(settings.queue_limits))
    with sv.db.begin() as conn:
        woken: list[Mapping[Any, Any]] = [*take_due_waits_txn(conn, now, settings.tick_batch),
                                          *release_parked_compensations_txn(conn, now, settings.tick_batch),
                                          *take_unwoken_callers_txn(conn, now, settings.tick_batch,
                                                                    _caller_slice(now, settings.tick_interval))]
    # Blocks whose last branch or iteration's worker died before settling them (state/checkpoint.py)
    for lost in _unsettled(sv, now):
        woken.extend(settle_lost(sv.db, lost, now))
    live.resumed(sv.live, woken, "timer")
    sv.dispatcher.publish([*recovered, *due, *woken])
    timed_out = 0
    stopped: list[Mapping[Any, Any]] = []
    with sv.db.begin() as conn:
        for row in take_overdue_txn(conn, now, settings.tick_batch):
            machine = sv.registry.get(row["workflow"], row["version"])
            error = decide.error_dict(WorkflowTimeout(row["workflow"], machine.timeout if machine and machine.timeout
                                                      else 0), row["current_node"])
            compensate = row["kind"] == "workflow" and machine is not None and bool(machine.compensations)
            rows = stop_txn(conn, row, ExecutionStatus.FAILED, error, now, compensate=compensate)
            if rows is not None:
                timed_out += 1
                stopped.extend(rows)
    sv.dispatcher.publish(stopped)
    unstarted = _cancel_unstarted(sv, now)
    scheduled = fire_due_schedules(sv, now)
    _prune_live_events(sv)
    filled = queues.fill_all(sv)
    return TickReport(len(recovered), len(due), timed_out, len(woken), len(decided), scheduled, filled, unstarted)


def _cancel_unstarted(sv: Services, now: datetime) -> int:
    """Cancel the executions whose first step had not begun by their start deadline (in one
    transaction, fenced by ``seq`` as a cancel is), then tell their callers and subscribers."""
    cancelled: list[Mapping[Any, Any]] = []
    with sv.db.begin() as conn:
        for row in take_unstarted_txn(conn, now, sv.settings.tick_batch):
            finished = finish_txn(conn, row["id"], ExecutionStatus.CANCELLED, now,
                                  decide.start_deadline_error(as_utc(row["start_deadline_at"])))
            if finished is not None:
                cancelled.append(finished)
    for ended in cancelled:
        log.info("durable: execution %s of %s not started by its start deadline; cancelled", ended["id"],
                 ended["workflow"])
        if sv.live.active():
            sv.live.emit("execution.cancelled", ended, seq=ended["seq"])
        if ended["parent_id"] is not None:
            wake_caller(sv, ended["id"], ended["parent_id"])
    return len(cancelled)


def _unsettled(sv: Services, now: datetime) -> list[str]:
    with sv.db.connect() as conn:
        return unsettled_txn(conn, now, sv.settings.tick_batch)


def _prune_live_events(sv: Services) -> None:
    """Live events are kept ``live.RETENTION`` seconds (a subscriber that reconnects within
    that time misses nothing): one DELETE on an index, nothing to do when nobody subscribes."""
    try:
        sv.live.prune(live.RETENTION)
    except Exception:  # noqa: BLE001 - the next tick prunes
        log.warning("durable: could not prune live events", exc_info=True)


def _caller_slice(now: datetime, tick_interval: float) -> int:
    """The slice of callers this tick looks at: consecutive ticks take consecutive slices."""
    return int(now.timestamp() / tick_interval) % CALLER_SLICES


def _needs_decision(row: Mapping[Any, Any], max_lost_leases: int) -> bool:
    started = row["step_started_at"] is not None  # a lease handed to a message may never have been taken
    return row["stopping"] is not None or (started and row["lost_leases"] + 1 >= max_lost_leases)


def _decide_lost(sv: Services, row: Mapping[Any, Any]) -> bool:
    """Decide for an execution whose worker was lost, fenced by the dead worker's lease; False
    if there is nothing to decide (the lease is then simply released)."""
    snap = snapshot(row)
    machine = sv.registry.get(snap.workflow, snap.version)
    now = sv.clock.now()
    assert snap.lease_owner is not None
    cp: Checkpoint | None
    if snap.stopping is not None:
        log.warning("durable: execution %s lost its worker in step %s while stopping; its outcome is unknown",
                    snap.id, snap.current_node)
        cp = decide.stopped(machine, snap, decide.outcome_unknown(snap, now, sv.policy), now)
    elif snap.status is ExecutionStatus.COMPENSATING:
        cp = _compensation_lost(machine, snap, now, sv)
    else:
        log.error("durable: execution %s lost its worker in step %s %d times; failing the attempt",
                  snap.id, snap.current_node, snap.lost_leases + 1)
        cp = decide.worker_lost(machine, snap, now, sv.policy)
    if cp is None:
        return False
    written = write_checkpoint(sv.db, machine, snap, snap.lease_owner, cp, now, stopping=snap.stopping is not None)
    if written is None:
        return False
    sv.dispatcher.send_all(written.messages)
    sv.dispatcher.publish(written.rows)
    return True


def _compensation_lost(machine: StateMachine | None, snap: Snapshot, now: datetime, sv: Services) -> Checkpoint | None:
    """A compensation that keeps losing its worker fails that attempt (its retry policy applies)."""
    entry = saga.next_entry(snap)
    if machine is None or entry is None:
        return None
    handler = machine.compensations[entry["compensation"]]
    log.error("durable: execution %s lost its worker in compensation %s %d times; failing the attempt",
              snap.id, handler.name, snap.lost_leases + 1)
    error = decide.error_dict(WorkerLost(handler.name, snap.lost_leases + 1), handler.name)
    return saga.after(snap, entry, handler, StepResult(StepOutcome.FAILED, error=error), None, now, sv.policy,
                      here=False)
