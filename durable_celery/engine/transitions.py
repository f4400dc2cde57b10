"""The transition rules: where an execution goes after a step returns, and how routing nodes
(branches) resolve. Pure functions over the compiled machine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from durable_celery.compiler.ir import END, JOIN, ROUTING, State, StateMachine
from durable_celery.dsl.goto import Goto
from durable_celery.errors import BranchNoMatch, DefinitionChanged, DurableError, LoopLimitExceeded


class StepResultError(DurableError):
    """A step returned something other than a dict or a ``goto``."""


@dataclass(frozen=True)
class Next:
    """Where to go after a step: the next step state id (or ``END``) and the context it gets."""

    state: str
    ctx: dict[str, Any]


def interpret_result(machine: StateMachine, state: State, result: Any) -> tuple[str, dict[str, Any]]:
    """Turn a step's return value into (unresolved successor id, new context)."""
    if isinstance(result, Goto):
        target = machine.state(result.target)
        if target is None or target.kind not in ("step", "decision"):
            raise StepResultError(f"step {state.id!r} returned goto({result.target!r}), which names no step")
        if target.region != state.region:
            raise StepResultError(f"step {state.id!r} returned goto({result.target!r}), which would leave its "
                                  "parallel branch or foreach body")
        return target.id, result.ctx
    if isinstance(result, dict):
        return state.next, result
    raise StepResultError(
        f"step {state.id!r} returned {type(result).__name__}; a step must return a dict (the new context) "
        "or goto(step, ctx)"
    )


def resolve(machine: StateMachine, state_id: str, ctx: dict[str, Any], loops: dict[str, int] | None = None) -> str:
    """Follow routing states (branches, loop tests) from ``state_id`` until a step, a fan-out
    state (parallel, foreach), or the end (``END``/``JOIN``).

    Calls the branches' ``on`` and the loops' ``condition`` with ``ctx``. ``loops`` counts the
    iterations of each loop under way and is updated in place; raises ``BranchNoMatch`` when no
    clause matches and there is no default, ``LoopLimitExceeded`` past ``max_iterations``.
    """
    loops = {} if loops is None else loops
    hops = 0
    while state_id not in (END, JOIN):
        state = machine.state(state_id)
        if state is None:
            raise DefinitionChanged(machine.workflow, state_id, "the node no longer exists")
        if state.kind not in ROUTING:
            return state_id
        state_id = _route(state, ctx, loops)
        hops += 1
        if hops > len(machine.states) + 1:
            raise DefinitionChanged(machine.workflow, state_id, "routing states form a cycle with no step")
    return state_id


def _route(state: State, ctx: dict[str, Any], loops: dict[str, int]) -> str:
    if state.kind == "loop":
        assert state.condition is not None and state.body is not None
        if not state.condition(ctx):
            loops.pop(state.id, None)
            return state.next
        loops[state.id] = loops.get(state.id, 0) + 1
        if loops[state.id] > state.max_iterations:
            raise LoopLimitExceeded(state.id, state.max_iterations)
        return state.body
    assert state.on is not None
    value = state.on(ctx)
    target = next((t for values, t in state.cases if any(_matches(value, v) for v in values)), None)
    if target is None:
        if state.default is None:
            raise BranchNoMatch(state.id, value)
        target = state.default
    return target


def _matches(value: Any, case_value: Any) -> bool:
    # True == 1 in Python; a case for 1 must not match True, nor a case for True match 1.
    return bool(value == case_value and isinstance(value, bool) == isinstance(case_value, bool))


def check_shape(machine: StateMachine, state_id: str, stored_shape: str | None) -> None:
    """Raise ``DefinitionChanged`` unless ``state_id`` still exists with the stored shape."""
    if state_id == END:
        return
    state = machine.state(state_id)
    if state is None:
        raise DefinitionChanged(machine.workflow, state_id, "the node no longer exists in the deployed definition")
    if stored_shape is not None and state.shape != stored_shape:
        raise DefinitionChanged(machine.workflow, state_id,
                                "the node's shape (options or successors) differs from when the execution reached it")


def queue_of(machine: StateMachine, state_id: str, execution_queue: str) -> str:
    """The Celery queue a state runs on: the step's own queue, else the execution's."""
    state = machine.state(state_id)
    return (state.queue if state is not None and state.queue else None) or execution_queue
