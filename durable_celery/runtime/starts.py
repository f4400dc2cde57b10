"""A new execution's row, built the same way by ``durable.start``, a step that calls or starts
a child workflow, and anything else that starts one. Bad options raise ``InvalidInput`` before
anything is written."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from durable_celery.clock import as_utc
from durable_celery.compiler.ir import StateMachine
from durable_celery.dsl import typed
from durable_celery.dsl.options import timeout_seconds
from durable_celery.durations import Duration
from durable_celery.engine.decide import handed_until
from durable_celery.engine.statuses import ExecutionStatus
from durable_celery.engine.values import COLUMNS, Snapshot
from durable_celery.errors import InvalidInput
from durable_celery.limits import DEFAULT_MAX_PAYLOAD_BYTES, check_name, check_text, encode_payload
from durable_celery.runtime import tracing
from durable_celery.settings import Settings


def check_options(*, queue: Any = None, priority: Any = 0, scheduled_at: Any = None,
                  idempotency_key: Any = None, start_deadline: Any = None) -> float | None:
    """Raise ``InvalidInput`` for a start option that cannot be used; returns ``start_deadline``
    in seconds (None if not given)."""
    if queue is not None:
        check_name(queue, "queue")
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        raise InvalidInput(f"priority must be an int from 0 to 9 (higher runs first), got {priority!r}")
    if scheduled_at is not None and (not isinstance(scheduled_at, datetime) or scheduled_at.tzinfo is None):
        raise InvalidInput(f"scheduled_at must be a timezone-aware datetime, got {scheduled_at!r}")
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key
                                        or len(idempotency_key) > 255):
        raise InvalidInput(f"idempotency_key must be a string of 1 to 255 characters, got {idempotency_key!r}")
    if idempotency_key is not None:
        check_text(idempotency_key, "idempotency_key")
    return timeout_seconds(start_deadline, "start_deadline")


def encode_input(input: Any, max_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES, model: type | None = None) -> Any:
    """The stored form of a workflow input (a JSON-storable dict or a pydantic model; None is
    ``{}``) of at most ``max_bytes`` as JSON (``PayloadTooLarge``; see ``limits.encode_payload``).
    ``model``: the model the first step takes (``input_model``): the input is validated against
    it and stored as the model made of it (defaults filled in, values coerced)."""
    if input is None:
        input = {}
    if model is not None:
        input = _validated(model, input)
    input = typed.dump(input)
    if not isinstance(input, dict):
        raise InvalidInput(f"input must be a dict (the first step's context), got {type(input).__name__}")
    return encode_payload(input, "the input", max_bytes)


def input_model(machine: StateMachine) -> type | None:
    """The pydantic model the workflow's first step takes as its context, if any."""
    entry = machine.states.get(machine.entry)
    return typed.ctx_model(entry.step.fn) if entry is not None and entry.step is not None else None


def _validated(model: type, input: Any) -> Any:
    if isinstance(input, model):
        return input
    if not isinstance(input, dict) and not typed.is_model(input):
        return input  # refused below, as any input that is not a dict
    try:
        return model.model_validate(typed.dump(input))  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError, without importing pydantic
        raise InvalidInput(f"input does not match {model.__name__}: {_problems(exc)}") from None


def _problems(exc: Exception) -> str:
    """What a pydantic ValidationError says, field by field: ``items.0.price: Input should be...``"""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())) or '(input)'}: {e.get('msg')}" for e in errors())


