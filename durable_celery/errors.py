"""The durable-celery error tree.

Every error a caller can see derives from :class:`DurableError`::

    DurableError
    ├── DefinitionError          a workflow definition is wrong (raised at import time)
    ├── WorkflowNotFound         no registered workflow has that name
    ├── ExecutionNotFound        no execution has that id
    ├── ScheduleNotFound         no cron schedule has that name
    ├── InvalidInput             a call got an argument it cannot use (bad JSON, bad option)
    │   └── PayloadTooLarge      a payload is over the max_payload_bytes setting
    ├── InvalidState             the execution is in a status that does not allow the call
    ├── DefinitionChanged        an in-flight execution's current node changed shape in a deploy
    ├── StepTimeout              a step attempt ran longer than its timeout
    ├── WorkflowTimeout          an execution ran longer than its workflow timeout
    ├── BranchNoMatch            a branch had no matching case and no default
    ├── LoopLimitExceeded        a loop ran more than its max_iterations
    ├── ChildFailed              a parallel branch or foreach iteration failed (fail_fast)
    ├── WaitMismatch             a re-run step reached different waits than before
    ├── ChildWorkflowError       a workflow called with call_workflow failed or was cancelled
    ├── TaskFailed               a Celery task awaited with await_task failed
    ├── ContextNotSerializable   a step returned a context that cannot be stored as JSON
    ├── WorkerLost               a step attempt lost its worker too many times (it kills its worker)
    ├── TaskArgumentError        a step made from a Celery task could not fill a required argument
    ├── IllegalMove              a decision tried a status move ALLOWED_MOVES does not allow (a bug)
    ├── SchemaOutOfDate          the database schema is behind the installed version
    ├── DatabaseUnavailable      the workflow database cannot be reached (down, restarting, cut off)
    └── AppNotInitialized        a call needs the Celery app, and init_app(app) was not called yet

Errors carry their data as fields. Each class with a custom ``__init__`` defines
``__reduce__``: Celery's prefork pool pickles exceptions, and pickle rebuilds an exception by
calling ``cls(*args)``.
"""

from __future__ import annotations

from typing import Any


class DurableError(Exception):
    """Base class of every durable-celery error."""


class DefinitionError(DurableError):
    """A workflow definition is invalid; names the workflow and, where known, the step."""

    def __init__(self, workflow: str, message: str, step: str | None = None) -> None:
        self.workflow = workflow
        self.step = step
        self.message = message
        where = f"workflow {workflow!r}" + (f", step {step!r}" if step else "")
        super().__init__(f"{where}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.workflow, self.message, self.step))


class WorkflowNotFound(DurableError):
    """No workflow with that name is registered on this Durable instance."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no workflow named {name!r} is registered")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name,))


class QueueNotFound(DurableError):
    """No queue of that name is known to this Durable instance (or, for ``pause_queue`` and
    ``resume_queue``, it is not a controlled queue: one listed in ``queues=``)."""

    def __init__(self, name: str, detail: str = "") -> None:
        self.name = name
        self.detail = detail
        super().__init__(f"no queue named {name!r}" + (f": {detail}" if detail else ""))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name, self.detail))


class ExecutionNotFound(DurableError):
    """No execution with that id exists."""

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        super().__init__(f"no execution with id {execution_id!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.execution_id,))


class ScheduleNotFound(DurableError):
    """No cron schedule with that name is stored."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no schedule named {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.name,))


class InvalidInput(DurableError, ValueError):
    """An argument to a call is not usable; nothing was written."""


class PayloadTooLarge(InvalidInput):
    """A payload (a start's input, an event's payload, an input's data, a schedule's input) is
    over the ``max_payload_bytes`` setting, measured as compact UTF-8 JSON; nothing was written."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        self.what = what
        self.size = size
        self.limit = limit
        super().__init__(f"{what} is {size} bytes as JSON, over the limit of {limit} bytes (max_payload_bytes)")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.what, self.size, self.limit))


class InvalidState(DurableError):
    """The execution's status does not allow the requested call."""

    def __init__(self, execution_id: str, status: str, message: str) -> None:
        self.execution_id = execution_id
        self.status = status
        self.message = message
        super().__init__(f"execution {execution_id} is {status}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.execution_id, self.status, self.message))


class DefinitionChanged(DurableError):
    """The node an in-flight execution stands on no longer exists with the same shape."""

    def __init__(self, workflow: str, node: str, detail: str) -> None:
        self.workflow = workflow
        self.node = node
        self.detail = detail
        super().__init__(f"workflow {workflow!r} changed at node {node!r}: {detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.workflow, self.node, self.detail))


class StepTimeout(DurableError):
    """A step attempt exceeded its timeout (counts as a failed attempt)."""

    def __init__(self, step: str, seconds: float) -> None:
        self.step = step
        self.seconds = seconds
        super().__init__(f"step {step!r} timed out after {seconds:g}s")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.step, self.seconds))


class WorkflowTimeout(DurableError):
    """An execution exceeded its workflow timeout."""

    def __init__(self, workflow: str, seconds: float) -> None:
        self.workflow = workflow
        self.seconds = seconds
        super().__init__(f"workflow {workflow!r} timed out after {seconds:g}s")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.workflow, self.seconds))


class BranchNoMatch(DurableError):
    """A branch's selector returned a value no case matches, and it has no default."""

    def __init__(self, branch: str, value: Any) -> None:
        self.branch = branch
        self.value = value
        super().__init__(f"branch {branch!r}: no case matches {value!r} and there is no default")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.branch, self.value))


