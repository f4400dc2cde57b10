"""What a running step can ask about itself: ``workflow_id()``, ``current_step()``,
``attempt()``, ``workflow_input()``, ``idempotency_key()``; and ``checkpoint()``, to do
something once per visit of the step. Valid only inside a step."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from durable_celery.errors import DurableError, InvalidInput

T = TypeVar("T")


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


def checkpoint(name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` once per visit of the step and return its result; every later
    run of the step in the same visit (after a wait, a retry or a lost worker) returns the
    recorded result instead of calling ``fn`` again.

    A step re-runs from its top when a wait resumes: wrap what must not happen twice, such as
    charging a card before waiting for its confirmation::

        charge = checkpoint("charge", psp.charge, ctx["card"], ctx["amount"])
        wait_for_event(f"settled:{charge['id']}")

    The result must be JSON (datetime, Decimal and UUID round-trip); it is returned as a re-run
    gets it. Checkpoints are matched by their order in the step, like waits, and ``name`` must
    match at each position. If ``fn`` raises, nothing is recorded and the error fails the
    attempt as usual. At least once: a worker killed inside ``fn``, before its result is
    recorded, leads to ``fn`` running again; pass ``idempotency_key()`` to the service it calls.
    """
    if not isinstance(name, str) or not name or len(name) > 255:
        raise InvalidInput(f"checkpoint name must be a string of 1 to 255 characters, got {name!r}")
    if not callable(fn):
        raise InvalidInput(f"checkpoint {name!r}: fn must be callable, got {fn!r}")
    journal = _info().waits
    if journal is None:
        raise InvalidInput("checkpoint is not available here: a compensation keeps no journal")
    result: T = journal.record(name, fn, args, kwargs)
    return result


@contextmanager
def running(info: StepInfo) -> Iterator[None]:
    token = _current.set(info)
    try:
        yield
    finally:
        _current.reset(token)