def new_execution_row(machine: StateMachine, settings: Settings, input: Any, now: datetime, *,
                      queue: str | None = None, priority: int = 0, scheduled_at: datetime | None = None,
                      idempotency_key: str | None = None, dispatched: bool = True,
                      parent_id: str | None = None, traced: bool = True, validate: bool = True,
                      start_deadline: Duration | None = None) -> dict[str, Any]:
    """The row of a new top-level execution of ``machine``. ``dispatched``: its start message is
    published right after the insert commits (else the tick publishes it once it is committed
    and due). ``parent_id``: the execution whose step started it (a child workflow).
    ``traced``: make its span (``runtime/tracing.py``). ``validate``: against the first step's
    model (``input_model``). ``start_deadline``: how long after it is due (now, or
    ``scheduled_at``) its first step may begin, else it is cancelled; default the workflow's own
    (``Workflow(start_deadline=...)``)."""
    encoded = encode_input(input, settings.max_payload_bytes, input_model(machine) if validate else None)
    given = check_options(queue=queue, priority=priority, scheduled_at=scheduled_at, idempotency_key=idempotency_key,
                          start_deadline=start_deadline)
    ready = max(as_utc(scheduled_at), now) if scheduled_at is not None else now
    start_within = given if given is not None else machine.start_deadline
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
        # cleared once its first step begins (see engine/decide.py, ``locate``)
        "start_deadline_at": ready + timedelta(seconds=start_within) if start_within else None,
        "idempotency_key": idempotency_key, "scheduled_at": scheduled_at,
        "trace_context": tracing.execution_span(machine.workflow, execution_id) if traced else None,
        "created_at": now, "updated_at": now,
    }


def hand_over_start(row: dict[str, Any], token: str, ttl: float) -> Snapshot:
    """Lease a new execution's ``row`` (changed in place) to its first message under ``token``
    for ``ttl`` seconds; returns the execution the message carries (see ``runtime/handoff.py``).
    Its row stays ``pending`` until its first checkpoint, which records when it started."""
    row.update(lease_owner=token, lease_expires_at=handed_until(row["created_at"], ttl), ready_at=None)
    # What the row sets; the rest are the snapshot's defaults. Its task runs it as a claim
    # would have left it (running), in its first visit (the column's default, 0).
    fields = {name: row[name] for name in COLUMNS if name in row}
    return Snapshot(**{**fields, "status": ExecutionStatus.RUNNING, "entered_seq": 0})


def new_execution_rows(machine: StateMachine, settings: Settings, inputs: Iterable[Any], now: datetime, *,
                       queue: str | None = None, priority: int = 0, scheduled_at: datetime | None = None,
                       idempotency_keys: Iterable[str | None] | None = None,
                       dispatched: bool = True, start_deadline: Duration | None = None) -> list[dict[str, Any]]:
    """The rows of new executions of ``machine``, one per input, as ``new_execution_row`` builds
    them (every option applies to all; ``idempotency_keys``, if given, has one key or None per
    input). Every input is checked before anything is returned: ``InvalidInput`` names the index
    of the first bad one."""
    if isinstance(inputs, (str, bytes, Mapping)) or not isinstance(inputs, Iterable):
        raise InvalidInput(f"inputs must be a list of input dicts, got {type(inputs).__name__}")
    inputs = list(inputs)
    keys = _keys(idempotency_keys, len(inputs))
    # The options are the same for every row: checked, and the shared columns built, once.
    template = new_execution_row(machine, settings, None, now, queue=queue, priority=priority,
                                 scheduled_at=scheduled_at, dispatched=dispatched, traced=False, validate=False,
                                 start_deadline=start_deadline)
    model = input_model(machine)
    rows = []
    for i, (input, key) in enumerate(zip(inputs, keys)):
        try:
            encoded = encode_input(input, settings.max_payload_bytes, model)
        except InvalidInput as exc:
            raise InvalidInput(f"inputs[{i}]: {exc}") from None
        execution_id = str(uuid.uuid4())
        # What differs from row to row; everything else is the template's.
        rows.append({**template, "id": execution_id, "root_id": execution_id, "input": encoded, "context": encoded,
                     "idempotency_key": key, "trace_context": tracing.execution_span(machine.workflow, execution_id)})
    return rows


def _keys(idempotency_keys: Iterable[str | None] | None, count: int) -> Sequence[str | None]:
    if idempotency_keys is None:
        return [None] * count
    if isinstance(idempotency_keys, (str, bytes, Mapping)) or not isinstance(idempotency_keys, Iterable):
        raise InvalidInput(f"idempotency_keys must be a list of keys (or None), one per input, "
                           f"got {type(idempotency_keys).__name__}")
    keys = list(idempotency_keys)
    if len(keys) != count:
        raise InvalidInput(f"idempotency_keys has {len(keys)} keys for {count} inputs: give one per input (or None)")
    for i, key in enumerate(keys):
        try:
            check_options(idempotency_key=key)
        except InvalidInput as exc:
            raise InvalidInput(f"idempotency_keys[{i}]: {exc}") from None
    return keys
