"""What a step does once per visit, recorded in its journal beside its waits: starting a child
workflow (``start_workflow``), a checkpointed value (``context.checkpoint``), an emitted event
(``emit_event``). A re-run of the step (after a wait, a retry, a lost worker) reaches the same
entry in the same order and gets what was recorded instead of doing it again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection, RowMapping

from durable_celery import codec
from durable_celery.errors import InvalidInput
from durable_celery.runtime import deliver
from durable_celery.runtime.calls import ChildStart
from durable_celery.runtime.outage import patiently
from durable_celery.runtime.waiting import WaitHandle
from durable_celery.state.journal import insert_broadcast_txn
from durable_celery.state.waits import insert_wait_txn, settle_wait_txn


class StepJournal(WaitHandle):
    """The journal of one run of one step: its waits (see :class:`WaitHandle`) and what it does
    once per visit. Set in the step's context by the runner."""

    def start_child(self, child: ChildStart) -> str:
        return start_child(self, child)

    def record(self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return record(self, name, fn, args, kwargs)

    def emit(self, name: str, encoded: Any) -> None:
        emit(self, name, encoded)


def _entry(handle: WaitHandle, idx: int, kind: str, name: str, status: str, result: Any, ref: str | None,
           now: Any) -> dict[str, Any]:
    return {"execution_id": handle.execution_id, "entered_seq": handle.entered_seq, "idx": idx,
            "step_name": handle.step, "kind": kind, "names": [name], "status": status, "result": result,
            "ref": ref, "created_at": now, "resolved_at": now if status == "resolved" else None}


def start_child(handle: WaitHandle, child: ChildStart) -> str:
    """Start ``child`` once per visit (per ``ref``); its id."""
    idx = handle.next_index()
    sv = handle.services

    def begin(conn: Connection) -> tuple[str, Any]:
        handle.lock(conn)
        row = handle.entry_txn(conn, idx, "start", (child.ref,))
        if row is not None:
            return str(row["ref"]), None
        now = sv.clock.now()
        child_id, created = child.insert(conn, sv.settings, handle.execution_id, handle.entered_seq, now)
        insert_wait_txn(conn, _entry(handle, idx, "start", child.ref, "resolved", child_id, child_id, now))
        return child_id, created

    child_id, created = handle.in_transaction(begin, "starting a child workflow")
    if created is not None:
        sv.dispatcher.publish([created])
    return child_id


def record(handle: WaitHandle, name: str, fn: Callable[..., Any], args: tuple[Any, ...],
           kwargs: dict[str, Any]) -> Any:
    """``fn(*args, **kwargs)`` once per visit: its recorded result on every later run."""
    idx = handle.next_index()
    sv = handle.services

    def look(conn: Connection) -> RowMapping | None:
        handle.lock(conn)
        return handle.entry_txn(conn, idx, "record", (name,))

    row = handle.in_transaction(look, f"checkpoint {name!r}")
    if row is not None:
        return codec.decode(row["result"])
    value = fn(*args, **kwargs)  # outside any transaction: it may take long
    try:
        encoded = codec.encode(value)
    except codec.Unencodable as exc:
        raise InvalidInput(f"checkpoint {name!r}: the result at {exc.path or 'its root'} holds a {exc.type_name}, "
                           "which cannot be stored as JSON") from None
    def keep(conn: Connection) -> None:
        handle.lock(conn)
        if handle.entry_txn(conn, idx, "record", (name,)) is None:  # (a try whose answer was lost wrote it)
            insert_wait_txn(conn, _entry(handle, idx, "record", name, "resolved", encoded, None, sv.clock.now()))

    handle.in_transaction(keep, f"checkpoint {name!r}")
    return codec.decode(encoded)  # the same value a re-run gets


def emit(handle: WaitHandle, name: str, encoded: Any) -> None:
    """Emit an event by name once per visit. The entry and the event are recorded together; the
    entry is marked done once the event was handed to those waiting for it, so a worker lost in
    between hands it again (each execution still takes it once)."""
    idx = handle.next_index()
    sv = handle.services

    def record_it(conn: Connection) -> RowMapping:
        handle.lock(conn)
        row = handle.entry_txn(conn, idx, "emit", (name,))
        if row is None:
            now = sv.clock.now()
            broadcast_id = insert_broadcast_txn(conn, name, encoded, now)
            row = insert_wait_txn(conn, _entry(handle, idx, "emit", name, "pending", None, str(broadcast_id), now))
        return row

    row = handle.in_transaction(record_it, f"emitting {name!r}")
    if row["status"] == "resolved":
        return
    # each execution takes an emitted event once: handing it again after a lost answer changes nothing
    patiently(lambda _: deliver.deliver_broadcast(sv, int(row["ref"])), f"delivering {name!r}")
    handle.in_transaction(lambda conn: settle_wait_txn(conn, row["id"], "resolved", None, sv.clock.now()),
                          f"emitting {name!r}")
