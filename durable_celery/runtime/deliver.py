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
    root_of_txn,
    tree_members_txn,
    visit_waits_txn,
    wake_txn,
)

if TYPE_CHECKING:
    from durable_celery.runtime.services import Services


def _name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name or len(name) > 255:
        raise InvalidInput(f"{what} name must be a string of 1 to 255 characters, got {name!r}")
    return name


def _encode(value: Any, what: str) -> Any:
    try:
        return codec.encode(value)
    except codec.Unencodable as exc:
        raise InvalidInput(f"{what} at {exc.path or 'its root'} holds a {exc.type_name}, which is not JSON") from None


def _lock_root(conn: Connection, execution_id: str, what: str) -> RowMapping:
    """Lock the top-level execution that ``execution_id`` belongs to (itself, or the workflow a
    branch or iteration belongs to): events and inputs are kept there, for its whole tree."""
    root_id = root_of_txn(conn, execution_id)  # unlocked read: lock order is root first, then its tree
    row = lock_execution_txn(conn, root_id) if root_id is not None else None
    if row is None:
        raise ExecutionNotFound(execution_id)
    if row["status"] in TERMINAL:
        raise InvalidState(execution_id, row["status"], f"a finished execution takes no {what}")
    return row


def _asking(conn: Connection, root: RowMapping, kind: str, name: str) -> list[tuple[RowMapping, RowMapping]]:
    """(execution, wait) for every execution of the tree whose current step has a wait of
    ``kind`` for ``name`` (any status), oldest first."""
    found = []
    for member in [root, *tree_members_txn(conn, root["id"])]:
        for wait in visit_waits_txn(conn, member["id"], member["entered_seq"]):
            if (wait["kind"] == "input") == (kind == "input") and name in wait["names"]:
                found.append((member, wait))
    return found


def _wake_waiting(conn: Connection, asking: list[tuple[RowMapping, RowMapping]], now: datetime) -> list[RowMapping]:
    woken = []
    for member, wait in asking:
        if wait["status"] == "pending" and member["status"] == ExecutionStatus.WAITING:
            row = wake_txn(conn, member["id"], now)
            if row is not None:
                woken.append(row)
    return woken


def send_event(durable: Services, execution_id: str, name: str, payload: Any) -> bool:
    """Record an event for an execution (kept on its top-level execution, for any step of it or
    of its branches and iterations) and wake whatever waits for it; True if something woke."""
    _name(name, "event")
    encoded = _encode(payload, "the payload")
    now = durable.clock.now()
    with durable.db.begin() as conn:
        root = _lock_root(conn, execution_id, "events")
        insert_event_txn(conn, root["id"], "event", name, encoded, now)
        woken = _wake_waiting(conn, _asking(conn, root, "event", name), now)
    durable.dispatcher.publish(woken)
    return bool(woken)


def provide_input(durable: Services, execution_id: str, name: str, data: Any) -> bool:
    """Record a person's input. Validated against the waiting step's declared form (when a step
    already asks for it); a second input for the same request is refused."""
    _name(name, "input")
    now = durable.clock.now()
    with durable.db.begin() as conn:
        root = _lock_root(conn, execution_id, "input")
        asked = _asking(conn, root, "input", name)
        pending = [(member, wait) for member, wait in asked if wait["status"] == "pending"]
        if asked and not pending:
            raise InvalidState(execution_id, root["status"], f"input {name!r} was already provided or timed out")
        if pending:
            wait = pending[0][1]
            data = validate_input({"type": wait["input_type"], "fields": wait["fields"], "choices": wait["choices"]},
                                  data)
        encoded = _encode(data, "the input")
        if pending_events_txn(conn, root["id"], "input", [name], None):
            raise InvalidState(execution_id, root["status"], f"input {name!r} was already provided")
        insert_event_txn(conn, root["id"], "input", name, encoded, now)
        woken = _wake_waiting(conn, pending, now)
    durable.dispatcher.publish(woken)
    return bool(woken)
