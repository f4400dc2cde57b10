"""Child workflows started from a step (``call_workflow``, ``start_workflow``).

The child's row is inserted in the transaction that records the call in the step's journal,
under a key made of the calling visit and the call's ``ref``, so a re-run of the step, a retry
or a duplicate delivery finds the child it started and never starts a second one.

When a child ends, its caller is woken in a transaction of its own, after the child's end is
committed (the caller is locked alone: lock order is ancestor first). If the worker dies in
between, the tick's sweep wakes the caller.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from durable_celery.compiler.ir import StateMachine
from durable_celery.runtime import live
from durable_celery.runtime.starts import new_execution_row
from durable_celery.settings import Settings
from durable_celery.state.executions import insert_execution_txn
from durable_celery.state.journal import wake_caller_txn

if TYPE_CHECKING:
    from durable_celery.runtime.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChildStart:
    """A child workflow a step starts: checked when the call is made, inserted when the call is
    first recorded."""

    machine: StateMachine
    input: Any
    ref: str
    queue: str | None = None

    def insert(self, conn: Connection, settings: Settings, parent_id: str, visit: int,
               now: datetime) -> tuple[str, dict[str, Any] | None]:
        """Insert the child (unless this visit started it already); (its id, the new row to
        publish once committed, or None)."""
        key = f"call:{parent_id}:{visit}:{self.ref}"
        row = new_execution_row(self.machine, settings, self.input, now, queue=self.queue, idempotency_key=key,
                                parent_id=parent_id)
        child_id, created = insert_execution_txn(conn, row)
        return child_id, row if created else None


def wake_caller(sv: Services, child_id: str, caller_id: str) -> None:
    """The child ``child_id`` ended: wake its caller if a step of it waits for the child."""
    try:
        with sv.db.begin() as conn:
            woken = wake_caller_txn(conn, child_id, caller_id, sv.clock.now())
    except Exception:  # noqa: BLE001 - the tick's sweep wakes the caller if this fails
        log.warning("durable: could not wake %s for its child %s; the tick will", caller_id, child_id, exc_info=True)
        return
    if woken is not None:
        live.resumed(sv.live, [woken], "child")
        sv.dispatcher.publish([woken])
