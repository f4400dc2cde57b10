"""What a running step can ask about itself: ``workflow_id()``, ``current_step()``,
``attempt()``, ``workflow_input()``. Valid only inside a step."""

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


@contextmanager
def running(info: StepInfo) -> Iterator[None]:
    token = _current.set(info)
    try:
        yield
    finally:
        _current.reset(token)
