"""Delivering events and human input to executions: kept until a wait consumes them, and
waking the execution when it is waiting for them. Each call is one transaction that locks the
execution row first, so it is serialised with the step that waits and with the tick."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, RowMapping

from durable_celery import codec
from durable_celery.engine.statuses import TERMINAL, ExecutionStatus
from durable_celery.errors import ExecutionNotFound, InvalidInput, InvalidState
from durable_celery.runtime.inputs import validate_input
from durable_celery.state.waits import (
    insert_event_txn,
    lock_execution_txn,
    pending_events_txn,
    pending_waits_txn,
    visit_waits_txn,
    wake_txn,
)

if TYPE_CHECKING:
    from durable_celery.durable import Durable


def _name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name or len(name) > 255:
        raise InvalidInput(f"{what} name must be a string of 1 to 255 characters, got {name!r}")
    return name


def _encode(value: Any, what: str) -> Any:
    try:
        return codec.encode(value)
    except codec.Unencodable as exc:
        raise InvalidInput(f"{what} at {exc.path or 'its root'} holds a {exc.type_name}, which is not JSON") from None


def _lock_active(conn: Connection, execution_id: str, what: str) -> RowMapping:
    row = lock_execution_txn(conn, execution_id)
    if row is None:
        raise ExecutionNotFound(execution_id)
    if row["status"] in TERMINAL:
        raise InvalidState(execution_id, row["status"], f"a finished execution takes no {what}")
    return row


def _wake_if_waiting_for(conn: Connection, row: RowMapping, kind: str, name: str, now: datetime) -> RowMapping | None:
    if row["status"] != ExecutionStatus.WAITING:
        return None
    for wait in pending_waits_txn(conn, row["id"], row["entered_seq"]):
        if (wait["kind"] == "input") == (kind == "input") and name in wait["names"]:
            return wake_txn(conn, row["id"], now)
    return None


def send_event(durable: Durable, execution_id: str, name: str, payload: Any) -> bool:
    """Record an event for an execution and wake it if it waits for it; True if woken."""
    _name(name, "event")
    encoded = _encode(payload, "the payload")
    now = durable.clock.now()
    with durable.db.begin() as conn:
        row = _lock_active(conn, execution_id, "events")
        insert_event_txn(conn, execution_id, "event", name, encoded, now)
        woken = _wake_if_waiting_for(conn, row, "event", name, now)
    _publish(durable, woken)
    return woken is not None


def provide_input(durable: Durable, execution_id: str, name: str, data: Any) -> bool:
    """Record a person's input. Validated against the waiting step's declared form (when the
    step already asks for it); a second input for the same request is refused."""
    _name(name, "input")
    now = durable.clock.now()
    with durable.db.begin() as conn:
        row = _lock_active(conn, execution_id, "input")
        named = [w for w in visit_waits_txn(conn, execution_id, row["entered_seq"])
                 if w["kind"] == "input" and name in w["names"]]
        asking = [w for w in named if w["status"] == "pending"]
        if named and not asking:
            raise InvalidState(execution_id, row["status"], f"input {name!r} was already provided or timed out")
        if asking:
            declared = {"type": asking[0]["input_type"], "fields": asking[0]["fields"],
                        "choices": asking[0]["choices"]}
            data = validate_input(declared, data)
        encoded = _encode(data, "the input")
        if pending_events_txn(conn, execution_id, "input", [name], None):
            raise InvalidState(execution_id, row["status"], f"input {name!r} was already provided")
        insert_event_txn(conn, execution_id, "input", name, encoded, now)
        woken = _wake_if_waiting_for(conn, row, "input", name, now)
    _publish(durable, woken)
    return woken is not None


def _publish(durable: Durable, row: RowMapping | None) -> None:
    if row is not None:
        durable.dispatcher.send(row["id"], row["seq"], workflow=row["workflow"], step=row["current_node"],
                                queue=row["queue"], priority=row["priority"])
