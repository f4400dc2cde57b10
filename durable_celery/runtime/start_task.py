"""The start task: starting a workflow from a Celery message, so a workflow can be a member of
a chain or group of plain tasks (``durable.signature(workflow, input)``).

The task runs on the engine's queue, starts the execution and returns its id, which a chain
hands to the next task. Delivered twice (a redelivery, a retried publish), the same Celery
task id gives the same idempotency key, so one execution is started and both runs return its id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from celery import Celery

from durable_celery.errors import InvalidInput
from durable_celery.runtime.poison import ENGINE_TASK_OPTIONS

#: ``start(workflow, input, **start_options) -> execution id``: ``Durable.start``.
Start = Callable[..., str]
#: ``start_options`` a signature may carry (what makes sense in a message).
SIGNATURE_OPTIONS = ("queue", "priority", "idempotency_key", "start_deadline")


def start_task_name(prefix: str) -> str:
    """``durable.start`` with the default prefix, ``durable.<prefix>.start`` otherwise."""
    return "durable.start" if prefix == "durable" else f"durable.{prefix}.start"


def chained_input(workflow: str, input: dict[str, Any] | None, previous: tuple[Any, ...]) -> dict[str, Any]:
    """The input of an execution started by the start task.

    ``previous`` holds the previous task's result when the signature runs in a chain (Celery
    passes it as the first positional argument): a dict is merged over ``input``, ``None`` is
    ignored, any other value is put under the key ``"previous"``.

    Raises:
        InvalidInput: more than one positional argument.
    """
    base = dict(input or {})
    if not previous:
        return base
    if len(previous) > 1:
        raise InvalidInput(f"the start task of {workflow!r} takes at most one positional argument (the previous "
                           f"task's result), got {len(previous)}")
    value = previous[0]
    if value is None:
        return base
    if isinstance(value, dict):
        return {**base, **value}
    return {**base, "previous": value}


def idempotency_key(task_id: str | None) -> str | None:
    """A key derived from the Celery task id: the same for every delivery of one message."""
    if not task_id:
        return None  # called directly, not from a message: nothing can be delivered twice
    key = f"celery-task:{task_id}"
    return key if len(key) <= 255 else "celery-task:sha256:" + hashlib.sha256(task_id.encode()).hexdigest()


def install_start_task(app: Celery, name: str, queue: str, start: Start) -> Any:
    """Register the start task on ``app``, routed to the engine's ``queue``."""

    @app.task(name=name, bind=True, shared=False, durable_engine=True, queue=queue, **ENGINE_TASK_OPTIONS)
    def start_workflow(task: Any, *previous: Any, workflow: str, input: dict[str, Any] | None = None,
                       options: dict[str, Any] | None = None) -> str:
        """Start ``workflow`` (with the previous task's result in a chain) and return the execution id."""
        options = dict(options or {})
        options.setdefault("idempotency_key", idempotency_key(task.request.id))
        return start(workflow, chained_input(workflow, input, previous), **options)

    return start_workflow