class LoopLimitExceeded(DurableError):
    """A loop's condition still held after ``max_iterations`` iterations."""

    def __init__(self, loop: str, max_iterations: int) -> None:
        self.loop = loop
        self.max_iterations = max_iterations
        super().__init__(f"loop {loop!r} exceeded max_iterations={max_iterations}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.loop, self.max_iterations))


class ChildFailed(DurableError):
    """A parallel branch or foreach iteration failed, failing the block (``fail_fast``)."""

    def __init__(self, block: str, key: str, message: str) -> None:
        self.block = block
        self.key = key
        self.message = message
        super().__init__(f"{block!r}: {key} failed: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.block, self.key, self.message))


class WaitMismatch(DurableError):
    """A re-run of a step reached a different wait at the same position than before: step code
    must reach its waits in the same order each time it runs."""


class ChildWorkflowError(DurableError):
    """A workflow called with ``call_workflow`` ended without completing: ``status`` is how it
    ended (failed, cancelled, compensated, compensation_failed), ``error`` its error dict."""

    def __init__(self, child_id: str, status: str, error: dict[str, Any] | None) -> None:
        self.child_id = child_id
        self.status = status
        self.error = error
        detail = f": {error.get('type')}: {error.get('message')}" if error else ""
        super().__init__(f"child workflow {child_id} ended {status}{detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.child_id, self.status, self.error))


class TaskFailed(DurableError):
    """A Celery task awaited with ``await_task`` failed; ``error`` is its error dict (``type`` and
    ``message`` when the failure reached the engine with its exception, else only the task id)."""

    def __init__(self, task: str, task_id: str, error: dict[str, Any] | None) -> None:
        self.task = task
        self.task_id = task_id
        self.error = error
        detail = f": {error.get('type')}: {error.get('message')}" if error and error.get("type") else ""
        super().__init__(f"task {task} ({task_id}) failed{detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.task, self.task_id, self.error))


class StepAttemptFailed(DurableError):
    """What a step task that ran a failing attempt raises to Celery once the attempt is
    recorded, so Celery's logs, task events and Flower show the task failed (``retry_at``
    set: raised inside Celery's ``Retry``, the task shows as retried). The execution has moved
    on already (a retry scheduled, or failed); nothing catches this. ``error`` is the attempt's
    error dict (``type``, ``message``, ``traceback``), as ``get_execution`` shows it."""

    def __init__(self, workflow: str, step: str, attempt: int, error: dict[str, Any] | None) -> None:
        self.workflow = workflow
        self.step = step
        self.attempt = attempt
        self.error = error
        detail = f": {error.get('type')}: {error.get('message')}" if error and error.get("type") else ""
        super().__init__(f"{workflow}.{step} attempt {attempt} failed{detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.workflow, self.step, self.attempt, self.error))


class ContextNotSerializable(DurableError):
    """A context holds a value that cannot be stored as JSON; names the step and the key."""

    def __init__(self, step: str, key: str, type_name: str, detail: str | None = None) -> None:
        self.step = step
        self.key = key
        self.type_name = type_name
        #: why the context as a whole cannot be stored (too large), instead of one key's value
        self.detail = detail
        super().__init__(
            f"step {step!r} produced a context that cannot be stored: {detail}" if detail is not None else
            f"step {step!r} produced a context whose key {key!r} holds a {type_name}, "
            "which cannot be stored (use JSON types, datetime, date, Decimal or UUID)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.step, self.key, self.type_name, self.detail))


class SchemaOutOfDate(DurableError):
    """The database schema is behind (or ahead of) the installed durable-celery version."""


class DatabaseUnavailable(DurableError):
    """The workflow database cannot be reached: it is down, restarting, or the connection to it
    broke. Nothing the call meant to write is known to be written, except where the raiser says
    otherwise. The driver's error is chained (``__cause__``); ``url`` names the database, without
    its password. The same call works again once the database is back."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        self.detail = detail
        super().__init__(f"the workflow database at {url} cannot be reached: {detail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.url, self.detail))


class AppNotInitialized(DurableError, RuntimeError):
    """The Durable instance is not attached to a Celery app yet: build it as ``Durable(app, ...)``
    or call ``durable.init_app(app)`` before a call that publishes or runs tasks."""


class WorkerLost(DurableError):
    """A step attempt lost its worker (lease expired) too many times in a row: the step itself
    most likely kills its worker (out of memory, a crash, ``os._exit``). Counts as a failed attempt."""

    def __init__(self, step: str, times: int) -> None:
        self.step = step
        self.times = times
        super().__init__(f"step {step!r} lost its worker {times} times in a row (does it crash its worker?)")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.step, self.times))


class IllegalMove(DurableError):
    """A decision tried a status move that ``ALLOWED_MOVES`` does not allow (a bug in a decision, never bad input)."""

    def __init__(self, src: str, dst: str) -> None:
        self.src = src
        self.dst = dst
        super().__init__(f"an execution cannot move from {src} to {dst}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.src, self.dst))


class TaskArgumentError(DurableError):
    """A step made from a Celery task (``task_step``, ``from_canvas``) found no value for a
    required parameter of the task; names the step, the task and the parameter."""

    def __init__(self, step: str, task: str, parameter: str, where: str) -> None:
        self.step = step
        self.task = task
        self.parameter = parameter
        self.where = where
        super().__init__(f"step {step!r}: task {task!r} needs argument {parameter!r}, not given by {where}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.step, self.task, self.parameter, self.where))
