"""Poison messages: a message to the engine's step task that no retry or redelivery can make
usable (arguments missing, unknown or of the wrong type, an execution that does not exist, a
``seq`` the execution never reached). Each is dropped: the task returns ``rejected``, so Celery
acknowledges the message (on receipt by default, else as the task returns), and one log line, at
ERROR for a malformed message and WARNING for one that names what is not there, gives the
message id and the reason. The worker goes on with its other messages.

A message whose body is JSON but not a Celery task message (not ``[args, kwargs, embed]``, no
id) would stop the whole worker: Celery's consumer fails on it outside any task, shuts the
worker down, and the broker hands the message to the next worker, which stops too. The engine's
tasks therefore have a :class:`Strategy` that checks the message's shape first, and drops a
malformed one, or one whose body cannot be decoded, the same way: acknowledged, one ERROR line.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kombu.exceptions import DecodeError

from durable_celery.errors import DurableError, InvalidInput
from durable_celery.identifiers import check_execution_id
from durable_celery.runtime.json_only import check_json

log = logging.getLogger(__name__)

#: the largest seq the database holds (a 32-bit integer column)
MAX_SEQ = 2**31 - 1
#: what the step task returns for a message it dropped
REJECTED = "rejected"


class PoisonMessage(DurableError):
    """The message can never be handled; ``reason`` says why. ``missing``: it is well formed but
    names an execution or a ``seq`` that is not there (logged as a warning, not an error).
    Internal: raised and caught inside the worker, never seen by a caller."""

    def __init__(self, reason: str, missing: bool = False) -> None:
        self.reason = reason
        self.missing = missing
        super().__init__(reason)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.missing))


@dataclass(frozen=True)
class StepMessage:
    """The arguments of a step message, checked."""

    execution_id: str
    seq: int
    handoff: Mapping[str, Any] | None


def _signature(execution_id: str, seq: int, workflow: str | None = None, step: str | None = None,
               handoff: dict[str, Any] | None = None) -> None:
    """The step task's arguments (``workflow`` and ``step`` are there for Flower only)."""


_STEP = inspect.signature(_signature)


def step_message(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> StepMessage:
    """The step message's arguments, or ``PoisonMessage`` saying what is wrong with them."""
    try:
        bound = _STEP.bind(*args, **kwargs).arguments
    except TypeError as exc:
        raise PoisonMessage(f"bad arguments: {exc}") from None
    execution_id, seq, handoff = bound["execution_id"], bound["seq"], bound.get("handoff")
    try:
        check_execution_id(execution_id)
    except InvalidInput as exc:
        raise PoisonMessage(f"bad execution_id: {exc}") from None
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
        raise PoisonMessage(f"bad seq: an int from 0 to {MAX_SEQ}, got {seq!r}"[:200])
    for name in ("workflow", "step"):
        if not isinstance(bound.get(name), (str, type(None))):
            raise PoisonMessage(f"bad {name}: a string or null, got {type(bound[name]).__name__}")
    if handoff is not None and not isinstance(handoff, dict):
        raise PoisonMessage(f"bad handoff: an object or null, got {type(handoff).__name__}")
    return StepMessage(execution_id, seq, handoff)


def drop(task: str, message_id: str | None, exc: PoisonMessage) -> str:
    """Log the one line for a dropped message; returns what the task returns."""
    level = logging.WARNING if exc.missing else logging.ERROR
    log.log(level, "durable: dropped message %s to %s: %s", message_id, task, exc.reason)
    return REJECTED


class Strategy:
    """Celery's default strategy for a task (how its consumer turns a message into a request),
    behind a check of the message's shape: a malformed message is acknowledged and logged once,
    instead of stopping the worker. The engine tasks' ``Strategy`` (Celery builds one per task
    when its consumer starts, and calls it for each message)."""

    def __init__(self, task: Any, app: Any, consumer: Any, **options: Any) -> None:
        from celery.worker.strategy import default

        self._name = task.name
        self._connection_errors = consumer.connection_errors
        self._handler = default(task, app, consumer, **options)

    def __call__(self, message: Any, body: Any, ack: Callable[..., Any], reject: Callable[..., Any], callbacks: Any,
                 **kwargs: Any) -> Any:
        check_json(self._name, message)  # before anything reads the body (unpickling runs code)
        problem = malformed(message)
        if problem is not None:
            ack(log, self._connection_errors)  # as Celery's request acknowledges: (logger, errors)
            drop(self._name, message_id_of(message), PoisonMessage(problem))
            return None
        return self._handler(message, body, ack, reject, callbacks, **kwargs)


#: the options of every engine task: its messages are sent as JSON, and its consumer refuses
#: any other content, then drops malformed messages with one log line (:class:`Strategy`)
ENGINE_TASK_OPTIONS: dict[str, Any] = {"serializer": "json", "Strategy": Strategy}


def message_id_of(message: Any) -> str | None:
    headers = message.headers or {}
    found = headers.get("id")
    if found is None:
        try:
            payload = message.payload
        except DecodeError:
            payload = None
        found = payload.get("id") if isinstance(payload, dict) else None
    return str(found) if found is not None else (message.properties or {}).get("correlation_id")


def malformed(message: Any) -> str | None:
    """What makes ``message`` something Celery's request cannot be built from, or None. (A
    content type the worker does not accept raises ``ContentDisallowed``: Celery's to report.)"""
    headers = message.headers or {}
    try:
        payload = message.payload
    except DecodeError as exc:
        return f"the body cannot be decoded ({message.content_type}): {exc}"[:300]
    if "task" in headers:  # protocol 2: [args, kwargs, embed]
        where = headers
        if not isinstance(payload, (list, tuple)) or len(payload) != 3:
            return f"the body is not [args, kwargs, embed] but {_shape(payload)}"
        args, kwargs, embed = payload
    else:  # protocol 1: one object
        where = payload
        if not isinstance(payload, dict):
            return f"the body is not a task message but {_shape(payload)}"
        args, kwargs, embed = payload.get("args", ()), payload.get("kwargs", {}), None
    if not isinstance(where.get("id"), str):
        return "the message has no id"
    if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict) or not isinstance(embed, (dict, type(None))):
        return f"args, kwargs or embed of the wrong type: {_shape(args)}, {_shape(kwargs)}, {_shape(embed)}"
    if any(not isinstance(key, str) for key in kwargs):
        return "a keyword argument whose name is not a string"
    limits = where.get("timelimit")
    if limits is not None and (not isinstance(limits, (list, tuple)) or len(limits) != 2 or not all(
            limit is None or (isinstance(limit, (int, float)) and not isinstance(limit, bool)) for limit in limits)):
        return f"a malformed timelimit header: {limits!r}"[:200]
    return None


def _shape(value: Any) -> str:
    return f"a {type(value).__name__}" + (f" of {len(value)}" if isinstance(value, (list, tuple, dict, str)) else "")


def guarded(task: str, message_id: str | None, run: Callable[[], str]) -> str:
    """``run()``, or the one log line and ``rejected`` if it finds the message poisoned."""
    try:
        return run()
    except PoisonMessage as exc:
        return drop(task, message_id, exc)
