"""The in-step side of waits: each wait call of a step visit is numbered; on every run of the
step the n-th call looks up its recorded row and either returns the recorded value, consumes an
event or input that arrived, reports its timeout, or suspends the execution.

All of it runs in one transaction that first locks the execution row, fenced by this worker's
lease, so a concurrent ``send_event``/``provide_input`` or the tick is serialised with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection, RowMapping

from durable_celery import codec
from durable_celery.clock import as_utc
from durable_celery.errors import InvalidInput, WaitMismatch
from durable_celery.runtime.inputs import validate_input
from durable_celery.runtime.suspend import LeaseLost, Suspend
from durable_celery.state.waits import (
    get_wait_txn,
    insert_wait_txn,
    lock_leased_txn,
    mark_event_txn,
    mark_seen_txn,
    pending_events_txn,
    settle_wait_txn,
)

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
    counter: int = 0

    def wait(self, spec: WaitSpec) -> Any:
        idx = self.counter
        self.counter += 1
        now = self.services.clock.now()
        with self.services.db.begin() as conn:
            if lock_leased_txn(conn, self.execution_id, self.seq, self.token) is None:
                raise LeaseLost()
            row = get_wait_txn(conn, self.execution_id, self.entered_seq, idx)
            if row is None:
                row = insert_wait_txn(conn, self._new_row(idx, spec, now))
            elif row["kind"] != spec.kind or list(row["names"]) != list(spec.names):
                raise WaitMismatch(
                    f"step {self.step!r}: wait #{idx + 1} was {row['kind']}{list(row['names'])} when first reached, "
                    f"now it is {spec.kind}{list(spec.names)}")
            done, value = self._settle(conn, row, spec, now)
        if done:
            return value
        raise Suspend()

    def _new_row(self, idx: int, spec: WaitSpec, now: datetime) -> dict[str, Any]:
        timeout_at = spec.until if spec.until is not None else (
            now + timedelta(seconds=spec.timeout) if spec.timeout is not None else None)
        return {
            "execution_id": self.execution_id, "entered_seq": self.entered_seq, "idx": idx, "step_name": self.step,
            "kind": spec.kind, "names": list(spec.names), "status": "pending", "timeout_at": timeout_at,
            "result": {} if spec.kind == "all" else None, "created_at": now,
            "input_type": spec.input.get("type"), "prompt": spec.input.get("prompt"),
            "input_metadata": codec.encode(spec.input.get("metadata")), "fields": spec.input.get("fields"),
            "choices": spec.input.get("choices"),
        }

    def _settle(self, conn: Connection, row: RowMapping, spec: WaitSpec, now: datetime) -> tuple[bool, Any]:
        """(True, value) if the wait is over; (False, None) to suspend."""
        if row["status"] == "resolved":
            return True, _shape(spec.kind, codec.decode(row["result"]))
        if row["status"] == "timed_out":
            return True, spec.timeout_value
        timeout_at = as_utc(row["timeout_at"]) if row["timeout_at"] is not None else None
        result = self._consume(conn, row, spec, timeout_at, now)
        if result is not _MISSING:
            settle_wait_txn(conn, row["id"], "resolved", result, now)
            return True, _shape(spec.kind, codec.decode(result))
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
        if spec.kind == "sleep":
            return _MISSING
        kind = "input" if spec.kind == "input" else "event"
        received: dict[str, Any] = dict(row["result"] or {}) if spec.kind == "all" else {}
        seen = row["seen_event_id"]
        for event in pending_events_txn(conn, self.root_id, kind, spec.names, timeout_at):
            seen = max(seen or 0, event["id"])
            payload = event["payload"]
            if spec.kind == "input":
                try:
                    payload = codec.encode(validate_input(spec.input, codec.decode(payload)))
                except InvalidInput:
                    mark_event_txn(conn, event["id"], "rejected", row["id"], now)
                    continue
                if not mark_event_txn(conn, event["id"], "consumed", row["id"], now):
                    continue
                return payload
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


def _shape(kind: str, value: Any) -> Any:
    if kind == "any" and isinstance(value, list):
        return tuple(value)
    return value
