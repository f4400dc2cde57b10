"""Workflows that call workflows, events between workflows, and Celery tasks awaited durably,
from inside a step.

- ``call_workflow`` starts a child workflow and suspends the step (no worker held) until the
  child ends: it returns the child's final context, or raises ``ChildWorkflowError``.
- ``start_workflow`` starts a child and goes on at once (fire and forget); it returns its id.
- ``emit_event`` hands an event, by name, to every execution waiting for that name.
- ``await_task`` sends an existing Celery task to its own queue and workers and suspends the
  step until its result comes back.

Each of them happens once per visit of the step: the step re-runs from its top after a wait, a
retry or a lost worker, and each call then gets what it recorded the first time (the same
child, the same result) instead of doing it again. Calls are matched by their order in the
step, like waits; ``ref`` names a child call, and a second call with the same ``ref`` in one
visit gets the same child.
"""

from __future__ import annotations

from typing import Any, Union

from celery.canvas import Signature

from durable_celery.context import current
from durable_celery.dsl.typed import ModelLike, dump
from durable_celery.dsl.workflow import Workflow
from durable_celery.durations import Duration, optional_seconds
from durable_celery.errors import InvalidInput
from durable_celery.limits import check_name, encode_payload
from durable_celery.runtime.awaited import sender
from durable_celery.runtime.calls import ChildStart
from durable_celery.runtime.journal import StepJournal
from durable_celery.runtime.waiting import WaitSpec

__all__ = ["call_workflow", "start_workflow", "emit_event", "await_task"]

WorkflowRef = Union[Workflow, str]


def _handle(what: str) -> StepJournal:
    handle: StepJournal | None = current().waits
    if handle is None:
        raise InvalidInput(f"{what} is not available here: a compensation runs no child workflows, waits or events")
    return handle


def _child(handle: StepJournal, workflow: WorkflowRef, input: Any, ref: str | None, queue: str | None) -> ChildStart:
    machine = handle.services.registry.machine_for(workflow)
    ref = machine.workflow if ref is None else ref
    if not isinstance(ref, str) or not ref or len(ref) > 100:
        raise InvalidInput(f"ref must be a string of 1 to 100 characters, got {ref!r}")
    if queue is not None:
        check_name(queue, "queue")
    input = dump(input)  # a pydantic model: its JSON form (dsl/typed.py)
    if input is not None and not isinstance(input, dict):
        raise InvalidInput(f"input must be a dict (the child's first context), got {type(input).__name__}")
    encode_payload(input, "the child's input", handle.services.settings.max_payload_bytes)
    return ChildStart(machine, input, ref, queue)


def call_workflow(workflow: WorkflowRef, input: dict[str, Any] | ModelLike | None = None, *, ref: str | None = None,
                  timeout: Duration | None = None, timeout_value: Any = "child_timeout",
                  queue: str | None = None) -> Any:
    """Run ``workflow`` as a child of this execution and return its final context.

    The step suspends durably until the child ends (no worker is held). A child that fails or is
    cancelled raises ``ChildWorkflowError`` (``.status``, ``.error``, ``.child_id``). After
    ``timeout`` the call returns ``timeout_value`` instead; the child is left running (cancel it
    by id to stop it). ``ref`` (default: the workflow's name) identifies the call: a re-run of the
    step gets the same child, never a second one. ``queue`` overrides the child's queue.
    """
    handle = _handle("call_workflow")
    child = _child(handle, workflow, input, ref, queue)
    return handle.wait(WaitSpec("child", (child.ref,), optional_seconds(timeout, "timeout"),
                                timeout_value=timeout_value, child=child))


def start_workflow(workflow: WorkflowRef, input: dict[str, Any] | ModelLike | None = None, *, ref: str | None = None,
                   queue: str | None = None) -> str:
    """Start ``workflow`` as a child of this execution and return its id at once (fire and
    forget). Once per ``ref`` (default: the workflow's name) per visit of the step."""
    handle = _handle("start_workflow")
    return handle.start_child(_child(handle, workflow, input, ref, queue))


def emit_event(name: str, payload: Any = None) -> None:
    """Hand an event to every execution waiting for ``name`` (``wait_for_event(name)`` and the
    other event waits), now or later: an execution that was already running when the event was
    emitted and reaches such a wait later takes it then. Each execution takes it at most once.

    Unlike ``durable.send_event(id, ...)``, which targets one execution, the emitter need not know
    who waits: name events after what happened (``f"packed:{order_id}"``). Emitted once per visit
    of the step, however often the step re-runs."""
    check_name(name, "event name")
    handle = _handle("emit_event")
    handle.emit(name, encode_payload(payload, "the payload", handle.services.settings.max_payload_bytes))


def await_task(signature: Signature, *, timeout: Duration | None = None, timeout_value: Any = None) -> Any:
    """Send an existing Celery task (a signature, or a chain: its last task's result counts) to
    its own queue and workers, suspend until its result comes back, and return it.

    No worker is held while it runs, and no result backend is polled: the result comes back by a
    link callback to this workflow's queue. A result delivered twice counts once; a task that
    fails raises ``TaskFailed``; after ``timeout`` the call returns ``timeout_value`` (a result
    that comes later is ignored). The task is sent once per visit of the step (again, under the
    same task id, only if its worker was lost before the sending was recorded).
    """
    kind = signature.get("subtask_type") if isinstance(signature, Signature) else None
    if not isinstance(signature, Signature) or kind not in (None, "chain"):
        raise InvalidInput(f"await_task takes a task signature or a chain of them, got {signature!r}")
    task = signature["kwargs"]["tasks"][-1]["task"] if kind == "chain" else signature.task
    if not isinstance(task, str) or not task:
        raise InvalidInput(f"await_task: cannot tell which task {signature!r} runs")
    handle = _handle("await_task")
    return handle.wait(WaitSpec("task", (task,), optional_seconds(timeout, "timeout"), timeout_value=timeout_value,
                                send=sender(handle, signature)))
