"""The in-step side of waits: each wait call of a step visit is numbered; on every run of the
step the n-th call looks up its recorded row and either returns the recorded value, consumes an
event or input that arrived, reports its timeout, or suspends the execution.

All of it runs in one transaction that first locks the execution row, fenced by this worker's
lease, so a concurrent ``send_event``/``provide_input`` or the tick is serialised with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection, RowMapping

from durable_celery import codec
from durable_celery.clock import as_utc
from durable_celery.engine.statuses import ExecutionStatus
from durable_celery.errors import ChildWorkflowError, InvalidInput, TaskFailed, WaitMismatch
from durable_celery.runtime.calls import ChildStart
from durable_celery.runtime.inputs import validate_input
from durable_celery.runtime.suspend import LeaseLost, Suspend
from durable_celery.state.journal import child_outcome_txn, copy_broadcasts_txn, mark_sent_txn
from durable_celery.state.waits import (
    get_wait_txn,
    insert_wait_txn,
    lock_leased_txn,
    mark_event_txn,
    mark_seen_txn,
    pending_events_txn,
    settle_wait_txn,
)
from durable_celery.testing import faults

if TYPE_CHECKING:
    from durable_celery.runtime.services import Services


@dataclass(frozen=True)
class WaitSpec:
    """What a wait call asks for."""

    kind: str  # sleep | event | any | all | input
    names: tuple[str, ...] = ()
    timeout: float | None = None
    until: datetime | None = None
    timeout_value: Any = None
    filter: Callable[[Any], bool] | None = None
    input: dict[str, Any] = field(default_factory=dict)
    #: a call_workflow: the child it starts when first reached
    child: ChildStart | None = None
    #: an await_task: sends the task (given the task id and journal index) until its sending is recorded
    send: Callable[[str, int], None] | None = None

    def outcome(self, result: Any) -> Any:
        """What the wait call returns for its recorded ``result`` (or raises, for a child that
        did not complete or a task that failed)."""
        if self.kind == "any" and isinstance(result, list):
            return tuple(result)
        if self.kind == "child":
            if result["status"] != ExecutionStatus.COMPLETED:
                raise ChildWorkflowError(result["child_id"], result["status"], result["error"])
            return result["context"]
        if self.kind == "task":
            if "error" in result:
                raise TaskFailed(self.names[0], result["task_id"], result["error"])
            return result["value"]
        return result


@dataclass
class WaitHandle:
    """Bound to one run of one step (set in the step context by the runner)."""

    services: Services
    execution_id: str
    step: str
    seq: int
    entered_seq: int
    token: str
    #: events and inputs are kept on the top-level execution
    root_id: str
    #: the queue this step runs from (served by workflow workers): callbacks come back on it
    queue: str = ""
    counter: int = 0
    #: the workflow, for live events
    workflow: str | None = None

    def wait(self, spec: WaitSpec) -> Any:
        idx = self.next_index()
        now = self.services.clock.now()
        started: list[dict[str, Any]] = []
        asked = False
        with self.services.db.begin() as conn:
            self.lock(conn)
            row = self.entry_txn(conn, idx, spec.kind, spec.names)
            if row is None:
                asked = spec.kind == "input"
                values = self._new_row(idx, spec, now)
                if spec.child is not None:
                    values["ref"], created = spec.child.insert(conn, self.services.settings, self.execution_id,
                                                               self.entered_seq, now)
                    started.extend([created] if created is not None else [])
                row = insert_wait_txn(conn, values)
            done, value = self._settle(conn, row, spec, now)
        if started:
            faults.trip("after_child_recorded", self.step)
        self._tell(started, spec.names[0] if asked and not done else None)
        self.services.dispatcher.publish(r for r in started if r["dispatched_at"] is not None)
        if done:
            return value
        if spec.send is not None and row["sent_at"] is None:
            # After the entry is committed, under the task id it records: a worker lost in
            # between sends it again under the same id (at least once, as Celery delivers).
            spec.send(row["ref"], row["idx"])
            with self.services.db.begin() as conn:
                mark_sent_txn(conn, row["id"], self.services.clock.now())
        raise Suspend()

    def _tell(self, started: list[dict[str, Any]], input_name: str | None) -> None:
        """Live events: the child executions this wait started, the input it asks for."""
        emitter = self.services.live
        if (started or input_name) and emitter.active():
            here = {"id": self.execution_id, "root_id": self.root_id, "workflow": self.workflow}
            events = [emitter.event("execution.started", row, parent_id=self.execution_id) for row in started]
            if input_name is not None:
                events.append(emitter.event("input.requested", here, step=self.step, seq=self.seq, name=input_name))
            emitter.emit_all(events)

    def task_id(self, idx: int) -> str:
        """The Celery task id of the task awaited at journal entry ``idx`` of this visit."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"durable-celery:{self.execution_id}:{self.entered_seq}:{idx}"))

    def next_index(self) -> int:
        idx = self.counter
        self.counter += 1
        return idx

    def lock(self, conn: Connection) -> None:
        """Lock the execution, fenced by this worker's lease (LeaseLost if it is gone)."""
        if lock_leased_txn(conn, self.execution_id, self.seq, self.token) is None:
            raise LeaseLost()

    def entry_txn(self, conn: Connection, idx: int, kind: str, names: tuple[str, ...]) -> RowMapping | None:
        """The journal entry ``idx`` of this visit (None if not reached before); raises
        ``WaitMismatch`` if the step reached something else there the first time."""
        row = get_wait_txn(conn, self.execution_id, self.entered_seq, idx)
        if row is not None and (row["kind"] != kind or list(row["names"]) != list(names)):
            raise WaitMismatch(
                f"step {self.step!r}: call #{idx + 1} of its journal was {row['kind']}{list(row['names'])} when "
                f"first reached, now it is {kind}{list(names)}")
        return row

    def _new_row(self, idx: int, spec: WaitSpec, now: datetime) -> dict[str, Any]:
        timeout_at = spec.until if spec.until is not None else (
            now + timedelta(seconds=spec.timeout) if spec.timeout is not None else None)
        return {
            "execution_id": self.execution_id, "entered_seq": self.entered_seq, "idx": idx, "step_name": self.step,
            "ref": self.task_id(idx) if spec.kind == "task" else None,
            "kind": spec.kind, "names": list(spec.names), "status": "pending", "timeout_at": timeout_at,
            "result": {} if spec.kind == "all" else None, "created_at": now,
            "input_type": spec.input.get("type"), "prompt": spec.input.get("prompt"),
            "input_metadata": codec.encode(spec.input.get("metadata")), "fields": spec.input.get("fields"),
            "choices": spec.input.get("choices"),
        }

    def _settle(self, conn: Connection, row: RowMapping, spec: WaitSpec, now: datetime) -> tuple[bool, Any]:
        """(True, value) if the wait is over; (False, None) to suspend."""
        if row["status"] == "resolved":
            return True, spec.outcome(codec.decode(row["result"]))
        if row["status"] == "timed_out":
            return True, spec.timeout_value
        timeout_at = as_utc(row["timeout_at"]) if row["timeout_at"] is not None else None
        result = self._consume(conn, row, spec, timeout_at, now)
        if result is not _MISSING:
            settle_wait_txn(conn, row["id"], "resolved", result, now)
            return True, spec.outcome(codec.decode(result))
        if timeout_at is not None and now >= timeout_at:
            if spec.kind == "sleep":
                settle_wait_txn(conn, row["id"], "resolved", None, now)
                return True, None
            settle_wait_txn(conn, row["id"], "timed_out", row["result"], now)
            return True, spec.timeout_value
        return False, None

    def _consume(self, conn: Connection, row: RowMapping, spec: WaitSpec, timeout_at: datetime | None,
                 now: datetime) -> Any:
        """Take the events/inputs this wait needs, if they arrived in time; the stored result or
        ``_MISSING``."""
        if spec.kind in ("sleep", "task"):
            return _MISSING  # a sleep only times out; a task's result is recorded by its callback
        if spec.kind == "child":
            return _child_outcome(conn, row["ref"])
        if spec.kind != "input":
            copy_broadcasts_txn(conn, self.root_id, spec.names)
        kind = "input" if spec.kind == "input" else "event"
        received: dict[str, Any] = dict(row["result"] or {}) if spec.kind == "all" else {}
        seen = row["seen_event_id"]
        for event in pending_events_txn(conn, self.root_id, kind, spec.names, timeout_at):
            seen = max(seen or 0, event["id"])
            payload = event["payload"]
            if spec.kind == "input":
                taken = _take_input(conn, spec, event, row["id"], now)
                if taken is _MISSING:
                    continue
                return taken
            if spec.filter is not None and not spec.filter(codec.decode(payload)):
                continue  # kept: another wait may want it
            if spec.kind == "all" and event["name"] in received:
                continue
            if not mark_event_txn(conn, event["id"], "consumed", row["id"], now):
                continue  # a sibling branch's wait took it
            if spec.kind != "all":
                return [event["name"], payload] if spec.kind == "any" else payload
            received[event["name"]] = payload
            if len(received) == len(spec.names):
                return received
        if seen != row["seen_event_id"] or (spec.kind == "all" and received != (row["result"] or {})):
            mark_seen_txn(conn, row["id"], seen or 0, received if spec.kind == "all" else row["result"])
        return _MISSING


_MISSING = object()


def _child_outcome(conn: Connection, child_id: str) -> Any:
    """How a called child ended (what its call returns or raises), or ``_MISSING`` while it runs."""
    ended = child_outcome_txn(conn, child_id)
    if ended is None:
        return _MISSING
    return {"child_id": ended["id"], "status": ended["status"], "context": ended["context"], "error": ended["error"]}


def _take_input(conn: Connection, spec: WaitSpec, event: RowMapping, wait_id: int, now: datetime) -> Any:
    """Consume a person's input if it passes the form's checks (else reject it); its stored
    value, or ``_MISSING``."""
    try:
        payload = codec.encode(validate_input(spec.input, codec.decode(event["payload"])))
    except InvalidInput:
        mark_event_txn(conn, event["id"], "rejected", wait_id, now)
        return _MISSING
    return payload if mark_event_txn(conn, event["id"], "consumed", wait_id, now) else _MISSING
