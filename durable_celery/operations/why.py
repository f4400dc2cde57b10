"""One line on why an execution is not moving (``celery -A proj durable show ID``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from durable_celery.engine.statuses import TERMINAL, ExecutionStatus

EVENT_KINDS = ("event", "any", "all")


def _at(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def explain(row: Mapping[Any, Any], waits: Sequence[Mapping[Any, Any]], fanout: Sequence[Mapping[Any, Any]],
            now: datetime, queue: str, consumers: Callable[[], dict[str, list[str]] | None]) -> str | None:
    """Why the execution in ``row`` is not moving, or None if it has finished.

    Args:
        waits: its step's pending waits, in call order; fanout: its active branches and
            iterations; queue: the Celery queue its next message goes to; consumers: asks the
            workers which queues they consume (None: the broker could not be asked); called only
            when a message is waiting for a worker.
    """
    if ExecutionStatus(row["status"]) in TERMINAL:
        return None
    step = row["current_node"] or "-"
    if row["stopping"] is not None:
        return f"stopping: the stop is applied when step {step} ends"
    if row["lease_owner"] is not None:
        return _leased(row, now, step, queue, consumers)
    if row["ready_at"] is not None:
        return _ready(row, now, step, queue, consumers)
    if row["status"] == ExecutionStatus.WAITING.value:
        return _waiting(row, waits, fanout, step)
    if row["kind"] != "workflow" and row["status"] == ExecutionStatus.PENDING.value:
        return "parked: starts when an earlier branch or iteration of its block ends (the block's concurrency)"
    if row["status"] == ExecutionStatus.COMPENSATING.value:
        return "compensation parked until the steps still in flight in its tree end"
    return f"not moving: {row['status']}, not leased and not runnable (see `durable doctor`)"


def _leased(row: Mapping[Any, Any], now: datetime, step: str, queue: str,
            consumers: Callable[[], dict[str, list[str]] | None]) -> str:
    owner, until = row["lease_owner"], row["lease_expires_at"]
    if row["step_started_at"] is not None:
        if until < now:
            return (f"step {step} lost its worker: the lease of {owner} expired at {_at(until)}; "
                    "beat's tick re-dispatches it")
        return (f"running step {step} (attempt {row['attempt']}) since {_at(row['step_started_at'])}, "
                f"leased by worker token {owner} until {_at(until)}")
    line = f"step {step} dispatched at {_at(row['dispatched_at'])} on queue {queue}{_consumed(queue, consumers)}"
    if until < now:  # the message's lease: beat's tick takes it back and publishes again
        return f"{line}; its message's lease expired at {_at(until)}, for beat's tick to re-dispatch"
    return line


def _ready(row: Mapping[Any, Any], now: datetime, step: str, queue: str,
           consumers: Callable[[], dict[str, list[str]] | None]) -> str:
    if row["slot"] is not None and row["dispatched_at"] is None:
        return f"step {step} waits for a slot of controlled queue {row['slot']} (paused, or at its limit)"
    if row["ready_at"] > now:
        if row["attempt"] > 1:
            return f"retry of step {step} (attempt {row['attempt']}) due at {_at(row['ready_at'])}"
        return f"step {step} scheduled to run at {_at(row['ready_at'])}"
    if row["dispatched_at"] is None:
        return f"step {step} runnable since {_at(row['ready_at'])}, not dispatched yet (beat's tick dispatches it)"
    return (f"step {step} runnable, dispatched at {_at(row['dispatched_at'])} on queue {queue}"
            f"{_consumed(queue, consumers)}")


def _consumed(queue: str, consumers: Callable[[], dict[str, list[str]] | None]) -> str:
    live = consumers()
    if live is None:
        return " (the workers could not be asked whether anyone consumes it)"
    if queue not in live:
        return " with no consumer: no live worker answered for that queue"
    return f", consumed by {', '.join(sorted(live[queue]))}; not taken yet"


def _waiting(row: Mapping[Any, Any], waits: Sequence[Mapping[Any, Any]], fanout: Sequence[Mapping[Any, Any]],
             step: str) -> str:
    if waits:
        wait = waits[0]
        since = _at(wait["created_at"])
        timeout = f" (timeout at {_at(wait['timeout_at'])})" if wait["timeout_at"] is not None else ""
        kind, names = wait["kind"], ", ".join(wait["names"] or [])
        if kind == "sleep":
            return f"sleeping in step {step} until {_at(wait['timeout_at'])}"
        if kind in EVENT_KINDS:
            which = "event" if len(wait["names"] or []) == 1 else ("any of events" if kind == "any" else "events")
            return f"waiting in step {step} for {which} {names} since {since}{timeout}"
        if kind == "input":
            return f"waiting in step {step} for input {names} ({wait['input_type']}) since {since}{timeout}"
        if kind == "child":
            return f"waiting in step {step} for child workflow {wait['ref']} since {since}{timeout}"
        if kind == "task":
            return f"waiting in step {step} for Celery task {wait['ref']} since {since}{timeout}"
        return f"waiting in step {step} ({kind}) since {since}{timeout}"
    if fanout:
        kinds = "iterations" if all(f["kind"] != "branch" for f in fanout) else "branches"
        shown = ", ".join(f["id"] for f in fanout[:3]) + (", ..." if len(fanout) > 3 else "")
        return f"waiting in step {step} for {len(fanout)} {kinds} to end: {shown}"
    return f"waiting in step {step}, but nothing can wake it: no pending wait, branch or timer (see `durable doctor`)"
