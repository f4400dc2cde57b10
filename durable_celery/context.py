"""What a running step can ask about itself: ``workflow_id()``, ``current_step()``,
``attempt()``, ``workflow_input()``, ``idempotency_key()``. Valid only inside a step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from durable_celery.errors import DurableError


@dataclass(frozen=True)
class StepInfo:
    workflow_id: str
    workflow: str
    step: str
    attempt: int
    input: Any
    #: the runtime's wait handle for this run of the step (see durable_celery.runtime.waiting)
    waits: Any = None
    #: the execution running the step (a branch or iteration has its own) and the visit of the
    #: step within it (the seq at which the execution entered the step)
    execution_id: str = ""
    visit: int | str = 0


_current: ContextVar[StepInfo | None] = ContextVar("durable_step", default=None)


class NotInStep(DurableError):
    """A ``durable_celery.context`` function was called outside a running step."""


def current() -> StepInfo:
    """The running step's info; raises ``NotInStep`` outside a step."""
    return _info()


def _info() -> StepInfo:
    info = _current.get()
    if info is None:
        raise NotInStep("durable_celery.context is only available inside a running step")
    return info


def workflow_id() -> str:
    """The id of the execution this step belongs to."""
    return _info().workflow_id


def current_step() -> str:
    """The name of the running step."""
    return _info().step


def attempt() -> int:
    """The 1-based attempt number of the running step."""
    return _info().attempt


def workflow_input() -> Any:
    """The input the execution was started with."""
    return _info().input


def idempotency_key() -> str:
    """A key for the side effect of this visit of the step, to hand to an external API
    (a payment provider's ``Idempotency-Key``, a unique constraint).

    The same across retries of the visit, its re-runs after a wait or a lost worker, and a
    duplicate delivery; different for each visit (a ``goto`` or loop back to the step, the next
    foreach iteration, another parallel branch, another execution). At most 64 characters.
    """
    info = _info()
    return f"{info.execution_id or info.workflow_id}:{info.visit}"


@contextmanager
def running(info: StepInfo) -> Iterator[None]:
    token = _current.set(info)
    try:
        yield
    finally:
        _current.reset(token)
