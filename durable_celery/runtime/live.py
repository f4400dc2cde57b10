"""Live lifecycle events: what ``Durable.subscribe`` yields (docs/operations.md#live-events).

The engine writes an event only while someone subscribes: a subscriber keeps a heartbeat row
(``heartbeats``, ``subscriber:<id>``), and each process looks for one at most once a second
(``Emitter.active``). With no subscriber an event costs a clock read. With one, each event is a
row of ``live_events``, inserted after the change it reports has committed (and before its
messages are published, so the events of one execution are inserted in the order they
happened), with a NOTIFY in the same statement on PostgreSQL that wakes subscribers at once;
on SQLite (the embedded default) subscribers poll. Events are kept ``live_events_retention``
seconds (the tick prunes them): a subscriber that reconnects within that time misses nothing.

Emitting never fails the engine: an event that cannot be written is logged and dropped.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from collections.abc import Generator, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from durable_celery.clock import Clock, as_utc
from durable_celery.engine.statuses import StepStatus
from durable_celery.engine.values import Checkpoint, Outcome, Snapshot
from durable_celery.models import LifecycleEvent
from durable_celery.state.db import Database
from durable_celery.state.heartbeats import beat_txn
from durable_celery.state.live import (
    SUBSCRIBER,
    channel,
    emit_txn,
    forget_subscribers_txn,
    newest_id_txn,
    prune_txn,
    read_txn,
    subscribed_since_txn,
)

log = logging.getLogger(__name__)

#: every kind of event, with when it is emitted
KINDS = {
    "execution.started": "an execution was created (start, start_many, a schedule, a parent's step)",
    "step.started": "a worker began an attempt of a step",
    "step.completed": "a step attempt succeeded and its checkpoint committed",
    "step.failed": "a step attempt failed for good (data: error)",
    "step.retrying": "a step attempt failed and another is scheduled (data: error, retry_at)",
    "execution.waiting": "a step suspended in a wait (data: waits: the kinds and names it waits for)",
    "execution.resumed": "a waiting execution was woken (an event, an input, a timer, a child)",
    "input.requested": "a step asks for human input (data: name)",
    "input.provided": "an input was provided (data: name)",
    "execution.compensating": "the execution's compensations start",
    "execution.completed": "the execution completed",
    "execution.failed": "the execution failed (data: error)",
    "execution.cancelled": "the execution was cancelled",
    "execution.compensated": "the compensations ran",
    "execution.compensation_failed": "a compensation failed for good",
    "schedule.fired": "a cron schedule started a run (data: schedule)",
}

#: how long events are kept (seconds): a subscriber that reconnects within it misses nothing
RETENTION = 600.0
#: how long a process trusts its last look for subscribers (seconds)
LOOK_EVERY = 1.0
#: a subscriber not seen for this long (seconds) is gone
SUBSCRIBER_TTL = 10.0


class Emitter:
    """Writes lifecycle events while someone subscribes; one per process and Durable."""

    def __init__(self, db: Database, clock: Clock, prefix: str) -> None:
        self.db = db
        self.clock = clock
        self.notify = channel(prefix)
        self._checked = -LOOK_EVERY
        self._active = False
        self._lock = threading.Lock()

    def active(self) -> bool:
        """Does anyone subscribe? Looked up at most once a second per process."""
        now = time.monotonic()
        if now - self._checked < LOOK_EVERY:
            return self._active
        with self._lock:
            if now - self._checked >= LOOK_EVERY:
                try:
                    with self.db.connect() as conn:
                        since = self.clock.now() - timedelta(seconds=SUBSCRIBER_TTL)
                        self._active = subscribed_since_txn(conn, since)
                except Exception:  # noqa: BLE001 - a live view never stops the engine
                    log.debug("durable: could not look for subscribers", exc_info=True)
                    self._active = False
                self._checked = now
        return self._active

    def emit(self, kind: str, snap: Snapshot | Mapping[Any, Any] | None, *, step: str | None = None,
             attempt: int | None = None, seq: int | None = None, **data: Any) -> None:
        """Write one event about execution ``snap`` (a Snapshot or a row), if anyone listens."""
        if self.active():
            self.emit_all([self.event(kind, snap, step=step, attempt=attempt, seq=seq, **data)])

    def event(self, kind: str, snap: Snapshot | Mapping[Any, Any] | None, *, step: str | None = None,
              attempt: int | None = None, seq: int | None = None, **data: Any) -> dict[str, Any]:
        """The row of one event (see :meth:`emit_all`)."""
        assert kind in KINDS, kind
        row: dict[str, Any] = {"at": self.clock.now(), "kind": kind, "execution_id": None, "root_id": None,
                               "workflow": None, "step": step, "attempt": attempt, "seq": seq,
                               "data": {k: v for k, v in data.items() if v is not None} or None}
        if snap is not None:
            get = (lambda name: getattr(snap, name)) if isinstance(snap, Snapshot) else snap.get
            row.update(execution_id=get("id"), root_id=get("root_id") or get("id"), workflow=get("workflow"))
        return row

    def emit_all(self, events: list[dict[str, Any]]) -> None:
        """Write events built by :meth:`event` (callers check :meth:`active` first)."""
        if not events:
            return
        try:
            with self.db.single() as conn:
                emit_txn(conn, events, self.notify)
        except Exception:  # noqa: BLE001 - a live view never stops the engine
            log.warning("durable: could not write %d live event(s)", len(events), exc_info=True)

    def prune(self, retention: float) -> int:
        """Delete events older than ``retention`` seconds, and the heartbeats of subscribers
        gone for as long (the tick calls it)."""
        before = self.clock.now() - timedelta(seconds=retention)
        with self.db.single() as conn:
            forget_subscribers_txn(conn, before)
            return prune_txn(conn, before)


#: the execution event of a checkpoint's outcome (top-level executions only)
_ENDS = {Outcome.WAITING: "execution.waiting", Outcome.COMPLETED: "execution.completed",
         Outcome.FAILED: "execution.failed", Outcome.CANCELLED: "execution.cancelled",
         Outcome.COMPENSATING: "execution.compensating", Outcome.COMPENSATED: "execution.compensated",
         Outcome.COMPENSATION_FAILED: "execution.compensation_failed"}


def after_checkpoint(emitter: Emitter, snap: Snapshot, cp: Checkpoint, outcome: Outcome) -> list[dict[str, Any]]:
    """The events of a committed checkpoint: its step attempt's, then the execution's."""
    events = []
    attempt = cp.attempt
    if attempt is not None:
        common = {"step": attempt["step_name"], "attempt": attempt["attempt"], "seq": snap.seq,
                  "compensation_for": attempt.get("compensation_for")}
        if attempt["status"] == StepStatus.COMPLETED.value:
            events.append(emitter.event("step.completed", snap, duration_ms=attempt.get("duration_ms"), **common))
        elif outcome is Outcome.RETRY_SCHEDULED:
            retry_at = cp.values.get("ready_at")
            events.append(emitter.event("step.retrying", snap, error=attempt.get("error"),
                                        retry_at=retry_at.isoformat() if retry_at is not None else None, **common))
        else:
            events.append(emitter.event("step.failed", snap, error=attempt.get("error"), **common))
    kind = _ENDS.get(outcome)
    if kind is not None and snap.is_top_level:
        error = cp.values.get("error") if outcome in (Outcome.FAILED, Outcome.COMPENSATING) else None
        events.append(emitter.event(kind, snap, step=cp.values.get("current_node", snap.current_node)
                                    if outcome is Outcome.WAITING else None, seq=snap.seq + 1, error=error))
    return events


def resumed(emitter: Emitter, rows: Iterable[Mapping[Any, Any]], by: str) -> None:
    """``execution.resumed`` for each woken execution (``by``: event, input, timer, child)."""
    if emitter.active():
        emitter.emit_all([emitter.event("execution.resumed", row, step=row.get("current_node"), seq=row.get("seq"),
                                        by=by) for row in rows])


def subscribe(db: Database, clock: Clock, prefix: str, *, execution_id: str | None = None,
              workflow: str | None = None, kinds: Iterable[str] | None = None, after: int | None = None,
              timeout: float | None = None, poll_interval: float = 0.25) -> Generator[LifecycleEvent, None, None]:
    """Yield lifecycle events from now on (or those after the event id ``after``, if still
    kept), oldest first, until the caller stops iterating (close the generator, or break out of
    the loop: its heartbeat row is then removed), or no event came for ``timeout`` seconds."""
    wanted = sorted(set(kinds)) if kinds is not None else None
    # One heartbeat row per process, left to age out when it stops (SUBSCRIBER_TTL): a
    # subscriber that reconnects (``after``) finds the engine still writing, with no gap
    detail = f"{socket.gethostname()}:{os.getpid()}"
    name = f"{SUBSCRIBER}{detail}"[:64]
    listener = _Listener(db, channel(prefix)) if db.dialect == "postgresql" else None
    try:
        with db.single() as conn:
            beat_txn(conn, name, clock.now(), detail)
            last = after if after is not None else newest_id_txn(conn)
        beaten = heard = time.monotonic()
        while True:
            with db.connect() as conn:
                rows = read_txn(conn, last, execution_id=execution_id, workflow=workflow, kinds=wanted, limit=500)
            for row in rows:
                last = row["id"]
                yield _event(row)
            now = time.monotonic()
            if rows:
                heard = now
            elif timeout is not None and now - heard >= timeout:
                return
            if now - beaten >= SUBSCRIBER_TTL / 3:
                with db.single() as conn:
                    beat_txn(conn, name, clock.now(), detail)
                beaten = now
            if len(rows) < 500:
                pause = 1.0 if listener is not None else poll_interval
                if timeout is not None:
                    pause = max(0.0, min(pause, timeout - (now - heard)))
                if listener is not None:
                    listener.wait(pause)
                else:
                    time.sleep(pause)
    finally:
        if listener is not None:
            listener.close()


def _event(row: Mapping[Any, Any]) -> LifecycleEvent:
    data = dict(row["data"] or {})
    top = row["root_id"] or row["execution_id"]
    if row["execution_id"] is not None and row["execution_id"] != top:
        data["branch_id"] = row["execution_id"]
    at: datetime = as_utc(row["at"])
    return LifecycleEvent(row["id"], at, row["kind"], top, row["workflow"], row["step"], row["attempt"], row["seq"],
                          data)


class _Listener:
    """A connection of its own that LISTENs on the channel, to wake the subscriber when an
    event is written; its notifications carry nothing the subscriber needs but the wake-up."""

    def __init__(self, db: Database, name: str) -> None:
        self._conn = db.autocommit_engine.connect()
        # the prefix in the name matched a strict pattern (limits.check_prefix); quoted all the same
        self._conn.execute(text(f"LISTEN {self._conn.dialect.identifier_preparer.quote_identifier(name)}"))
        self._raw: Any = self._conn.connection.dbapi_connection

    def wait(self, timeout: float) -> None:
        """Until a notification comes or ``timeout`` seconds pass."""
        readable, _, _ = select.select([self._raw.fileno()], [], [], timeout)
        if readable:
            self._drain()

    def _drain(self) -> None:
        raw = self._raw
        if hasattr(raw, "poll"):  # psycopg2
            raw.poll()
            raw.notifies.clear()
        else:  # psycopg 3: reading the socket happens in a statement; the notifies are queued
            raw.execute("SELECT 1")

    def close(self) -> None:
        self._conn.close()
