"""The step runner: claim an execution, run its current state, let the engine decide, have the
state layer write the checkpoint, then publish (or, in continuation mode, go on with the next
step in this task). The decisions are in :mod:`durable_celery.engine.decide`; this module only
runs user code and moves values between the engine, the database and the broker."""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from durable_celery import codec
from durable_celery.clock import as_utc
from durable_celery.compiler.ir import FAN_OUT
from durable_celery.context import StepInfo
from durable_celery.engine import decide
from durable_celery.engine.statuses import RUNNABLE, ExecutionStatus
from durable_celery.engine.values import Checkpoint, Outcome, Snapshot, StepOutcome, StepResult
from durable_celery.queue_limits import QueueLimits
from durable_celery.runtime import compensations, fanout, queues, tracing
from durable_celery.runtime.commit import Committer, Lease, snapshot
from durable_celery.runtime.executor import run_attempt
from durable_celery.runtime.handoff import confirm_after, take_handoff
from durable_celery.runtime.journal import StepJournal
from durable_celery.runtime.poison import PoisonMessage
from durable_celery.runtime.services import Services
from durable_celery.state.executions import claim, peek_txn
from durable_celery.state.queues import Refusal

log = logging.getLogger(__name__)


class Runner:
    """Drives executions forward inside Celery tasks."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.committer = Committer(services)

    # -- entry point of the step task ------------------------------------------------------------

    def run(self, execution_id: str, seq: int, queue: str | None, handoff: Mapping[str, Any] | None = None,
            redelivered: bool = False) -> Outcome:
        """Handle one message; returns how the task ended (for logs and tests). ``handoff``:
        the lease the message carries (see :func:`take_handoff`); a message the broker
        delivers again (``redelivered``) may have run already, so it claims instead."""
        sv = self.services
        now = sv.clock.now()
        limits = sv.settings.queue_limits.get(queue) if queue is not None else None
        if limits is not None:
            return self._run_controlled(limits, execution_id, seq, uuid.uuid4().hex)
        handoff_ttl = sv.policy.handoff_ttl
        handed = take_handoff(handoff, execution_id, seq, now, handoff_ttl, redelivered)
        if isinstance(handed, Snapshot):
            assert handed.lease_owner is not None and handoff_ttl is not None
            return self._hold_and_drive(handed, Lease(handed.lease_owner, queue, time.monotonic()),
                                        confirm_after=confirm_after(handoff_ttl))
        # the claim is one UPDATE ... RETURNING
        token = uuid.uuid4().hex
        row = claim(sv.db, execution_id, seq, token, now, now + timedelta(seconds=sv.settings.stale_lock_timeout),
                    handed)
        if row is None:
            return self._unclaimed(execution_id, seq)
        return self._hold_and_drive(snapshot(row), Lease(token, queue, time.monotonic()))

    def _hold_and_drive(self, snap: Snapshot, lease: Lease, confirm_after: float | None = None) -> Outcome:
        leases = self.services.leases
        leases.hold(lease.token, confirm_after)
        try:
            return self._drive(snap, lease)
        finally:
            leases.release(lease.token)

    def _run_controlled(self, limits: QueueLimits, execution_id: str, seq: int, token: str) -> Outcome:
        """A message on a controlled queue (docs/queues.md): the claim checks pause and limits
        in the queue's lock; turned away, the row waits for the queue and no worker is held.
        When the step ends, this task runs the next waiting step in its slot (within the
        continuation budget), and dispatches what else waits for the queue."""
        sv = self.services
        claimed = queues.claim(sv, limits, execution_id, seq, token)
        if isinstance(claimed, Refusal):
            return Outcome.THROTTLED
        if claimed is None:
            return self._unclaimed(execution_id, seq)
        row: Mapping[Any, Any] = claimed
        started = time.monotonic()
        try:
            while True:
                sv.leases.hold(token)
                try:
                    outcome = self._drive(snapshot(row), Lease(token, limits.name, time.monotonic(),
                                                               slot=limits.name))
                finally:
                    sv.leases.release(token)
                # The slot this step freed goes to the next waiting step, run here while the task
                # is within its continuation budget: no broker round trip between the two. The
                # rest of the free room (and the slot, past the budget) goes to other workers.
                following = self._next_waiting(limits, started)
                if following is None:
                    return outcome
                row, token = following, str(following["lease_owner"])
        finally:
            queues.refill(sv, limits.name)

    def _next_waiting(self, limits: QueueLimits, started: float) -> Mapping[Any, Any] | None:
        """The next waiting step of the queue, claimed for this task; None past the budget."""
        if time.monotonic() - started >= self.services.settings.continuation_budget:
            return None
        try:
            return queues.claim_next(self.services, limits, uuid.uuid4().hex)
        except Exception:  # noqa: BLE001 - the refill and the tick dispatch it instead
            log.warning("durable: could not take the next step of queue %s", limits.name, exc_info=True)
            return None

    def _unclaimed(self, execution_id: str, seq: int) -> Outcome:
        """A message that could not claim: a duplicate or stale one is dropped; one that came
        early (a retry countdown on a skewed clock) is published again for when it is due, but
        never held in the broker longer than ``max_countdown``: a later one is the tick's. In
        Celery's eager mode there is no broker to hold it (it would run again at once, and again):
        it is the tick's too. A message for an execution that does not exist (deleted, or
        never was) or for a ``seq`` it has not reached (no checkpoint publishes one ahead of
        its commit) is poison: ``PoisonMessage``, logged once by the task."""
        sv = self.services
        with sv.db.connect() as conn:
            row = peek_txn(conn, execution_id)
        if row is None:
            raise PoisonMessage(f"no execution {execution_id} (deleted, or never started)", missing=True)
        if row["seq"] < seq:
            raise PoisonMessage(f"seq {seq} is ahead of execution {execution_id}'s seq {row['seq']}", missing=True)
        if (row is not None and row["seq"] == seq and row["lease_owner"] is None and row["ready_at"] is not None
                and row["status"] in RUNNABLE):
            wait = (as_utc(row["ready_at"]) - sv.clock.now()).total_seconds()
            if 0 < wait <= sv.settings.max_countdown and not sv.dispatcher.eager:
                sv.dispatcher.publish([row], countdown=wait)
                return Outcome.EARLY
            if wait > 0:
                return Outcome.EARLY
        return Outcome.DUPLICATE

    # -- the loop over consecutive states -------------------------------------------------------

    def _drive(self, snap: Snapshot, lease: Lease) -> Outcome:
        """Run states while the lease is kept (continuation); return how the task ended."""
        sv = self.services
        while True:
            machine = sv.registry.get(snap.workflow, snap.version)
            if snap.status is ExecutionStatus.COMPENSATING and machine is not None:
                return compensations.run(self.committer, machine, snap, lease)
            turn = self._turn(lease)
            located = decide.locate(machine, snap, turn)
            if isinstance(located, Checkpoint):
                cp = located
            elif located.state.kind in FAN_OUT:
                assert machine is not None
                decided = fanout.step(self.committer, machine, snap, lease, located, turn)
                if not isinstance(decided, Checkpoint):
                    return decided
                cp = decided
            else:
                assert machine is not None
                result = self._attempt(snap, lease, located)
                if result.outcome is StepOutcome.LEASE_LOST:
                    return Outcome.LEASE_LOST
                policy = sv.policy
                cp = decide.after_step(machine, snap, located, result, self._turn(lease, policy.handoff_ttl is not None),
                                       policy)
            written = self.committer.commit(machine, snap, lease, cp)
            if written is None:
                return Outcome.LEASE_LOST
            # the next iteration of the same foreach, or the parent whose block this branch ended, run in this task
            if written.claimed is not None:
                snap = snapshot(written.claimed)
                continue
            if written.outcome is not Outcome.CONTINUE:
                return written.outcome
            snap = snap.after(cp)

    def _turn(self, lease: Lease, may_hand_over: bool = False) -> decide.Turn:
        """Now, as this task sees it: may it run another step within its continuation budget?
        ``may_hand_over``: the turn after a step, whose checkpoint may lease the execution to the
        next step's message (a fresh token for it)."""
        elapsed = time.monotonic() - lease.started
        return decide.Turn(self.services.clock.now(), lease.queue, elapsed < self.services.settings.continuation_budget,
                           handoff=uuid.uuid4().hex if may_hand_over else None)

    def _attempt(self, snap: Snapshot, lease: Lease, run: decide.Run) -> StepResult:
        state = run.state
        assert state.step is not None
        waits = StepJournal(self.services, snap.id, state.id, snap.seq, snap.entered_seq, lease.token, snap.top,
                           lease.queue or snap.queue, workflow=snap.workflow)
        live = self.services.live
        if live.active():
            live.emit("step.started", snap, step=state.id, attempt=snap.attempt, seq=snap.seq)
        info = StepInfo(snap.top, snap.workflow, state.id, snap.attempt, codec.decode(snap.input), waits,
                        execution_id=snap.id, visit=snap.entered_seq)
        args = (run.ctx, codec.decode(snap.item)) if state.step.takes_item else (run.ctx,)
        return tracing.traced(snap.trace_context, snap.workflow, state.id,
                              {"durable.execution_id": snap.id, "durable.attempt": snap.attempt, "durable.seq": snap.seq},
                              functools.partial(run_attempt, state.step.fn, args, info, state.step.timeout))

