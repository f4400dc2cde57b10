"""Committing decisions: the state layer writes a checkpoint, then its messages are published.
Shared by the runner, fan-outs and compensations."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from durable_celery.compiler.ir import StateMachine
from durable_celery.engine import decide
from durable_celery.engine.statuses import StepStatus
from durable_celery.engine.values import Checkpoint, Outcome, Snapshot
from durable_celery.runtime import live, reported
from durable_celery.runtime.calls import wake_caller
from durable_celery.runtime.outage import patiently
from durable_celery.runtime.services import Services
from durable_celery.state.checkpoint import (
    Written,
    settle,
    stop_requested_txn,
    write_checkpoint,
    write_checkpoint_txn,
)
from durable_celery.state.children import TakeNext
from durable_celery.state.steps import attempt_recorded_txn
from durable_celery.testing import faults

log = logging.getLogger(__name__)

#: how a checkpoint ends an execution for good
ENDED = frozenset({Outcome.COMPLETED, Outcome.FAILED, Outcome.CANCELLED, Outcome.COMPENSATED,
                   Outcome.COMPENSATION_FAILED})


@dataclass(frozen=True)
class Lease:
    """This task's hold on an execution: the lease token, the queue the task runs on (``None``:
    unknown) and when the task started (for the continuation budget)."""

    token: str
    queue: str | None
    started: float
    #: the controlled queue whose slot this lease holds (docs/queues.md), else None
    slot: str | None = None


class Committer:
    """Writes checkpoints for executions this worker holds, and publishes what they ask for."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def commit(self, machine: StateMachine | None, snap: Snapshot, lease: Lease, cp: Checkpoint) -> Written | None:
        """Write ``cp`` and publish what it asks for; None if this worker lost the execution.
        A stop requested while the step ran is applied instead (the step's outcome recorded)."""
        sv = self.services
        if lease.slot is not None and not cp.keep_lease:  # the lease goes, and its slot with it
            cp = dataclasses.replace(cp, values={**cp.values, "slot": None, "slot_key": None})
        # A database that went away is waited for: this outcome exists nowhere else (runtime/outage.py)
        written = patiently(lambda retried: self._write(machine, snap, lease, cp, retried),
                            f"the checkpoint of execution {snap.id} at seq {snap.seq}")
        if written is None:
            log.warning("durable: execution %s lost its lease at seq %s; discarding this attempt", snap.id, snap.seq)
            return None
        if cp.attempt is not None:
            faults.trip("after_checkpoint", cp.attempt["step_name"])
            if cp.attempt["status"] == StepStatus.FAILED.value:  # for Celery's and Flower's eyes
                retried = written.outcome is Outcome.RETRY_SCHEDULED
                reported.note(snap.workflow, cp.attempt, cp.values.get("ready_at") if retried else None)
        if sv.live.active():  # before the publish: the events of one execution stay in order
            sv.live.emit_all(live.after_checkpoint(sv.live, snap, cp, written.outcome))
        handed = snap.after(cp) if any(m.handoff is not None for m in written.messages) else None
        self.publish(written, handed)
        if snap.parent_id is not None and snap.is_top_level and written.outcome in ENDED:
            wake_caller(sv, snap.id, snap.parent_id)
        return written

    def _write(self, machine: StateMachine | None, snap: Snapshot, lease: Lease, cp: Checkpoint,
               retried: bool) -> Written | None:
        """One try of :meth:`commit`'s write. A try after a failed one may find its checkpoint
        already committed: the failed try's commit reached the database, its answer did not."""
        sv = self.services
        now = sv.clock.now()
        written = write_checkpoint(sv.db, machine, snap, lease.token, cp, now, take=self._take_next(snap, lease, cp, now))
        if written is None and retried and cp.attempt is not None:
            with sv.db.connect() as conn:
                recorded = attempt_recorded_txn(conn, snap.id, snap.seq, cp.attempt["completed_at"])
            if recorded:
                # What else the transaction made runnable is the tick's to publish (marked
                # dispatched), but a branch or iteration's end may have left its block unsettled
                child = cp.finishing and not snap.is_top_level and snap.parent_id is not None
                return Written(cp.outcome, cp.messages, tuple(settle(sv.db, snap, now)) if child else ())
        if written is None:
            written = self.apply_stop(machine, snap, lease, cp)
        return written

    def _take_next(self, snap: Snapshot, lease: Lease, cp: Checkpoint, now: datetime) -> TakeNext | None:
        """A finishing iteration offers to run the one its end releases, in this task while it
        is within its continuation budget (docs/composition.md#foreach); not on a controlled
        queue, whose slots decide what runs."""
        settings = self.services.settings
        if (snap.is_top_level or not cp.finishing or lease.slot is not None or lease.queue is None
                or time.monotonic() - lease.started >= settings.continuation_budget):
            return None
        return TakeNext(lease.token, now + timedelta(seconds=settings.stale_lock_timeout), lease.queue)

    def apply_stop(self, machine: StateMachine | None, snap: Snapshot, lease: Lease, cp: Checkpoint) -> Written | None:
        """The checkpoint's fence failed: if that is because a stop was requested while this
        worker held the execution, end it as the stop asks, recording this attempt."""
        sv = self.services
        now = sv.clock.now()
        with sv.db.begin() as conn:
            row = stop_requested_txn(conn, snap, lease.token)
            if row is None:
                return None
            current = snapshot(row)
            stop = decide.stopped(machine, current, cp.attempt, now)
            return write_checkpoint_txn(conn, machine, current, lease.token, stop, now, stopping=True)

    def publish(self, written: Written, handed: Snapshot | None = None) -> None:
        """Publish what a committed checkpoint asks for; ``handed`` is the execution as the
        checkpoint left it, for a message that carries its lease."""
        dispatcher = self.services.dispatcher
        dispatcher.send_all(written.messages, handed)
        dispatcher.publish(written.rows)


def snapshot(row: Mapping[Any, Any]) -> Snapshot:
    """The engine's view of an execution row."""
    return Snapshot.from_row(row)
