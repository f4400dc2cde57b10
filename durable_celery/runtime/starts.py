"""A new execution's row, built the same way by ``durable.start``, a step that calls or starts
a child workflow, and anything else that starts one. Bad options raise ``InvalidInput`` before
anything is written."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from durable_celery import codec
from durable_celery.clock import as_utc
from durable_celery.compiler.ir import StateMachine
from durable_celery.engine.statuses import ExecutionStatus
from durable_celery.errors import InvalidInput
from durable_celery.settings import Settings


def check_options(*, queue: Any = None, priority: Any = 0, scheduled_at: Any = None,
                  idempotency_key: Any = None) -> None:
    """Raise ``InvalidInput`` for a start option that cannot be used."""
    if queue is not None and (not isinstance(queue, str) or not queue):
        raise InvalidInput(f"queue must be a non-empty string, got {queue!r}")
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        raise InvalidInput(f"priority must be an int from 0 to 9 (higher runs first), got {priority!r}")
    if scheduled_at is not None and (not isinstance(scheduled_at, datetime) or scheduled_at.tzinfo is None):
        raise InvalidInput(f"scheduled_at must be a timezone-aware datetime, got {scheduled_at!r}")
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key
                                        or len(idempotency_key) > 255):
        raise InvalidInput(f"idempotency_key must be a string of 1 to 255 characters, got {idempotency_key!r}")


def encode_input(input: Any) -> Any:
    """The stored form of a workflow input (a JSON-storable dict; None is ``{}``)."""
    if input is None:
        input = {}
    if not isinstance(input, dict):
        raise InvalidInput(f"input must be a dict (the first step's context), got {type(input).__name__}")
    try:
        return codec.encode(input)
    except codec.Unencodable as exc:
        raise InvalidInput(f"input key {exc.path!r} holds a {exc.type_name}, which cannot be stored as JSON") from None


def new_execution_row(machine: StateMachine, settings: Settings, input: Any, now: datetime, *,
                      queue: str | None = None, priority: int = 0, scheduled_at: datetime | None = None,
                      idempotency_key: str | None = None, dispatched: bool = True,
                      parent_id: str | None = None) -> dict[str, Any]:
    """The row of a new top-level execution of ``machine``. ``dispatched``: its start message is
    published right after the insert commits (else the tick publishes it once it is committed
    and due). ``parent_id``: the execution whose step started it (a child workflow)."""
    encoded = encode_input(input)
    check_options(queue=queue, priority=priority, scheduled_at=scheduled_at, idempotency_key=idempotency_key)
    ready = max(as_utc(scheduled_at), now) if scheduled_at is not None else now
    immediate = scheduled_at is None or ready <= now
    execution_id = str(uuid.uuid4())
    return {
        "id": execution_id, "root_id": execution_id, "kind": "workflow", "parent_id": parent_id,
        "workflow": machine.workflow, "version": machine.version,
        "status": ExecutionStatus.PENDING.value, "queue": queue or machine.queue or settings.queue,
        "priority": priority, "input": encoded, "context": encoded, "current_node": machine.entry,
        "node_shape": machine.states[machine.entry].shape, "attempt": 1, "seq": 0,
        "ready_at": ready, "dispatched_at": now if immediate and dispatched else None,
        "deadline_at": ready + timedelta(seconds=machine.timeout) if machine.timeout else None,
        "idempotency_key": idempotency_key, "scheduled_at": scheduled_at,
        "created_at": now, "updated_at": now,
    }
