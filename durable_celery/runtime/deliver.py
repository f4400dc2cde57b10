"""Delivering events and human input to executions: kept until a wait consumes them, and
waking the execution when it is waiting for them.

The event is recorded in one transaction that locks the top-level execution (events and inputs
are kept there) and then only the executions of its tree whose current step has a pending wait
for that name, found in one query: a foreach of 10,000 iterations is neither blocked nor read row
by row by an event that three of them wait for. Those locks serialise it with the steps that
wait and with the tick.

A branch that is not locked may be between looking at the events and suspending (its wait was
not committed yet when the transaction looked): it can miss the event, and the transaction can
miss it. So once the event is committed, a second short transaction looks again for the branches
of the tree waiting for that name that the first one did not lock, and wakes those it concerns.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import SQLAlchemyError

from durable_celery.engine.statuses import TERMINAL, ExecutionStatus
from durable_celery.errors import DatabaseUnavailable, ExecutionNotFound, InvalidState
from durable_celery.limits import check_name, encode_payload
from durable_celery.runtime import live
from durable_celery.runtime.inputs import validate_input
from durable_celery.state.journal import (
    broadcast_targets_txn,
    broadcast_txn,
    copy_broadcasts_txn,
    insert_broadcast_txn,
    should_wake,
)
from durable_celery.state.waits import (
    asked_txn,
    asking_ids_txn,
    insert_event_txn,
    lock_asking_txn,
    lock_execution_txn,
    pending_events_txn,
    root_of_txn,
    wake_all_txn,
)

if TYPE_CHECKING:
    from durable_celery.runtime.services import Services

log = logging.getLogger(__name__)


def _name(name: Any, what: str) -> str:
    return check_name(name, f"{what} name")


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


def _wake_waiting(conn: Connection, asking: list[tuple[RowMapping, RowMapping]], now: datetime) -> list[RowMapping]:
    """Wake the locked executions that are suspended on one of these pending waits."""
    ids = dict.fromkeys(member["id"] for member, _ in asking if member["status"] == ExecutionStatus.WAITING)
    return wake_all_txn(conn, list(ids), now)


def _wake_late(sv: Services, root_id: str, kind: str, name: str, locked: set[str]) -> list[RowMapping]:
    """After the event or input is committed: wake the executions of the tree that wait for it
    but were not locked by the delivering transaction (a step that looked at the events before
    that transaction committed, and suspended after it had looked). Publishes them."""
    if sv.db.dialect != "postgresql":
        return []  # SQLite runs one write transaction at a time: no step ran while the event was sent
    try:
        with sv.db.begin() as conn:
            late = [i for i in asking_ids_txn(conn, root_id, kind, name) if i not in locked]
            if not late:
                return []
            now = sv.clock.now()
            lock_execution_txn(conn, root_id)
            members = {member["id"]: member for member, _ in lock_asking_txn(conn, root_id, kind, name, among=late)}
            woken = wake_all_txn(conn, [
                member["id"] for member in members.values()
                if member["status"] == ExecutionStatus.WAITING
                and should_wake(conn, member["id"], member["entered_seq"], now, root_id)], now)
    except (SQLAlchemyError, DatabaseUnavailable):
        # the event is recorded: a step that raced with it wakes at its next event or timeout
        log.warning("durable: could not look again for waits on %s %r of %s", kind, name, root_id, exc_info=True)
        return []
    _resume(sv, woken, kind)
    return woken


def _resume(sv: Services, woken: list[RowMapping], by: str) -> None:
    """Publish the executions an event or input woke (their live events first, in order)."""
    live.resumed(sv.live, woken, by)
    sv.dispatcher.publish(woken)


def send_event(sv: Services, execution_id: str, name: str, payload: Any) -> bool:
    """Record an event for an execution (kept on its top-level execution, for any step of it or
    of its branches and iterations) and wake whatever waits for it; True if something woke."""
    _name(name, "event")
    encoded = encode_payload(payload, "the payload", sv.settings.max_payload_bytes)
    now = sv.clock.now()
    with sv.db.begin() as conn:
        root = _lock_root(conn, execution_id, "events")
        insert_event_txn(conn, root["id"], "event", name, encoded, now)
        asking = lock_asking_txn(conn, root["id"], "event", name)
        woken = _wake_waiting(conn, asking, now)
    _resume(sv, woken, "event")
    late = _wake_late(sv, root["id"], "event", name, {root["id"], *(member["id"] for member, _ in asking)})
    return bool(woken or late)


def emit_event(sv: Services, name: str, payload: Any) -> int:
    """Emit an event by name: every execution active now whose steps wait for ``name`` (now, or
    later: it is kept for them) gets it once. Returns how many were waiting for it now."""
    _name(name, "event")
    encoded = encode_payload(payload, "the payload", sv.settings.max_payload_bytes)
    with sv.db.begin() as conn:
        broadcast_id = insert_broadcast_txn(conn, name, encoded, sv.clock.now())
    return deliver_broadcast(sv, broadcast_id)


def deliver_broadcast(sv: Services, broadcast_id: int) -> int:
    """Hand an emitted event to the executions waiting for it now, one transaction per
    execution (each at most once: a second delivery changes nothing). Those that reach a wait
    for it later take it themselves. Returns how many it was handed to."""
    with sv.db.begin() as conn:
        emitted = broadcast_txn(conn, broadcast_id)
        if emitted is None:
            return 0
        name = emitted["name"]
        targets = broadcast_targets_txn(conn, name, emitted["created_at"])
    for root_id in targets:
        now = sv.clock.now()
        with sv.db.begin() as conn:
            root = lock_execution_txn(conn, root_id)
            if root is None or root["status"] in TERMINAL:
                continue
            copy_broadcasts_txn(conn, root_id, (), broadcast_id)
            asking = lock_asking_txn(conn, root_id, "event", name)
            woken = _wake_waiting(conn, asking, now)
        _resume(sv, woken, "event")
        _wake_late(sv, root_id, "event", name, {root_id, *(member["id"] for member, _ in asking)})
    return len(targets)


def provide_input(sv: Services, execution_id: str, name: str, data: Any) -> bool:
    """Record a person's input. Validated against the waiting step's declared form (when a step
    already asks for it); a second input for the same request is refused."""
    _name(name, "input")
    encode_payload(data, "the input", sv.settings.max_payload_bytes)  # before any lock is taken
    now = sv.clock.now()
    with sv.db.begin() as conn:
        root = _lock_root(conn, execution_id, "input")
        pending = lock_asking_txn(conn, root["id"], "input", name)
        if not pending and asked_txn(conn, root["id"], "input", name):
            raise InvalidState(execution_id, root["status"], f"input {name!r} was already provided or timed out")
        if pending:
            wait = pending[0][1]
            data = validate_input({"type": wait["input_type"], "fields": wait["fields"], "choices": wait["choices"]},
                                  data)
        encoded = encode_payload(data, "the input", sv.settings.max_payload_bytes)
        if pending_events_txn(conn, root["id"], "input", [name], None):
            raise InvalidState(execution_id, root["status"], f"input {name!r} was already provided")
        insert_event_txn(conn, root["id"], "input", name, encoded, now)
        woken = _wake_waiting(conn, pending, now)
    if sv.live.active():
        sv.live.emit("input.provided", root, name=name)
    _resume(sv, woken, "input")
    late = _wake_late(sv, root["id"], "input", name, {root["id"], *(member["id"] for member, _ in pending)})
    return bool(woken or late)
